"""Pure rules of containers, lots and EPCIS mapping: no services."""

from __future__ import annotations

import copy

import pytest

from ledger import epcis, gs1
from ledger.errors import Refused
from ledger.lifecycle import LotState, authorize, fold, signer_of
from ledger.pairing import check_pairs
from tests.helpers import PREFIX, Cast, gtin, shipped_payload
from tests.test_lifecycle import actors_of

BOX = gs1.make_sscc(0, PREFIX, 7)
OTHER_BOX = gs1.make_sscc(0, PREFIX, 8)


@pytest.fixture
def cast():
    return Cast()


class World:
    """States of every chain, folded the way the ledger folds them, with the cross-chain lookup."""

    def __init__(self, cast):
        self.cast, self.states, self.actors = cast, {}, actors_of(cast)

    def apply(self, *signed):
        for s in signed:
            e = s.event
            state = self.states.get((e.subject_type, e.subject))
            authorize(state, e, signer_of(e, self.actors), self.actors, lambda t, x: self.states.get((t, x)))
            self.states[(e.subject_type, e.subject)] = fold(state, e, s.hash)

    def refused(self, *signed) -> Refused:
        with pytest.raises(Refused) as err:
            self.apply(*signed)
        return err.value


def pack(cast, signer, box, children, kind="Packed"):
    child_kind = {"Packed": "PackedInto", "Unpacked": "UnpackedFrom"}[kind]
    payload = {"container": box} if kind == "Packed" else {"container": box, "territory": None, "channel": None}
    return [cast.event(signer, "container", box, kind, {"children": children, "region": None})] + [
        cast.event(signer, "label", c, child_kind, payload) for c in children
    ]


def test_packing_moves_custody_with_the_container_and_unpacking_hands_it_over(cast):
    w = World(cast)
    w.apply(cast.issue("U1"), cast.event("acme", "container", BOX, "ContainerCreated", {"level": "case", "region": None}))
    w.apply(*pack(cast, "acme", BOX, ["U1"]))
    assert w.states[("label", "U1")].container == BOX and w.states[("container", BOX)].contents == 1
    assert w.refused(cast.event("acme", "label", "U1", "Shipped", shipped_payload("distributor"), advance=False)).code == "packed"
    w.apply(cast.event("acme", "container", BOX, "Shipped", shipped_payload("distributor", "44", "offline_retail")))
    w.apply(cast.event("distributor", "container", BOX, "Received", {"region": None}))
    w.apply(cast.event("distributor", "container", BOX, "Unpacked", {"children": ["U1"], "region": None}),
            cast.event("distributor", "label", "U1", "UnpackedFrom", {"container": BOX, "territory": "44", "channel": "offline_retail"}))
    unit = w.states[("label", "U1")]
    assert (unit.container, unit.custodian, unit.status, unit.territory, unit.channel) == (None, "distributor", "received", "44", "offline_retail")


def test_unpacking_must_carry_the_containers_shipment(cast):
    w = World(cast)
    w.apply(cast.issue("U1"), cast.event("acme", "container", BOX, "ContainerCreated", {"level": "case", "region": None}))
    w.apply(*pack(cast, "acme", BOX, ["U1"]))
    w.apply(cast.event("acme", "container", BOX, "Shipped", shipped_payload("distributor", "44", "offline_retail")))
    w.apply(cast.event("distributor", "container", BOX, "Received", {"region": None}))
    w.apply(cast.event("distributor", "container", BOX, "Unpacked", {"children": ["U1"], "region": None}))
    lie = cast.event("distributor", "label", "U1", "UnpackedFrom", {"container": BOX, "territory": "11", "channel": "online"})
    assert w.refused(lie).field == "territory"


def test_a_container_is_not_decommissioned_while_full_nor_a_case_shipped_from_a_pallet(cast):
    w = World(cast)
    w.apply(cast.issue("U1"), cast.event("acme", "container", BOX, "ContainerCreated", {"level": "case", "region": None}),
            cast.event("acme", "container", OTHER_BOX, "ContainerCreated", {"level": "pallet", "region": None}))
    w.apply(*pack(cast, "acme", BOX, ["U1"]))
    assert w.refused(cast.event("acme", "container", BOX, "Decommissioned", {"reason": "x"}, advance=False)).code == "not_empty"
    w.apply(cast.event("acme", "container", OTHER_BOX, "Packed", {"children": [BOX], "region": None}),
            cast.event("acme", "container", BOX, "PackedInto", {"container": OTHER_BOX}))
    assert w.refused(cast.event("acme", "container", BOX, "Shipped", shipped_payload("distributor"), advance=False)).code == "packed"


def test_only_an_actor_with_the_prefix_creates_its_ssccs(cast):
    w = World(cast)
    foreign = gs1.make_sscc(0, "6909876", 1)
    assert w.refused(cast.event("acme", "container", foreign, "ContainerCreated", {"level": "case", "region": None})).field == "subject"


def test_transformation_needs_commissioned_inputs_and_no_cycles(cast):
    w = World(cast)
    cells, pack_lot = "0" + "6909876" + "00011", f"{gtin('00002')}/P1"
    cells = f"{cells}{gs1.gtin_check_digit(cells)}/C1"
    assert w.refused(cast.event("acme", "lot", pack_lot, "Transformed", {"inputs": [cells], "region": None}, advance=False)).code == "unknown_lot"
    w.apply(cast.event("other-producer", "lot", cells, "LotCommissioned", {"product": "cells", "certificates": ["CCC 1"], "region": None}))
    w.apply(cast.event("acme", "lot", pack_lot, "Transformed", {"inputs": [cells], "region": None}))
    assert w.states[("lot", pack_lot)] == LotState(gtin=pack_lot[:14], lot="P1", producer="acme", inputs=(cells,), seq=0, head=w.states[("lot", pack_lot)].head)
    back = cast.event("other-producer", "lot", cells, "Transformed", {"inputs": [pack_lot], "region": None}, advance=False)
    assert w.refused(back).code == "invalid_field"  # a cycle
    assert w.refused(cast.event("acme", "lot", cells, "LotCommissioned", {"product": "x", "certificates": [], "region": None}, advance=False)).code == "not_authorized"


def test_pairs_of_a_pack_batch(cast):
    batch = pack(cast, "acme", BOX, ["U1", "U2"])
    assert check_pairs([s.event for s in batch]) == {}
    assert set(check_pairs([s.event for s in batch[:2]])) == {0}  # U2 named but not packed
    assert set(check_pairs([s.event for s in batch[1:]])) == {0, 1}  # children without their container's event
    assert set(check_pairs([s.event for s in [batch[1], batch[0], batch[2]]])) == {0, 1}  # a child before its container


def test_epcis_mapping_is_checked_against_the_signed_bytes(cast):
    w = World(cast)
    events = [cast.issue("U1"), cast.event("acme", "container", BOX, "ContainerCreated", {"level": "case", "region": "4403"})]
    events += pack(cast, "acme", BOX, ["U1"])
    w.apply(*events)
    doc = epcis.export(events, {"U1": gtin()}.get, "id.example")
    agg = doc["epcisBody"]["eventList"][-1]
    assert agg["type"] == "AggregationEvent" and agg["parentID"] == f"https://id.example/00/{BOX}"
    assert agg["childEPCs"] == [f"https://id.example/01/{gtin()}/21/U1"] and len(agg[epcis.SIGNED]) == 2
    assert [s.event.event_id for s in epcis.signed_events_of(doc, lambda s: None, "id.example")[0]] == [s.event.event_id for s in events]
    forged = copy.deepcopy(doc)
    forged["epcisBody"]["eventList"][0]["epcList"] = [f"https://id.example/01/{gtin()}/21/OTHER"]
    with pytest.raises(epcis.EpcisError) as err:
        epcis.signed_events_of(forged, lambda s: None, "id.example")
    assert err.value.exception == "ValidationException" and err.value.event_index == 0 and "epcList" in err.value.detail
    split = copy.deepcopy(doc)
    split["epcisBody"]["eventList"][-1][epcis.SIGNED].reverse()
    with pytest.raises(epcis.EpcisError):
        epcis.signed_events_of(split, lambda s: None, "id.example")
