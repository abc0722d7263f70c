"""Role and transition rules: pure functions, no services."""

from dataclasses import replace

import pytest

from ledger.errors import Refused
from ledger.events import GENESIS_HASH
from ledger.keys import KeyPair
from ledger.lifecycle import authorize, check_link, fold, is_bootstrap, signer_of
from tests.helpers import Cast, gtin, issued_payload, scanned_payload, shipped_payload


@pytest.fixture
def cast():
    return Cast()


def actors_of(cast, revoked=()):
    states = {a: cast.actor_state(a) for a in cast.ROLES}
    for a in revoked:
        states[a] = replace(states[a], revoked=True)
    return states.get


def run(cast, signed, state, lookup=None):
    lookup = lookup or actors_of(cast)
    signer = signer_of(signed.event, lookup)
    authorize(state, signed.event, signer, lookup)
    return fold(state, signed.event, signed.hash)


def refused(cast, signed, state, lookup=None) -> Refused:
    with pytest.raises(Refused) as err:
        run(cast, signed, state, lookup)
    return err.value


def test_full_lifecycle(cast):
    s = run(cast, cast.issue("S1"), None)
    assert (s.status, s.custodian, s.producer) == ("issued", "acme", "acme")
    s = run(cast, cast.event("acme", "label", "S1", "Shipped", shipped_payload("distributor")), s)
    assert (s.status, s.consignee, s.territory) == ("in_transit", "distributor", "44")
    s = run(cast, cast.event("distributor", "label", "S1", "Received", {"region": "4403"}), s)
    assert (s.status, s.custodian) == ("received", "distributor")
    s = run(cast, cast.event("distributor", "label", "S1", "Shipped", shipped_payload("retailer", "4403")), s)
    s = run(cast, cast.event("retailer", "label", "S1", "Received", {"region": None}), s)
    s = run(cast, cast.event("gateway", "label", "S1", "Scanned", scanned_payload()), s)
    s = run(cast, cast.event("regulator", "label", "S1", "FlaggedCounterfeit", {"reason": "fake", "region": None}), s)
    assert s.counterfeit and s.seq == 6


def test_only_a_producer_within_its_prefix_issues(cast):
    assert refused(cast, cast.issue("S2", producer="distributor"), None).code == "not_authorized"
    other = cast.event("other-producer", "label", "S3", "Issued", issued_payload())
    assert refused(cast, other, None).field == "gtin"


def test_ship_only_by_custodian_to_a_registered_consignee(cast):
    s = run(cast, cast.issue("S4"), None)
    assert refused(cast, cast.event("distributor", "label", "S4", "Shipped", shipped_payload("retailer"), advance=False), s).code == "not_authorized"
    assert refused(cast, cast.event("acme", "label", "S4", "Shipped", shipped_payload("nobody-here"), advance=False), s).code == "unknown_actor"
    assert refused(cast, cast.event("acme", "label", "S4", "Shipped", shipped_payload("gateway"), advance=False), s).field == "consignee"


def test_receive_only_by_consignee_and_only_in_transit(cast):
    s = run(cast, cast.issue("S5"), None)
    assert refused(cast, cast.event("distributor", "label", "S5", "Received", {"region": None}, advance=False), s).code == "invalid_transition"
    s = run(cast, cast.event("acme", "label", "S5", "Shipped", shipped_payload("distributor")), s)
    assert refused(cast, cast.event("retailer", "label", "S5", "Received", {"region": None}, advance=False), s).code == "not_authorized"


def test_roles_for_flag_recall_scan(cast):
    s = run(cast, cast.issue("S6"), None)
    assert refused(cast, cast.event("acme", "label", "S6", "FlaggedCounterfeit", {"reason": "x", "region": None}, advance=False), s).code == "not_authorized"
    assert refused(cast, cast.event("distributor", "label", "S6", "Recalled", {"reason": "x"}, advance=False), s).code == "not_authorized"
    assert refused(cast, cast.event("registrar", "label", "S6", "Scanned", scanned_payload(), advance=False), s).code == "not_authorized"
    s = run(cast, cast.event("acme", "label", "S6", "Recalled", {"reason": "battery fire risk"}), s)
    assert s.recalled
    assert refused(cast, cast.event("regulator", "label", "S6", "Recalled", {"reason": "again"}, advance=False), s).code == "invalid_transition"


def test_lot_recall_by_owning_producer_or_regulator(cast):
    lot = f"{gtin()}/L1"
    assert refused(cast, cast.event("other-producer", "lot", lot, "Recalled", {"reason": "x"}, advance=False), None).code == "not_authorized"
    s = run(cast, cast.event("acme", "lot", lot, "Recalled", {"reason": "cells overheat"}), None)
    assert s.recalled and s.lot == "L1"


def test_revoked_actor_and_rotated_key_cannot_sign(cast):
    s = run(cast, cast.issue("S7"), None)
    e = cast.event("acme", "label", "S7", "Shipped", shipped_payload("distributor"), advance=False)
    assert refused(cast, e, s, actors_of(cast, revoked=["acme"])).code == "revoked"
    old = KeyPair.generate("acme")
    stale = cast.event("acme", "label", "S7", "Shipped", shipped_payload("distributor"), key=old, advance=False)
    assert refused(cast, stale, s).code == "revoked_key"


def test_chain_link_rules(cast):
    s = run(cast, cast.issue("S8"), None)
    head = s.head
    with pytest.raises(Refused) as err:
        check_link(s, cast.event("gateway", "label", "S8", "Scanned", scanned_payload(), seq=0, prev=GENESIS_HASH, advance=False).event)
    assert err.value.code == "stale_head"
    with pytest.raises(Refused) as err:
        check_link(s, cast.event("gateway", "label", "S8", "Scanned", scanned_payload(), seq=2, prev=head, advance=False).event)
    assert err.value.code == "chain_gap"
    with pytest.raises(Refused) as err:
        check_link(s, cast.event("gateway", "label", "S8", "Scanned", scanned_payload(), seq=1, prev=bytes(31) + b"\x01", advance=False).event)
    assert err.value.code == "prev_hash_mismatch"
    with pytest.raises(Refused) as err:
        check_link(None, cast.event("gateway", "label", "S9", "Scanned", scanned_payload(), seq=1, prev=head, advance=False).event)
    assert err.value.code == "unknown_subject"


def test_bootstrap_is_only_a_self_signed_registrar(cast):
    assert is_bootstrap(cast.bootstrap().event)
    assert not is_bootstrap(cast.register("acme").event)


def test_registered_actor_cannot_be_registered_again(cast):
    first = cast.register("acme")
    state = fold(None, first.event, first.hash)
    again = cast.register("acme")  # seq 1 on the same actor chain
    with pytest.raises(Refused) as err:
        authorize(state, again.event, cast.actor_state("registrar"), actors_of(cast))
    assert err.value.code == "already_registered"
