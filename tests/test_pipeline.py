"""Ledger -> relay -> real Kafka -> verification projector -> read model."""

from __future__ import annotations

import psycopg
import pytest
from kafka import KafkaProducer

from ledger import gs1
from ledger.encoding import MAGIC
from ledger.events import SignedEvent
from ledger.keys import KeyPair
from projections.verification import read_view
from tests.helpers import Cast, gtin, scanned_payload, shipped_payload
from tests.pipeline import founded_ledger, log_indexes, project_all, relay_all, topic_records


@pytest.fixture
def world(settings):
    with founded_ledger(settings, Cast()) as w:
        yield w


def view(settings, serial, schema="verification"):
    with psycopg.connect(settings.pg_conninfo) as conn:
        return read_view(conn, serial, schema)


def test_lifecycle_reaches_the_verification_view(world):
    settings, ledger, cast = world
    serials = [gs1.new_serial() for _ in range(6)]
    batch = [cast.issue(s, lot="L1" if i < 4 else "L2") for i, s in enumerate(serials)]
    batch += [cast.event("acme", "label", s, "Shipped", shipped_payload("distributor")) for s in serials[:3]]
    batch += [cast.event("distributor", "label", s, "Received", {"region": "4403"}) for s in serials[:3]]
    batch += [cast.event("gateway", "label", serials[0], "Scanned", scanned_payload()) for _ in range(2)]
    batch.append(cast.event("regulator", "label", serials[1], "FlaggedCounterfeit", {"reason": "fake found in market", "region": "440305"}))
    batch.append(cast.event("regulator", "lot", f"{gtin()}/L2", "Recalled", {"reason": "cells overheat"}))
    batch.append(cast.event("acme", "label", serials[2], "Decommissioned", {"reason": "destroyed"}))
    assert all(r.status == "accepted" for r in ledger.append(batch))

    relayed = relay_all(settings)
    assert relayed == len(batch) + len(Cast.ROLES)  # labels, lots and the founding actor events
    consumer = project_all(settings)
    assert consumer.quarantined == 0

    genuine = view(settings, serials[0])
    assert genuine["verdict"] == "genuine"
    assert genuine["scan_count"] == 2 and genuine["first_scanned_at"]
    assert [t["kind"] for t in genuine["trail"]] == ["Issued", "Shipped", "Received", "Scanned", "Scanned"]
    assert genuine["custodian"] == "distributor" and genuine["producer"] == "acme"
    assert view(settings, serials[1])["verdict"] == "counterfeit"
    assert view(settings, serials[2])["verdict"] == "suspicious"
    assert view(settings, serials[3])["verdict"] == "genuine"
    assert view(settings, serials[4])["verdict"] == "recalled"  # lot L2
    assert view(settings, "NEVERISSUED1")["verdict"] == "unknown"


def test_every_event_on_kafka_exactly_once_and_relay_resume_adds_nothing(world):
    settings, ledger, cast = world
    ledger.append([cast.issue() for _ in range(300)])
    first = relay_all(settings)
    again = relay_all(settings)  # a restarted relay finds everything already there
    records = topic_records(settings, settings.label_topic) + topic_records(settings, settings.actor_topic)
    assert again == 0
    assert log_indexes(records) == list(range(first))
    # Key = subject and the value's body is byte-for-byte what the ledger stored and signed.
    rec = next(r for r in records if r.topic == settings.label_topic)
    signed = SignedEvent.from_envelope(rec.value)
    assert rec.key == signed.event.subject.encode()
    chain = ledger.app.load_chain("label", signed.event.subject)
    assert chain.hashes[0] == signed.hash


def test_bad_records_on_the_topic_are_quarantined_and_the_projector_goes_on(world):
    settings, ledger, cast = world
    ledger.append([cast.issue("GOOD1")])
    relay_all(settings)
    producer = KafkaProducer(**settings.kafka_client_config())
    forged_base = cast.event("gateway", "label", "GOOD1", "Scanned", scanned_payload(), advance=False)
    forged = SignedEvent(forged_base.body, bytes(64), forged_base.event)
    outsider = KeyPair.generate("acme")  # right actor name, unregistered key
    c2 = Cast()
    c2.keys["acme"] = outsider
    impostor = c2.event("acme", "label", "FAKE1", "Issued", {"gtin": gtin(), "lot": "L1", "expiry": None, "product": "x", "region": None, "pin_hash": None}, key=outsider)
    sent = [
        (b"junk", b"\x00\xffnot avro at all"),  # garbage
        (b"GOOD1", MAGIC + bytes(8) + b"\x02"),  # unknown schema fingerprint
        (b"GOOD1", forged.envelope),  # valid Avro, bad signature
        (b"FAKE1", impostor.envelope),  # signed by a key that is not acme's
        (b"GOOD1", None),  # a tombstone
    ]
    for key, value in sent:
        producer.send(settings.label_topic, key=key, value=value)
    producer.flush()
    producer.close()
    # A genuine event after the garbage must still be projected.
    ledger.append([cast.event("gateway", "label", "GOOD1", "Scanned", scanned_payload())])
    relay_all(settings)
    consumer = project_all(settings)
    with psycopg.connect(settings.pg_conninfo) as conn:
        codes = sorted(r[0] for r in conn.execute("SELECT code FROM verification.quarantine").fetchall())
    assert codes == sorted(["malformed_encoding", "unknown_schema", "bad_signature", "revoked_key", "malformed_encoding"])
    assert consumer.quarantined == 5
    assert view(settings, "GOOD1")["scan_count"] == 1
    assert view(settings, "FAKE1")["verdict"] == "unknown"


def test_rebuild_from_the_topic_equals_the_live_model(world):
    settings, ledger, cast = world
    serials = [gs1.new_serial() for _ in range(50)]
    ledger.append([cast.issue(s) for s in serials])
    relay_all(settings)
    project_all(settings)  # live model, built incrementally in two rounds
    ledger.append([cast.event("acme", "label", s, "Shipped", shipped_payload("retailer", "4403")) for s in serials[:20]]
                  + [cast.event("gateway", "label", s, "Scanned", scanned_payload()) for s in serials[10:30]])
    relay_all(settings)
    project_all(settings)
    project_all(settings, schema="rebuilt")  # from scratch, one pass
    with psycopg.connect(settings.pg_conninfo) as conn:
        for table, order in (("labels", "serial"), ("events", "subject, seq"), ("lots", "gtin, lot")):
            live = conn.execute(f"SELECT * FROM verification.{table} ORDER BY {order}").fetchall()
            rebuilt = conn.execute(f"SELECT * FROM rebuilt.{table} ORDER BY {order}").fetchall()
            assert live == rebuilt, table
        assert conn.execute("SELECT count(*) FROM rebuilt.labels").fetchone()[0] == 50
