"""Ledger -> relay -> real Kafka -> verification projector -> read model."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest
from kafka import KafkaProducer

from ledger import gs1
from ledger.config import REPO_ROOT
from ledger.encoding import MAGIC
from ledger.events import SignedEvent
from ledger.keys import KeyPair
from ledger.record_headers import header
from projections.verification import read_view
from tests.conftest import free_port
from tests.fault_stack import FaultStack
from tests.helpers import Cast, append_accepted, gtin, scanned_payload, shipped_payload
from tests.pipeline import founded_ledger, log_indexes, project_all, relay_all, topic_records
from traceledger import sandbox


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
    signed = [cast.issue() for _ in range(300)]
    append_accepted(ledger, signed)
    first = relay_all(settings)
    again = relay_all(settings)  # a restarted relay finds everything already there
    records = topic_records(settings, settings.label_topic) + topic_records(settings, settings.actor_topic)
    assert again == 0
    assert log_indexes(records) == list(range(first))
    # Every label record is byte for byte what this test signed (body and signature),
    # keyed by its subject, with its event id in the headers: nothing re-encoded on the way.
    on_kafka = sorted((r.key, r.value, header(r, "event_id")) for r in records if r.topic == settings.label_topic)
    assert on_kafka == sorted((s.event.subject.encode(), s.envelope, s.event.event_id.encode()) for s in signed)


def test_bad_records_on_the_topic_are_quarantined_and_the_projector_goes_on(world):
    settings, ledger, cast = world
    append_accepted(ledger, [cast.issue("GOOD1")])
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
    append_accepted(ledger, [cast.event("gateway", "label", "GOOD1", "Scanned", scanned_payload())])
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
    append_accepted(ledger, [cast.issue(s) for s in serials])
    relay_all(settings)
    project_all(settings)  # live model, built incrementally in two rounds
    append_accepted(ledger, [cast.event("acme", "label", s, "Shipped", shipped_payload("retailer", "4403")) for s in serials[:20]]
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


# ------------------------------------------------------------ what the tests themselves share (issue 20, items 8 and 9)


def finishes(call, limit: float = 300):
    """Run ``call`` in a thread; its outcome (value or exception), or fail if it is still
    running after ``limit`` seconds. A hang detector, not a speed bound: the calls below
    fail within seconds, the limit only stops a hang from holding CI until its job limit."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 -- handed to the test
            outcome["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(limit)
    assert not worker.is_alive(), f"still waiting after {limit} s: a wait without a deadline"
    return outcome


def test_the_pipeline_helpers_fail_on_a_dead_broker_rather_than_wait_for_ever(settings):
    # Nothing listens there; the clients give up bootstrapping after 2 s (a setting of theirs).
    dead = settings.with_(kafka_bootstrap=f"127.0.0.1:{free_port()}", kafka_bootstrap_timeout_ms=2000)
    for name, call in [("topic_records", lambda: topic_records(dead, dead.label_topic, timeout=5)),
                       ("relay_all", lambda: relay_all(dead)), ("project_all", lambda: project_all(dead))]:
        outcome = finishes(call)
        assert "error" in outcome, f"{name} answered {outcome.get('value')!r} without a broker"


def test_each_tests_settings_share_nothing_with_the_dev_stack_or_each_other(base_settings, fresh_settings):
    a, b = fresh_settings(), fresh_settings()
    dev_run = (REPO_ROOT / ".run").resolve()
    for s in (a, b):
        # A relay given no log_key signs with the run dir's: never the dev stack's .run/log.key.
        assert not s.log_key_path.resolve().is_relative_to(dev_run), s.log_key_path
        assert (s.pg_db, s.topic_prefix) != (base_settings.pg_db, base_settings.topic_prefix)
    assert a.log_key_path != b.log_key_path and a.pg_db != b.pg_db and a.topic_prefix != b.topic_prefix
    assert not a.topic_prefix.startswith(b.topic_prefix) and not b.topic_prefix.startswith(a.topic_prefix)


def test_concurrent_fault_stacks_get_names_and_dirs_of_their_own():
    first, second = (FaultStack(pg_port=free_port(), kafka_port=free_port(), controller_port=free_port()) for _ in range(2))
    assert first.cluster != second.cluster and first.home != second.home
    assert first.kafka_env["KAFKA_DATA_DIR"] != second.kafka_env["KAFKA_DATA_DIR"]


def test_throwaway_databases_are_made_without_the_demo_database(base_settings, _created):
    """sandbox works from the maintenance database: it must not need (or lock) the demo's own."""
    missing_demo = base_settings.with_(pg_db=f"tl_no_demo_{uuid.uuid4().hex[:8]}")
    name = f"tl_test_{uuid.uuid4().hex[:10]}"
    sandbox.create_database(missing_demo, name, migrated=False)
    _created["dbs"].append(name)
    with psycopg.connect(base_settings.with_(pg_db=name).pg_conninfo) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == name
