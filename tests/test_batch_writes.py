"""Batch issuance on the write side (real PostgreSQL): one event, all labels or none."""

from __future__ import annotations

import psycopg
import pytest

from ledger import batches
from ledger.batches import Batch, LabelStep
from ledger.errors import Refused
from ledger.events import SignedEvent
from ledger.service import Ledger
from ledger.store import chain_id
from tests.helpers import Cast, gtin, issued_payload, shipped_payload


@pytest.fixture
def world(settings):
    ledger = Ledger(settings)
    cast = Cast()
    results = ledger.append(cast.founding_events())
    assert [r.status for r in results] == ["accepted"] * len(results)
    yield ledger, cast
    ledger.close()


def counts(ledger: Ledger) -> tuple[int, int, int]:
    with psycopg.connect(ledger.settings.pg_conninfo) as conn:
        heads = conn.execute("SELECT count(*) FROM label_heads").fetchone()[0]
        manifests = conn.execute("SELECT count(*) FROM batch_manifests").fetchone()[0]
    return ledger.app.recorder.max_notification_id() or 0, heads, manifests


def make(cast: Cast, serials, producer="acme", **payload) -> Batch:
    return batches.issuance(issued_payload(gtin(), **payload), serials, actor=producer, key=cast.keys[producer])


def refused(ledger: Ledger, batch: Batch | SignedEvent, manifest: bytes | None = None) -> Refused:
    before = counts(ledger)
    signed = batch.signed if isinstance(batch, Batch) else batch
    result = ledger.append_batch(signed, batch.manifest if manifest is None else manifest)
    assert result.status == "refused", result
    assert counts(ledger) == before, "a refused batch wrote something"
    return result.error


def test_a_batch_is_one_event_and_every_label_gets_its_head(world):
    ledger, cast = world
    serials = [f"B{i:05d}" for i in range(300)]
    b = make(cast, serials)
    before = counts(ledger)
    result = ledger.append_batch(b.signed, b.manifest)
    assert result.status == "accepted" and result.hash == b.signed.hash.hex()
    after = counts(ledger)
    assert after == (before[0] + 1, before[1] + 300, before[2] + 1)  # one event, 300 heads, one manifest
    with psycopg.connect(ledger.settings.pg_conninfo) as conn:
        rows = dict(conn.execute("SELECT serial, head FROM label_heads").fetchall())
    assert [bytes(rows[s]) for s in serials] == b.step_hashes()
    # Retrying the same bytes writes nothing more.
    assert ledger.append_batch(b.signed, b.manifest).status == "duplicate"
    assert counts(ledger) == after
    # The stored batch chain folds (replay, audits of the store).
    chain = ledger.app.load_chain("batch", b.signed.event.subject)
    assert chain.broken is None and chain.state.count == 300


def test_a_batch_with_one_label_already_issued_is_refused_whole(world):
    ledger, cast = world
    first = make(cast, ["DUP00001", "DUP00002"])
    assert ledger.append_batch(first.signed, first.manifest).status == "accepted"
    again = make(cast, ["NEW00001", "DUP00002", "NEW00002"])
    err = refused(ledger, again)
    assert err.code == "label_exists" and "nothing written" in err.detail
    # A label issued by a single (event.v2-style) event cannot be re-issued in a batch either...
    assert ledger.append([cast.issue("SINGLE01")])[0].status == "accepted"
    assert refused(ledger, make(cast, ["SINGLE01", "NEW00003"])).code == "label_exists"
    # ... nor by a single event; a batch label's chain starts at its batch step instead.
    [r] = ledger.append([cast.issue("DUP00001")])
    assert r.status == "refused" and r.error.code == "stale_head"
    chain = ledger.app.load_chain("label", "DUP00001")
    assert (chain.length, chain.head, chain.state.producer, chain.state.status) == (1, first.step_hashes()[0], "acme", "issued")


def test_single_events_continue_a_batch_labels_chain_from_its_step_hash(world):
    ledger, cast = world
    b = make(cast, ["CONT0001", "CONT0002"])
    assert ledger.append_batch(b.signed, b.manifest).status == "accepted"
    step = b.step_hashes()[0]
    wrong = cast.event("acme", "label", "CONT0001", "Shipped", shipped_payload("distributor"), seq=1, prev=bytes(31) + b"\x01", advance=False)
    [r] = ledger.append([wrong])
    assert r.status == "refused" and r.error.code == "prev_hash_mismatch"
    shipped = cast.event("acme", "label", "CONT0001", "Shipped", shipped_payload("distributor"), seq=1, prev=step)
    received = cast.event("distributor", "label", "CONT0001", "Received", {"region": "4403"}, seq=2, prev=shipped.hash)
    assert [x.status for x in ledger.append([shipped, received])] == ["accepted", "accepted"]
    chain = ledger.app.load_chain("label", "CONT0001")
    assert chain.broken is None and chain.length == 3 and chain.state.custodian == "distributor"
    # Only the custodian moves it: another producer cannot ship the second label.
    [r] = ledger.append([cast.event("other-producer", "label", "CONT0002", "Shipped", shipped_payload("distributor"), seq=1, prev=b.step_hashes()[1])])
    assert r.status == "refused" and r.error.code == "not_authorized"


def test_tampered_manifest_bad_signature_and_wrong_signer_are_refused(world):
    ledger, cast = world
    b = make(cast, ["T0001", "T0002", "T0003"])
    steps = list(b.steps)
    assert refused(ledger, b, batches.encode_manifest([steps[2], steps[0], steps[1]])).code == "manifest_mismatch"
    assert refused(ledger, b, batches.encode_manifest([*steps, LabelStep("T0004")])).code == "manifest_mismatch"
    assert refused(ledger, b, b.manifest[:-1]).code == "malformed_manifest"
    forged = SignedEvent(b.signed.body, bytes([b.signed.signature[0] ^ 1]) + b.signed.signature[1:], b.signed.event)
    assert refused(ledger, forged, b.manifest).code == "bad_signature"
    # A distributor may not issue; another producer may not issue under acme's prefix.
    assert refused(ledger, make(cast, ["T0005"], producer="distributor")).code == "not_authorized"
    assert refused(ledger, make(cast, ["T0006"], producer="other-producer")).code == "not_authorized"
    # A batch shipment without its sealed consignee, territory and channel is refused by name.
    shipped = cast.event("acme", "batch", "00000000-0000-4000-8000-000000000001", "BatchShipped",
                         {"count": 1, "labels_root": batches.labels_root([LabelStep("T0001", 1, bytes(31) + b"\x01")]), "region": None, "sealed": None})
    err = refused(ledger, shipped, batches.encode_manifest([LabelStep("T0001", 1, bytes(31) + b"\x01")]))
    assert err.code == "missing_field" and err.field == "sealed"


def test_two_batches_racing_for_one_label_cannot_both_win(world):
    ledger, cast = world
    import threading

    a, b = make(cast, ["RACE0001", "RACEA"]), make(cast, ["RACE0001", "RACEB"])
    results = {}
    gate = threading.Barrier(2)

    def go(name, batch):
        gate.wait()
        results[name] = ledger.append_batch(batch.signed, batch.manifest).status

    threads = [threading.Thread(target=go, args=(n, x)) for n, x in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == ["accepted", "refused"]
    with psycopg.connect(ledger.settings.pg_conninfo) as conn:
        owners = conn.execute("SELECT serial FROM label_heads WHERE serial LIKE 'RACE%' ORDER BY serial").fetchall()
    assert len(owners) == 2 and ("RACE0001",) in owners
    assert chain_id("label", "RACE0001")  # the id the single-event path is refused by
