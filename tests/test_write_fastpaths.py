"""The write path's shortcuts give exactly what the generic code gives (issue #7, batch issuance).

- ``ledger/routing.py``: the relay's quick read of an event's routing fields and its
  hand-made envelope, against the Avro codecs;
- ``LedgerApplication.to_stored_events`` / ``signed_parts``: the stored rows' JSON, against
  eventsourcing's mapper, both ways;
- ``Chain.start``: the same aggregate and pending event as eventsourcing's ``_create``;
- ``ColumnarProcessRecorder``: a batch stored in order, and a second writer of a
  chain's next version still refused (no fork), on the real PostgreSQL.
"""

from __future__ import annotations

import pytest

from ledger import routing
from ledger.encoding import envelope_codec, event_codec
from ledger.errors import Refused
from ledger.events import SignedEvent
from ledger.service import Ledger
from ledger.store import Chain, ColumnarProcessRecorder, LedgerApplication, chain_id
from tests.helpers import Cast, gtin, scanned_payload, shipped_payload


def varied_events(cast: Cast) -> list[SignedEvent]:
    """Events of every subject type, v1 and v2 bodies, long and non-ASCII strings."""
    out = cast.founding_events()
    for i in range(40):
        issued = cast.issue(product="电动车电池 48V" if i % 2 else "x" * 200)
        out.append(issued)
        out.append(cast.event("acme", "label", issued.event.subject, "Shipped", shipped_payload("distributor")))
        out.append(cast.event("gateway", "label", issued.event.subject, "Scanned", scanned_payload()))
    out.append(cast.event("regulator", "lot", f"{gtin()}/L1", "Recalled", {"reason": "cells overheat"}))
    for seq in range(130, 140):  # seq beyond one varint byte
        e = cast.event("gateway", "label", out[8].event.subject, "Scanned", scanned_payload(), seq=seq, advance=False)
        out.append(e)
    v1 = event_codec().versions[0]
    old = out[8].event
    body = v1.encode(old.to_record())
    out.append(SignedEvent.from_parts(body, cast.keys["acme"].sign(body)))
    return out


def test_route_and_envelope_match_the_codecs():
    for signed in varied_events(Cast()):
        e = signed.event
        assert routing.route(signed.body) == (e.event_id, e.subject_type, e.subject, e.seq)
        assert routing.envelope(signed.body, signed.signature) == envelope_codec().encode({"body": signed.body, "signature": signed.signature})
        assert routing.envelope(signed.body, signed.signature) == signed.envelope


@pytest.mark.parametrize("mutate", [
    lambda b: b[:5],                                  # truncated header
    lambda b: b"\xc3\x01" + bytes(8) + b[10:],        # unknown schema
    lambda b: b[:10] + b"\xff\xff",                  # truncated varint
    lambda b: b[:10] + b"\x80\x00" + b[11:],         # overlong length
    lambda b: b[:10] + b"\x48" + b"\xff" * 36 + b[47:],  # invalid UTF-8 in event_id
])
def test_route_refuses_what_the_decoder_refuses(mutate):
    signed = Cast().issue()
    bad = mutate(signed.body)
    with pytest.raises(Refused) as quick:
        routing.route(bad)
    with pytest.raises(Refused) as full:
        SignedEvent.from_parts(bad, signed.signature)
    assert quick.value.code == full.value.code


def test_stored_rows_equal_the_mappers_both_ways():
    app = LedgerApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    cast = Cast()
    issued = cast.issue()
    chain = Chain.start(issued)
    chain.append(cast.event("acme", "label", issued.event.subject, "Shipped", shipped_payload("distributor")))
    events = chain.collect_events()
    assert [type(e) for e in events] == [Chain.Started, Chain.Appended]
    fast = app.to_stored_events(events)
    assert fast == [app.mapper.to_stored_event(e) for e in events]
    for stored, event in zip(fast, events):
        assert app.signed_parts(stored) == (event.body, event.signature)
    app.close()


def test_chain_start_is_what_create_makes():
    signed = Cast().issue()
    e = signed.event
    fast = Chain.start(signed)
    generic = Chain._create(Chain.Started, id=chain_id(e.subject_type, e.subject), body=signed.body, signature=signed.signature)
    for attr in ("id", "version", "state", "head", "length", "broken", "hashes", "subject"):
        assert getattr(fast, attr) == getattr(generic, attr), attr
    [a], [b] = fast.collect_events(), generic.collect_events()
    assert type(a) is type(b) and (a.originator_id, a.originator_version, a.originator_topic, a.body, a.signature) == (
        b.originator_id, b.originator_version, b.originator_topic, b.body, b.signature)


def test_columnar_recorder_keeps_order_and_refuses_a_fork(settings):
    ledger = Ledger(settings)
    try:
        assert isinstance(ledger.app.recorder, ColumnarProcessRecorder)
        cast = Cast()
        assert {r.status for r in ledger.append(cast.founding_events())} == {"accepted"}
        before = ledger.app.recorder.max_notification_id()
        batch = [cast.issue() for _ in range(300)]
        assert {r.status for r in ledger.append(batch)} == {"accepted"}
        rows = ledger.app.recorder.select_notifications(start=before, limit=1000, inclusive_of_start=False)
        assert [ledger.app.signed_parts(n)[0] for n in rows] == [s.body for s in batch]  # commit order = batch order
        # Two writers sign different event 1s on one chain: exactly one is stored.
        serial = batch[0].event.subject
        first = cast.event("acme", "label", serial, "Shipped", shipped_payload("distributor"), advance=False)
        second = cast.event("acme", "label", serial, "Shipped", shipped_payload("retailer"), advance=False)
        other = Ledger(settings)
        try:
            stale_chains = other.app.load_chains([chain_id("label", serial)])
            assert ledger.append([first])[0].status == "accepted"
            # ``other`` saves on top of what it loaded before ``first`` landed: the store refuses it.
            chain = stale_chains[chain_id("label", serial)]
            chain.append(second)
            with pytest.raises(Exception) as lost:
                other._put(chain.collect_events())
            assert "IntegrityError" in type(lost.value).__name__
        finally:
            other.close()
        assert ledger.head("label", serial)["hash"] == first.hash.hex()
    finally:
        ledger.close()


def test_serial_of_is_the_5_bit_groups_in_crockford_base32():
    import secrets

    from ledger import gs1

    def by_groups(n: int) -> str:
        return "".join(gs1.CROCKFORD[(n >> (5 * i)) & 31] for i in reversed(range(gs1.SERIAL_LEN)))

    for n in [0, 1, 31, 32, 2**100 - 1] + [secrets.randbits(gs1.SERIAL_BITS) for _ in range(5000)]:
        assert gs1.serial_of(n) == by_groups(n)


def test_processes_starting_together_on_a_fresh_database_all_get_a_store(fresh_settings):
    """Two API workers start at once on an empty database: both create-or-find the tables."""
    import threading

    for _ in range(2):
        settings = fresh_settings()
        errors: list[Exception] = []

        def start() -> None:
            try:
                LedgerApplication(env=settings.eventsourcing_env()).close()  # noqa: B023 - called within this iteration
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)  # noqa: B023 - called within this iteration

        threads = [threading.Thread(target=start) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []


def test_partition_hash_is_kafkas_murmur2():
    import os

    from kafka.partitioner.default import murmur2

    from ledger.transparency.log import murmur2_fast, partition_for

    for length in range(0, 40):
        for _ in range(50):
            key = os.urandom(length)
            assert murmur2_fast(key) == murmur2(key)
            assert partition_for(key, 12) == (murmur2(key) & 0x7FFFFFFF) % 12
