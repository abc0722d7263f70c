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
from tests.helpers import Cast, scanned_payload, shipped_payload
from tests.pipeline import founded_ledger, project_all, relay_all, topic_records
from tests.test_batch_pipeline import issue, rows

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


def _republish_reversed(settings, adversarial, *, forged: bool) -> int:
    """Copy the actor topic in order and the label topic reversed into partition 0 of
    ``adversarial``'s topics (a label's Received before its Shipped before its batch).
    With ``forged``, first a copy of a batch label's Shipped with a broken signature."""
    ensure_topics(adversarial)
    producer = KafkaProducer(**adversarial.kafka_client_config())
    try:
        for r in topic_records(settings, settings.actor_topic):
            producer.send(adversarial.actor_topic, key=r.key, value=r.value, headers=list(r.headers), partition=0)
        labels = topic_records(settings, settings.label_topic)
        labels.sort(key=lambda r: int(dict(r.headers)["log_index"]), reverse=True)
        if forged:
            shipped = next(r for r in labels if r.key == b"A0003" and SignedEvent.from_envelope(r.value).event.kind == "Shipped")
            broken = shipped.value[:-1] + bytes([shipped.value[-1] ^ 1])  # the envelope ends with the signature
            producer.send(adversarial.label_topic, key=shipped.key, value=broken, headers=list(shipped.headers), partition=0)
        for r in labels:
            producer.send(adversarial.label_topic, key=r.key, value=r.value, headers=list(r.headers), partition=0)
        producer.flush()
    finally:
        producer.close()
    return len(labels)


def _table(settings, schema: str, table: str) -> list[tuple]:
    return sorted(rows(settings, f"SELECT {TABLES[table]} FROM {schema}.{table}"))


def test_batch_labels_events_read_before_their_batch_wait_and_end_equal_to_a_rebuild(settings, fresh_settings):
    _build_history(settings)
    relay_all(settings)
    project_all(settings)  # the reference: the relay's order
    assert rows(settings, "SELECT count(*) FROM verification.quarantine") == [(0,)]
    assert rows(settings, "SELECT count(*) FROM verification.labels") == [(9,)]

    adversarial = dataclasses.replace(settings, topic_prefix=fresh_settings().topic_prefix)
    n = _republish_reversed(settings, adversarial, forged=True)
    consumer = build(adversarial, schema="adversarial")
    consumer.max_records = 3  # parked in one transaction, applied in a later one
    try:
        consumer.run(until_idle=True)
    finally:
        consumer.close()

    assert consumer.parked >= 7  # every event of a batch label came before its batch
    # The forged copy is refused at once (its signature), not parked; the genuine one applied.
    assert rows(settings, "SELECT code FROM adversarial.quarantine") == [("bad_signature",)]
    assert rows(settings, "SELECT count(*) FROM adversarial.pending") == [(0,)]
    assert consumer.applied == n
    for table in TABLES:
        assert _table(settings, "adversarial", table) == _table(settings, "verification", table), table
    with psycopg.connect(settings.pg_conninfo) as conn:
        trail = conn.execute("SELECT kind FROM adversarial.events WHERE subject = 'A0001' ORDER BY seq").fetchall()
    assert trail == [("Issued",), ("Shipped",), ("Received",)]

    # Exactly once: a second pass over the same topic (new consumer, stored offsets) changes nothing.
    again = build(adversarial, schema="adversarial")
    try:
        again.run(until_idle=True)
    finally:
        again.close()
    assert again.applied == again.parked == 0
    for table in TABLES:
        assert _table(settings, "adversarial", table) == _table(settings, "verification", table), table

    # The detector re-verifies with the same projector: it parks and applies the same way.
    detector = build_detector(adversarial, schema="adversarial_alerts")
    try:
        detector.run(until_idle=True)
    finally:
        detector.close()
    assert rows(settings, "SELECT code FROM adversarial_alerts.quarantine") == [("bad_signature",)]
    assert rows(settings, "SELECT count(*) FROM adversarial_alerts.pending") == [(0,)]
    for table in TABLES:
        assert _table(settings, "adversarial_alerts", table) == _table(settings, "verification", table), table


def test_a_label_that_never_comes_stays_parked_not_quarantined_nor_applied(settings, fresh_settings):
    """A later event of a label no batch ever issued waits (visible in ``pending``) and
    changes nothing: it is not applied, and a later projector run does not apply it twice."""
    _build_history(settings)
    relay_all(settings)
    adversarial = dataclasses.replace(settings, topic_prefix=fresh_settings().topic_prefix)
    ensure_topics(adversarial)
    producer = KafkaProducer(**adversarial.kafka_client_config())
    try:
        for r in topic_records(settings, settings.actor_topic):
            producer.send(adversarial.actor_topic, key=r.key, value=r.value, headers=list(r.headers), partition=0)
        for r in topic_records(settings, settings.label_topic):
            if r.key in (b"A0001",):  # A0001's events without the batch that issued it
                producer.send(adversarial.label_topic, key=r.key, value=r.value, headers=list(r.headers), partition=0)
        producer.flush()
    finally:
        producer.close()
    for _ in range(2):
        consumer = build(adversarial, schema="orphan")
        try:
            consumer.run(until_idle=True)
        finally:
            consumer.close()
    assert rows(settings, "SELECT subject, count(*) FROM orphan.pending GROUP BY subject") == [("A0001", 2)]
    assert rows(settings, "SELECT count(*) FROM orphan.labels") == [(0,)]
    assert rows(settings, "SELECT count(*) FROM orphan.quarantine") == [(0,)]
