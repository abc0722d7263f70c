"""The projector's set-based batch writes (COPY, staged upserts) and the fast envelope split.

Each poll batch is checked record by record, then written with one COPY of new
events and one staged upsert of changed labels. These tests pin the edge cases
of that: several events of one label in a batch, a label updated by a later
batch, a bad record in the middle of a batch, and the consumer's careful retry
(one savepoint and one flush per record, so the staging table is reused within
a transaction). All against the real Kafka and PostgreSQL.
"""

from __future__ import annotations

import random

import psycopg
import pytest
from kafka import KafkaProducer

from consumers.projector import build
from ledger.encoding import envelope_codec
from ledger.envelope import split_envelope
from ledger.errors import Refused
from projections.verification import read_view
from tests.helpers import Cast, scanned_payload, shipped_payload
from tests.pipeline import founded_ledger, relay_all, topic_records


@pytest.fixture
def world(settings):
    with founded_ledger(settings, Cast()) as w:
        yield w


class Recording:
    """Wraps the projector's handler: remembers each batch's record keys, and can fail one event (not a refusal)."""

    def __init__(self, inner, fail_event_id: str | None = None):
        self.inner = inner
        self.fail_event_id = fail_event_id
        self.batches: list[list[bytes | None]] = []

    def prepare(self, cur, records):
        self.batches.append([r.key for r in records])
        self.inner.prepare(cur, records)

    def flush(self, cur):
        self.inner.flush(cur)

    def __call__(self, cur, record):
        if self.fail_event_id and record.value and self.fail_event_id.encode() in record.value:  # the id's text is in the body
            raise RuntimeError("a bug nobody foresaw")
        return self.inner(cur, record)


def project(settings, fail_event_id: str | None = None):
    consumer = build(settings)
    consumer.handler = Recording(consumer.handler, fail_event_id)
    try:
        consumer.run(until_idle=True)
    finally:
        consumer.close()
    return consumer


def rows(settings, sql, *params):
    with psycopg.connect(settings.pg_conninfo) as conn:
        return conn.execute(sql, params).fetchall()


def view(settings, serial):
    with psycopg.connect(settings.pg_conninfo) as conn:
        return read_view(conn, serial)


def test_several_events_of_one_label_in_a_batch_and_an_update_in_a_later_batch(world):
    settings, ledger, cast = world
    ledger.append([cast.issue("LATER1"), cast.issue("OTHER1")])
    relay_all(settings)
    first = project(settings)
    assert first.applied == 2  # actor events are on their own topic
    batch = [cast.issue("MANY1")]
    batch += [cast.event("acme", "label", "MANY1", "Shipped", shipped_payload("distributor"))]
    batch += [cast.event("distributor", "label", "MANY1", "Received", {"region": "4403"})]
    batch += [cast.event("gateway", "label", "MANY1", "Scanned", scanned_payload()) for _ in range(3)]
    batch += [cast.event("acme", "label", "LATER1", "Shipped", shipped_payload("retailer", "4403"))]
    batch += [cast.event("gateway", "label", "LATER1", "Scanned", scanned_payload()) for _ in range(2)]
    assert all(r.status == "accepted" for r in ledger.append(batch))
    relay_all(settings)
    second = project(settings)
    assert second.applied == len(batch) and second.quarantined == 0
    # The premise: all six events of MANY1 were applied in one poll batch.
    assert max(keys.count(b"MANY1") for keys in second.handler.batches) == 6

    many = view(settings, "MANY1")
    assert [t["kind"] for t in many["trail"]] == ["Issued", "Shipped", "Received", "Scanned", "Scanned", "Scanned"]
    assert (many["scan_count"], many["custodian"], many["status"]) == (3, "distributor", "received")
    later = view(settings, "LATER1")  # stored by the first run, updated by the second
    assert [t["kind"] for t in later["trail"]] == ["Issued", "Shipped", "Scanned", "Scanned"]
    assert later["scan_count"] == 2 and later["territory"] == "4403"
    assert view(settings, "OTHER1")["trail"][0]["kind"] == "Issued" and view(settings, "OTHER1")["scan_count"] == 0
    [(seq, head)] = rows(settings, "SELECT seq, head FROM verification.labels WHERE serial = 'MANY1'")
    assert seq == 5 and bytes(head) == cast.heads[("label", "MANY1")][1]


def test_a_bad_record_in_the_middle_of_a_batch_is_quarantined_the_rest_applied_offsets_right(world):
    settings, ledger, cast = world
    ledger.append([cast.issue("MID1"), cast.event("acme", "label", "MID1", "Shipped", shipped_payload("distributor"))])
    relay_all(settings)
    issued, shipped = sorted((r for r in topic_records(settings, settings.label_topic) if r.key == b"MID1"), key=lambda r: r.offset)
    partition = shipped.partition
    producer = KafkaProducer(**settings.kafka_client_config())
    # Garbage (the magic bytes, then no known schema), then a copy of MID1's Shipped event
    # with a broken signature, in MID1's partition.
    broken = bytearray(shipped.value)
    broken[-1] ^= 0x01  # the last byte of the signature
    producer.send(settings.label_topic, key=b"MID1", value=b"\xc3\x01 not an event", partition=partition)
    producer.send(settings.label_topic, key=b"MID1", value=bytes(broken), partition=partition)
    producer.flush()
    producer.close()
    ledger.append([cast.event("distributor", "label", "MID1", "Received", {"region": "4403"}),
                   cast.event("gateway", "label", "MID1", "Scanned", scanned_payload())])
    relay_all(settings)
    records = [r for r in topic_records(settings, settings.label_topic) if r.partition == partition]
    consumer = project(settings)
    # The premise: good records before and after the bad ones came in one batch.
    assert any(keys.count(b"MID1") == 6 for keys in consumer.handler.batches)
    bad = rows(settings, 'SELECT partition, "offset", code FROM verification.quarantine ORDER BY "offset"')
    mid = [r.offset for r in records if r.key == b"MID1"]
    assert bad == [(partition, mid[2], "unknown_schema"), (partition, mid[3], "bad_signature")]
    assert consumer.quarantined == 2 and consumer.applied == 4
    v = view(settings, "MID1")
    assert [t["kind"] for t in v["trail"]] == ["Issued", "Shipped", "Received", "Scanned"] and v["scan_count"] == 1
    stored = dict(rows(settings, "SELECT partition, next_offset FROM verification.consumer_offsets WHERE topic = %s", settings.label_topic))
    assert stored[partition] == max(r.offset for r in records) + 1


def test_careful_retry_writes_each_record_on_its_own_and_quarantines_only_the_culprit(world):
    settings, ledger, cast = world
    culprit = cast.issue("BUG1")
    batch = [cast.issue("FINE1"), cast.event("acme", "label", "FINE1", "Shipped", shipped_payload("distributor")),
             cast.event("distributor", "label", "FINE1", "Received", {"region": "4403"}), culprit]
    batch += [cast.event("gateway", "label", "FINE1", "Scanned", scanned_payload()) for _ in range(2)]
    batch += [cast.issue(f"FINE{i}") for i in range(2, 6)]
    ledger.append(batch)
    relay_all(settings)
    consumer = project(settings, fail_event_id=culprit.event.event_id)
    assert consumer.quarantined == 1 and consumer.applied == len(batch) - 1
    [(code, detail)] = rows(settings, "SELECT code, detail FROM verification.quarantine")
    assert code == "handler_error" and "a bug nobody foresaw" in detail
    fine = view(settings, "FINE1")
    assert [t["kind"] for t in fine["trail"]] == ["Issued", "Shipped", "Received", "Scanned", "Scanned"] and fine["scan_count"] == 2
    assert view(settings, "BUG1")["verdict"] == "unknown"
    assert rows(settings, "SELECT count(*) FROM verification.labels") == [(5,)]
    assert rows(settings, "SELECT count(*) FROM verification.events") == [(len(batch) - 1,)]


def _codec_split(value):
    try:
        parts = envelope_codec().decode(value)
        return "ok", parts["body"], parts["signature"]
    except Refused as refusal:
        return "refused", refusal.code, refusal.detail


def _fast_split(value):
    try:
        return ("ok", *split_envelope(value))
    except Refused as refusal:
        return "refused", refusal.code, refusal.detail


def test_the_fast_envelope_split_accepts_and_refuses_exactly_what_the_codec_does():
    rng = random.Random(7)
    good = envelope_codec().encode({"body": rng.randbytes(300), "signature": rng.randbytes(64)})
    header = good[:10]
    cases = [good, good + b"\x00", good[:-1], b"", header, header + b"\x00\x00", header + b"\x00\x80\x00",
             header + b"\x01" + good[12:],  # a negative length
             header + bytes([0xD8, 0x84, 0x00]) + good[12:],  # body length as an overlong varint
             bytearray(good), None, "text"]
    for _ in range(5000):
        v = bytearray(good)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(v) + 1)
            op = rng.random()
            if op < 0.4 and i < len(v):
                v[i] = rng.randrange(256)
            elif op < 0.7:
                v.insert(i, rng.choice([0x00, 0x80, 0xFF, 0x01, 0x02]))
            elif i < len(v):
                del v[i]
        cases.append(bytes(v))
    results = [(_codec_split(c), _fast_split(c)) for c in cases]
    assert all(a == b for a, b in results)
    assert sum(a[0] == "ok" for a, _ in results) > 100  # the mutations left plenty of valid envelopes
    assert _fast_split(good)[1:] == (good[12:312], good[-64:])
