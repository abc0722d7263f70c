"""The auditor (``audit run`` from Kafka) on batch events: signature, labels root, no label twice."""

from __future__ import annotations

import pytest

from ledger import batches
from ledger.batches import LabelStep
from ledger.record_headers import header
from tests.audit_world import PROCESSES, THREADS, codes, make_world
from tests.helpers import gtin, issued_payload, shipped_payload
from tests.test_audit_tamper import failure_at, next_index


@pytest.fixture
def world(fresh_settings, tmp_path):
    w = make_world(fresh_settings, tmp_path, labels=6)
    yield w
    w.ledger.close()


def issue(world, serials) -> batches.Batch:
    b = batches.issuance(issued_payload(gtin()), serials, actor="acme", key=world.cast.keys["acme"])
    assert world.ledger.append_batch(b.signed, b.manifest).status == "accepted"
    return b


def test_audit_verifies_batches_and_locates_a_forged_manifest_or_a_replayed_batch(world):
    world.auditor_options = PROCESSES  # the decoding worker processes of a large audit
    b = issue(world, [f"A{i:05d}" for i in range(700)])
    issue(world, [f"B{i:05d}" for i in range(300)])
    # A single event on a batch label links to its step hash; the auditor follows it.
    shipped = world.cast.event("acme", "label", "A00001", "Shipped", shipped_payload("distributor"), seq=1, prev=b.step_hashes()[1])
    assert world.ledger.append([shipped])[0].status == "accepted"
    world.relay()
    report = world.audit()
    assert report.ok, [f.line() for f in report.failures]
    assert report.as_dict()["labels"] == 6 + 1000

    world.auditor_options = THREADS
    original = next(r for r in world.records() if r.key == b.signed.event.subject.encode())
    steps = list(b.steps)
    forged = batches.encode_manifest([LabelStep("EVIL0001"), *steps[1:]])
    index = next_index(world)
    m_forged = world.produce(original.topic, original.key, original.value, [("log_index", str(index).encode()), ("manifest", forged)])
    report = world.audit()
    assert failure_at(report, m_forged.partition, m_forged.offset).code == "manifest_mismatch"
    # The same batch again under a fresh index (with its genuine manifest): a replay.
    m_again = world.produce(original.topic, original.key, original.value, [("log_index", str(index + 1).encode()), ("manifest", header(original, "manifest"))])
    report = world.audit()
    assert failure_at(report, m_again.partition, m_again.offset).code == "replayed"
    assert "label_exists" not in codes(report)
