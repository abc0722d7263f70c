"""The write side on real PostgreSQL: what is accepted, what is refused, and
that a refusal writes nothing."""

from __future__ import annotations

import threading

import pytest

from ledger.encoding import event_codec
from ledger.errors import Refused
from ledger.events import SignedEvent
from ledger.service import Ledger
from ledger.store import chain_id
from tests.helpers import Cast, gtin, scanned_payload, shipped_payload


@pytest.fixture
def world(settings):
    ledger = Ledger(settings)
    cast = Cast()
    results = ledger.append(cast.founding_events())
    assert [r.status for r in results] == ["accepted"] * len(results)
    yield ledger, cast
    ledger.close()


def notifications(ledger: Ledger) -> int:
    return ledger.app.recorder.max_notification_id() or 0


def refuse(ledger, signed) -> Refused:
    before = notifications(ledger)
    [result] = ledger.append([signed])
    assert result.status == "refused", result
    assert notifications(ledger) == before, "a refused event wrote something"
    return result.error


def test_issue_ship_receive_and_duplicate_retry(world):
    ledger, cast = world
    issued = cast.issue("LBL1")
    shipped = cast.event("acme", "label", "LBL1", "Shipped", shipped_payload("distributor"))
    assert [r.status for r in ledger.append([issued, shipped])] == ["accepted", "accepted"]
    before = notifications(ledger)
    # A client retrying after a timeout sends the same bytes: no second write.
    assert [r.status for r in ledger.append([issued, shipped])] == ["duplicate", "duplicate"]
    assert notifications(ledger) == before
    chain = ledger.app.load_chain("label", "LBL1")
    assert chain.length == 2 and chain.broken is None and chain.state.status == "in_transit"


def test_forged_signature_is_refused(world):
    ledger, cast = world
    good = cast.issue("LBL2")
    forged = SignedEvent(good.body, bytes([good.signature[0] ^ 1]) + good.signature[1:], good.event)
    assert refuse(ledger, forged).code == "bad_signature"


def test_signature_by_revoked_actor_is_refused(world):
    ledger, cast = world
    assert ledger.append([cast.event("registrar", "actor", "other-producer", "ActorRevoked", {"reason": "licence withdrawn"})])[0].status == "accepted"
    e = cast.event("other-producer", "label", "LBL3", "Issued", {"gtin": _gtin_other(), "lot": "L1", "expiry": None, "product": "Cable", "region": None, "pin_hash": None})
    assert refuse(ledger, e).code == "revoked"


def _gtin_other():
    from ledger import gs1
    body = "0690987600001"
    return body + str(gs1.gtin_check_digit(body))


def test_rotated_key_no_longer_signs(world):
    from ledger.keys import KeyPair

    ledger, cast = world
    new_key = KeyPair.generate("acme")
    rotate = cast.event("registrar", "actor", "acme", "ActorKeyRotated", {"public_key": new_key.public_key})
    assert ledger.append([rotate])[0].status == "accepted"
    assert refuse(ledger, cast.issue("LBL4")).code == "revoked_key"
    cast.heads.pop(("label", "LBL4"))
    cast.keys["acme"] = new_key
    assert ledger.append([cast.issue("LBL4")])[0].status == "accepted"


def test_wrong_role_and_not_owner_are_refused(world):
    ledger, cast = world
    assert refuse(ledger, cast.issue("LBL5", producer="distributor")).code == "not_authorized"
    assert ledger.append([cast.issue("LBL6")])[0].status == "accepted"
    assert refuse(ledger, cast.event("retailer", "label", "LBL6", "Shipped", shipped_payload("distributor"), advance=False)).code == "not_authorized"
    assert refuse(ledger, cast.event("acme", "label", "LBL6", "FlaggedCounterfeit", {"reason": "x", "region": None}, advance=False)).code == "not_authorized"


def test_stale_replayed_and_unknown_are_refused(world):
    ledger, cast = world
    first = cast.issue("LBL7")
    ledger.append([first])
    scan1 = cast.event("gateway", "label", "LBL7", "Scanned", scanned_payload())
    ledger.append([scan1])
    # Built on the old head (seq 1 again, different content): stale.
    stale = cast.event("gateway", "label", "LBL7", "Scanned", scanned_payload(region="110101"), seq=1, prev=first.hash, advance=False)
    assert refuse(ledger, stale).code == "stale_head"
    # Right seq, wrong prev_hash.
    assert refuse(ledger, cast.event("gateway", "label", "LBL7", "Scanned", scanned_payload(), prev=first.hash, advance=False)).code == "prev_hash_mismatch"
    # A label that was never issued.
    assert refuse(ledger, cast.event("gateway", "label", "NEVER1", "Scanned", scanned_payload(), seq=1, prev=first.hash, advance=False)).code == "unknown_subject"
    # The first event of a subject that already exists (a replayed issuance with a new id).
    assert refuse(ledger, cast.event("acme", "label", "LBL7", "Issued", {"gtin": gtin(), "lot": "L1", "expiry": None, "product": "x", "region": None, "pin_hash": None}, seq=0, prev=bytes(32), advance=False)).code == "stale_head"


def test_hand_crafted_bad_fields_are_refused_at_decoding(world):
    """A client that skips validation and signs bad fields still gets refused."""
    ledger, cast = world
    good = cast.issue("LBL8", advance=False)
    record = good.event.to_record()
    record["payload"] = (record["payload"][0], record["payload"][1] | {"gtin": "06901234000011"})  # bad check digit
    body = event_codec().encode(record)
    sig = cast.keys["acme"].sign(body)
    with pytest.raises(Refused) as err:
        SignedEvent.from_parts(body, sig)
    assert err.value.field == "gtin"
    before = notifications(ledger)
    [result] = ledger.append([err.value])
    assert result.status == "refused" and notifications(ledger) == before


def test_future_timestamp_is_refused(world):
    from datetime import datetime, timedelta, timezone

    from ledger.events import new_event

    ledger, cast = world
    key = cast.keys["acme"]
    e = new_event(subject_type="label", subject="LBL9", kind="Issued", payload={"gtin": gtin(), "lot": "L1", "expiry": None, "product": "x", "region": None, "pin_hash": None},
                  actor="acme", key_id=key.key_id, occurred_at=datetime.now(timezone.utc) + timedelta(hours=1))
    assert refuse(ledger, e.sign(key)).field == "occurred_at"


def test_second_bootstrap_is_refused(world):
    from ledger.keys import KeyPair

    ledger, cast = world
    rogue = KeyPair.generate("rogue-registrar")
    c2 = Cast()
    c2.keys["registrar"] = rogue
    e = c2.event("rogue-registrar", "actor", "rogue-registrar", "ActorRegistered",
                 {"role": "registrar", "name": "Rogue", "public_key": rogue.public_key, "gtin_prefixes": []}, key=rogue)
    assert refuse(ledger, e).code == "unknown_actor"


def test_racing_writers_never_fork_a_chain(world, settings):
    """Two processes' worth of writers (separate connections) append event n
    to the same label at the same moment, 25 times: each round exactly one wins."""
    ledger, cast = world
    other = Ledger(settings)
    ledger.append([cast.issue("RACE1")])
    try:
        _race(ledger, other, cast)
    finally:
        other.close()


def _race(ledger, other, cast):
    for round_no in range(25):
        head_seq, head_hash = cast.heads[("label", "RACE1")]
        a = cast.event("gateway", "label", "RACE1", "Scanned", scanned_payload(region="440305"), advance=False)
        b = cast.event("gateway", "label", "RACE1", "Scanned", scanned_payload(region="110101"), advance=False)
        barrier = threading.Barrier(2)
        out = {}

        def write(name, writer, event):
            barrier.wait()  # noqa: B023 - called within this iteration
            out[name] = writer.append([event])[0]  # noqa: B023 - called within this iteration

        threads = [threading.Thread(target=write, args=("a", ledger, a)), threading.Thread(target=write, args=("b", other, b))]
        [t.start() for t in threads]
        [t.join() for t in threads]
        statuses = sorted(r.status for r in out.values())
        assert statuses == ["accepted", "refused"], (round_no, out)
        loser = next(r for r in out.values() if r.status == "refused")
        assert loser.error.code in ("stale_head", "prev_hash_mismatch")
        winner = a if out["a"].status == "accepted" else b
        cast.heads[("label", "RACE1")] = (winner.event.seq, winner.hash)
    chain = ledger.app.load_chain("label", "RACE1")
    assert chain.length == 26 and chain.broken is None
    assert [h for h in chain.hashes] == chain.hashes and len(set(chain.hashes)) == 26


def test_append_to_a_chain_with_a_deleted_row_is_refused_not_a_crash(world):
    import psycopg

    ledger, cast = world
    ledger.append([cast.issue("DEL1")])
    ledger.append([cast.event("gateway", "label", "DEL1", "Scanned", scanned_payload()) for _ in range(3)])
    with psycopg.connect(ledger.settings.pg_conninfo, autocommit=True) as conn:
        conn.execute("DELETE FROM ledger_events WHERE originator_id = %s AND originator_version = 2", (chain_id("label", "DEL1"),))
    chain = ledger.app.load_chain("label", "DEL1")
    assert chain.broken and "missing" in chain.broken
    [result] = ledger.append([cast.event("gateway", "label", "DEL1", "Scanned", scanned_payload())])
    assert result.status == "refused" and result.error.code == "chain_broken"
