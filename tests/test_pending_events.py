"""A batch label's later events read before the batch event that issued it, on the real stack.

The relay keys a ``BatchIssued`` by its batch id and the label's later single events by
its serial, so they sit on different partitions and the projector may read a label's
Shipped or scan first. Such a record is parked in ``<schema>.pending`` (with the offsets,
exactly once) and applied, in log order, in the transaction that applies the batch; a
genuinely bad record is still quarantined at once. Here the label topic is published
again in the worst order (every record of the topic reversed, into one partition) and the
read model must end equal, row for row, to the one projected from the relay's order.
"""

from __future__ import annotations

import dataclasses

import psycopg
from kafka import KafkaProducer

from consumers.detector import build as build_detector
from consumers.projector import build
from consumers.topics import ensure_topics
from ledger.events import SignedEvent
from ledger.record_headers import header
from tests.helpers import Cast, scanned_payload, shipped_payload
from tests.pipeline import founded_ledger, project_all, relay_all, topic_records
from tests.test_batch_pipeline import issue, rows
from tests.test_crash_points import crashed_at

TABLES = {
    "labels": "serial, gtin, lot, producer, expiry, pin_hash, status, custodian, consignee, seq, head, scan_count, first_scanned_at, last_event_at",
    "events": "subject_type, subject, seq, event_id, kind, actor, region, occurred_at, hash, log_index",
    "batches": "batch_id, event_id, hash, log_index",
}


def _build_history(settings) -> Cast:
    """Two batches and a single-issued label; then ships, receipts and scans of batch labels."""
    with founded_ledger(settings, Cast()) as (settings, ledger, cast):
        first = issue(ledger, cast, [f"A{i:04d}" for i in range(5)])
        second = issue(ledger, cast, [f"B{i:04d}" for i in range(3)])
        single = cast.issue("S0001")
        events = [single, cast.event("acme", "label", "S0001", "Shipped", shipped_payload("distributor"))]
        for serial, head in [("A0001", first.step_hashes()[1]), ("A0003", first.step_hashes()[3]), ("B0002", second.step_hashes()[2])]:
            events.append(cast.event("acme", "label", serial, "Shipped", shipped_payload("distributor"), seq=1, prev=head))
            events.append(cast.event("distributor", "label", serial, "Received", {"region": "440100"}))
        events.append(cast.event("gateway", "label", "A0004", "Scanned", scanned_payload(), seq=1, prev=first.step_hashes()[4]))
        events.append(cast.event("gateway", "label", "A0004", "Scanned", scanned_payload()))
        results = ledger.append(events)
        assert [r.status for r in results] == ["accepted"] * len(events), [r.error for r in results if r.error]
    return cast


def _republish_reversed(settings, adversarial, *, forged: Cast | None = None, only=lambda r: True, actors: bool = True) -> int:
    """Copy the actor topic in order and the label topic reversed into partition 0 of
    ``adversarial``'s topics (a label's Received before its Shipped before its batch).
    With ``forged`` (the cast), first a copy of a batch label's Shipped with a broken
    signature and a Shipped of another, well signed, linked to a wrong hash (never
    accepted by the ledger: published straight to the topic); ``only`` picks the label
    records to copy. Returns how many were copied."""
    ensure_topics(adversarial)
    producer = KafkaProducer(**adversarial.kafka_client_config())
    try:
        for r in topic_records(settings, settings.actor_topic) if actors else ():
            producer.send(adversarial.actor_topic, key=r.key, value=r.value, headers=list(r.headers), partition=0)
        labels = [r for r in topic_records(settings, settings.label_topic) if only(r)]
        labels.sort(key=lambda r: int(dict(r.headers)["log_index"]), reverse=True)
        if forged:
            shipped = next(r for r in labels if r.key == b"A0003" and SignedEvent.from_envelope(r.value).event.kind == "Shipped")
            broken = shipped.value[:-1] + bytes([shipped.value[-1] ^ 1])  # the envelope ends with the signature
            producer.send(adversarial.label_topic, key=shipped.key, value=broken, headers=list(shipped.headers), partition=0)
            unlinked = forged.event("acme", "label", "A0002", "Shipped", shipped_payload("distributor"), seq=1, prev=b"\x01" * 32, advance=False)
            producer.send(adversarial.label_topic, key=b"A0002", value=unlinked.envelope, headers=[("log_index", b"1000000")], partition=0)
        for r in labels:
            producer.send(adversarial.label_topic, key=r.key, value=r.value, headers=list(r.headers), partition=0)
        producer.flush()
    finally:
        producer.close()
    return len(labels)


def _project(settings, schema: str, **options):
    consumer = build(settings, schema=schema)
    for name, value in options.items():
        setattr(consumer, name, value)
    try:
        consumer.run(until_idle=True)
    finally:
        consumer.close()
    return consumer


def _table(settings, schema: str, table: str) -> list[tuple]:
    return sorted(rows(settings, f"SELECT {TABLES[table]} FROM {schema}.{table}"))


def test_batch_labels_events_read_before_their_batch_wait_and_end_equal_to_a_rebuild(settings, fresh_settings):
    cast = _build_history(settings)
    relay_all(settings)
    project_all(settings)  # the reference: the relay's order
    assert rows(settings, "SELECT count(*) FROM verification.quarantine") == [(0,)]
    assert rows(settings, "SELECT count(*) FROM verification.labels") == [(9,)]

    adversarial = dataclasses.replace(settings, topic_prefix=fresh_settings().topic_prefix)
    n = _republish_reversed(settings, adversarial, forged=cast)
    consumer = _project(adversarial, "adversarial", max_records=3)  # parked in one transaction, applied in a later one

    assert consumer.parked >= 9  # every event of a batch label came before its batch, and the unlinked one
    # The forged copy is refused at once (its signature), not parked; the genuine one applied.
    # The unlinked Shipped waited for its label, then was refused as before (wrong prev hash).
    assert rows(settings, "SELECT code FROM adversarial.quarantine ORDER BY 1") == [("bad_signature",), ("prev_hash_mismatch",)]
    assert rows(settings, "SELECT count(*) FROM adversarial.pending") == [(0,)]
    assert consumer.applied == n
    for table in TABLES:
        assert _table(settings, "adversarial", table) == _table(settings, "verification", table), table
    with psycopg.connect(settings.pg_conninfo) as conn:
        trail = conn.execute("SELECT kind FROM adversarial.events WHERE subject = 'A0001' ORDER BY seq").fetchall()
    assert trail == [("Issued",), ("Shipped",), ("Received",)]

    # Exactly once: a second pass over the same topic (new consumer, stored offsets) changes nothing.
    again = _project(adversarial, "adversarial")
    assert again.applied == again.parked == 0
    for table in TABLES:
        assert _table(settings, "adversarial", table) == _table(settings, "verification", table), table

    # The detector re-verifies with the same projector: it parks and applies the same way.
    detector = build_detector(adversarial, schema="adversarial_alerts")
    try:
        detector.run(until_idle=True)
    finally:
        detector.close()
    assert rows(settings, "SELECT code FROM adversarial_alerts.quarantine ORDER BY 1") == [("bad_signature",), ("prev_hash_mismatch",)]
    assert rows(settings, "SELECT count(*) FROM adversarial_alerts.pending") == [(0,)]
    for table in TABLES:
        assert _table(settings, "adversarial_alerts", table) == _table(settings, "verification", table), table


def test_a_label_that_never_comes_stays_parked_not_quarantined_nor_applied(settings, fresh_settings):
    """A later event of a label no batch ever issued waits (visible in ``pending``) and
    changes nothing: it is not applied, and a later projector run does not park it twice."""
    _build_history(settings)
    relay_all(settings)
    adversarial = dataclasses.replace(settings, topic_prefix=fresh_settings().topic_prefix)
    _republish_reversed(settings, adversarial, only=lambda r: r.key == b"A0001")  # without the batch that issued it
    for _ in range(2):
        _project(adversarial, "orphan")
    assert rows(settings, "SELECT subject, count(*) FROM orphan.pending GROUP BY subject") == [("A0001", 2)]
    assert rows(settings, "SELECT count(*) FROM orphan.labels") == [(0,)]
    assert rows(settings, "SELECT count(*) FROM orphan.quarantine") == [(0,)]


def test_a_projector_killed_while_applying_parked_records_applies_them_once_on_resume(fresh_settings, services, tmp_path):
    """Parked records committed earlier; SIGKILL after they were applied with their batch but
    before the commit: nothing of it is visible, they are still parked, and the resumed
    projector applies batch and parked records once, equal to the relay-order projection."""
    settings = fresh_settings(log_key=tmp_path / "log.key")
    _build_history(settings)
    relay_all(settings)
    project_all(settings, schema="reference")
    adversarial = dataclasses.replace(settings, topic_prefix=fresh_settings().topic_prefix)
    _republish_reversed(settings, adversarial, only=lambda r: header(r, "manifest") is None)  # every single event first
    first = _project(adversarial, "verification")
    parked_before = rows(adversarial, 'SELECT topic, partition, "offset" FROM verification.pending ORDER BY 1, 2, 3')
    # A0001, A0003, B0002: Shipped + Received; A0004: two scans (S0001's Shipped waited for its Issued only).
    assert len(parked_before) == 8 and first.parked == 9
    _republish_reversed(settings, adversarial, only=lambda r: header(r, "manifest") is not None, actors=False)

    projector = services("consumers.projector", adversarial.with_(crash_at="consumer.unparked:1"), name="projector")
    crashed_at(projector, "consumer.unparked", 1)
    assert rows(adversarial, 'SELECT topic, partition, "offset" FROM verification.pending ORDER BY 1, 2, 3') == parked_before
    assert rows(adversarial, "SELECT count(*) FROM verification.batches") == [(0,)]

    resumed = build(adversarial, group=f"{adversarial.topic_prefix}resumed")
    try:
        resumed.run(until_idle=True)
    finally:
        resumed.close()
    assert resumed.applied == 2 + 8 and resumed.parked == 0  # the two batches, then every parked record once
    assert rows(adversarial, "SELECT count(*) FROM verification.pending") == [(0,)]
    assert rows(adversarial, "SELECT count(*) FROM verification.quarantine") == [(0,)]
    for table in TABLES:
        assert _table(settings, "verification", table) == _table(settings, "reference", table), table
