"""Tampering on real PostgreSQL and Kafka: each attempt is detected and located."""

from __future__ import annotations

import base64
import json
import time

import psycopg
import pytest
from fastapi.testclient import TestClient

from consumers.relay import Relay
from consumers.topics import ensure_topics
from ledger.events import SignedEvent
from ledger.keys import KeyPair
from ledger.record_headers import header
from ledger.transparency import merkle, tree
from ledger.transparency.checkpoints import sign_checkpoint
from ledger.transparency.log import Sequencer
from tests.audit_world import PROCESSES, THREADS, codes, make_world
from tests.helpers import append_accepted, scanned_payload
from tests.pipeline import project_all
from traceledger.api import create_app


@pytest.fixture(params=[THREADS, PROCESSES], ids=["threads", "processes"])
def world(fresh_settings, tmp_path, request):
    w = make_world(fresh_settings, tmp_path)
    w.auditor_options = request.param
    assert w.audit().ok  # the genuine log first: what follows is all new
    yield w
    w.ledger.close()


def next_index(world) -> int:
    with psycopg.connect(world.settings.pg_conninfo) as conn:
        return conn.execute("SELECT max(log_index) + 1 FROM log_entries").fetchone()[0]


def failure_at(report, partition: int, offset: int):
    found = [f for f in report.failures if (f.partition, f.offset) == (partition, offset)]
    assert found, [f.line() for f in report.failures]
    return found[0]


# ---------------------------------------------------------------- the ledger's PostgreSQL


def _edit_stored_body(conn, chain_uuid, version: int, edit) -> None:
    row = conn.execute("SELECT state FROM ledger_events WHERE originator_id = %s AND originator_version = %s", (chain_uuid, version)).fetchone()
    state = json.loads(bytes(row[0]))
    body = base64.b64decode(state["body"]["_data_"])
    state["body"]["_data_"] = base64.b64encode(edit(body)).decode()
    conn.execute("UPDATE ledger_events SET state = %s WHERE originator_id = %s AND originator_version = %s",
                 (json.dumps(state).encode(), chain_uuid, version))


def test_edited_or_deleted_stored_event_rows_are_never_answered_genuine(world):
    from ledger.store import chain_id

    project_all(world.settings)
    edited, deleted, untouched = world.serials[0], world.serials[1], world.serials[2]
    with TestClient(create_app(world.settings)) as client:
        assert all(client.get(f"/v1/labels/{s}").json()["verdict"] == "genuine" for s in (edited, deleted, untouched))
        with psycopg.connect(world.settings.pg_conninfo, autocommit=True) as conn:
            # Received (version 3): the region "4403" becomes "4404" — still decodes and links.
            _edit_stored_body(conn, chain_id("label", edited), 3, lambda b: b.replace(b"4403", b"4404"))
            conn.execute("DELETE FROM ledger_events WHERE originator_id = %s AND originator_version = 2", (chain_id("label", deleted),))
        # The API's integrity sweep flags both within a pass and its pause (TRACELEDGER_INTEGRITY_SWEEP_SECONDS).
        deadline = time.monotonic() + 30
        while client.get(f"/v1/labels/{deleted}").json()["verdict"] == "genuine" and time.monotonic() < deadline:
            time.sleep(0.2)
        view = client.get(f"/v1/labels/{edited}").json()
        assert view["verdict"] == "suspicious" and "stored event 2 differs" in view["integrity"], view
        view = client.get(f"/v1/labels/{deleted}").json()
        assert view["verdict"] == "suspicious" and "deleted" in view["integrity"], view
        assert client.get(f"/v1/labels/{untouched}").json()["verdict"] == "genuine"
        scan = client.post(f"/v1/labels/{edited}/scans", json={"channel": "web"}).json()
        assert scan["verdict"] == "suspicious"
    # The ledger refuses to append to the edited chain (its head no longer matches what was signed on top).
    result = world.ledger.append([world.cast.event("gateway", "label", edited, "Scanned", scanned_payload())])[0]
    assert result.status == "refused", result.as_dict()


def test_a_log_entry_deleted_before_publication_is_a_missing_index(world):
    append_accepted(world.ledger, [world.cast.issue() for _ in range(6)])
    settings = world.settings
    partitions = ensure_topics(settings)
    with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
        seq = Sequencer(world.ledger.app, conn, label_topic=settings.label_topic, actor_topic=settings.actor_topic, partitions=partitions)
        entries = seq.sequence_next(100)  # indexed (and hashed into the tree), not yet produced
        doomed = entries[2].log_index
        conn.execute("DELETE FROM log_entries WHERE log_index = %s", (doomed,))
    Relay(settings).run(until_idle=True)  # produces the rest, and a checkpoint covering the hole
    report = world.audit()
    missing = [f for f in report.failures if f.code == "missing_index"]
    assert missing and missing[0].log_index == doomed, [f.line() for f in report.failures]
    assert missing[0].topic == settings.checkpoint_topic  # located at the checkpoint that covers it


# ---------------------------------------------------------------- Kafka


def test_forged_and_replayed_records_are_located(world):
    serial = world.serials[-1]  # issued only
    cast, index = world.cast, next_index(world)
    genuine = cast.event("gateway", "label", serial, "Scanned", scanned_payload(), advance=False)
    forger = KeyPair.generate()
    forged = SignedEvent(body=genuine.body, signature=forger.sign(genuine.body), event=genuine.event)  # valid Avro, wrong key
    m_forged = world.produce(world.settings.label_topic, serial.encode(), forged.envelope, [("log_index", str(index).encode())])
    m_bare = world.produce(world.settings.label_topic, serial.encode(), forged.envelope)  # no header at all
    original = next(r for r in world.records() if SignedEvent.from_envelope(r.value).event.subject == world.serials[3])
    m_replay = world.produce(original.topic, original.key, original.value, list(original.headers))
    report = world.audit()
    assert not report.ok
    f = failure_at(report, m_forged.partition, m_forged.offset)
    assert f.code == "bad_signature" and (f.serial, f.event_id, f.log_index) == (serial, genuine.event.event_id, index)
    assert failure_at(report, m_bare.partition, m_bare.offset).code == "no_log_index"
    f = failure_at(report, m_replay.partition, m_replay.offset)
    assert f.code == "doubled_index" and f.serial == world.serials[3]
    assert "FAIL [bad_signature] topic=" in f.line().replace("doubled_index", "bad_signature")
    # A replay under a fresh index is caught by the chain rules instead.
    m_again = world.produce(original.topic, original.key, original.value, [("log_index", str(index + 1).encode())])
    report = world.audit()
    assert failure_at(report, m_again.partition, m_again.offset).code == "replayed"
    assert report.earlier_failures == 3


def test_event_signed_with_a_revoked_key_is_refused(world):
    cast = world.cast
    assert world.ledger.append([cast.event("registrar", "actor", "retailer", "ActorRevoked", {"reason": "key leaked"})])[0].status == "accepted"
    world.relay()
    serial = world.serials[-2]
    event = cast.event("retailer", "label", serial, "Scanned", scanned_payload(channel="shelf"), advance=False)
    meta = world.produce(world.settings.label_topic, serial.encode(), event.envelope, [("log_index", str(next_index(world)).encode())])
    report = world.audit()
    f = failure_at(report, meta.partition, meta.offset)
    assert f.code == "revoked" and f.serial == serial and f.event_id == event.event.event_id
    assert len(report.failures) == 1


def test_checkpoints_whose_root_does_not_match_are_detected(world):
    size = next_index(world)
    bad_now = sign_checkpoint(world.log_key, world.settings.log_origin, size, bytes(32))
    bad_next = sign_checkpoint(world.log_key, world.settings.log_origin, size + 5, bytes(32))
    m1 = world.produce(world.settings.checkpoint_topic, None, bad_now.note.encode())
    m2 = world.produce(world.settings.checkpoint_topic, None, bad_next.note.encode())
    append_accepted(world.ledger, [world.cast.issue() for _ in range(5)])
    world.relay()  # the genuine checkpoint of size + 5 follows the bad one
    report = world.audit()
    assert failure_at(report, m1.partition, m1.offset).code == "split_view"
    assert failure_at(report, m2.partition, m2.offset).code == "root_mismatch"
    assert report.state.latest.size == size + 5  # the genuine one still verified
    assert codes(report) == {"split_view", "root_mismatch"}


def test_a_checkpoint_published_after_a_run_passed_its_size_is_verified_by_the_next_run(world):
    """Roots of sizes beyond the latest checkpoint are kept for the next run (checkpoints trail their leaves)."""
    first = next_index(world)
    genuine = [world.cast.issue() for _ in range(3)]  # on Kafka with the next indexes, no checkpoint yet
    for i, s in enumerate(genuine):
        world.produce(world.settings.label_topic, s.event.subject.encode(), s.envelope, [("log_index", str(first + i).encode())])
    report = world.audit()
    assert report.ok and report.new_events == 3 and report.new_checkpoints == 0
    records = world.records(world.settings.actor_topic) + world.records()
    values = [r.value for r in sorted(records, key=lambda r: int(header(r, "log_index")))]
    good = sign_checkpoint(world.log_key, world.settings.log_origin, first + 2, merkle.root_of(values[: first + 2]))
    bad = sign_checkpoint(world.log_key, world.settings.log_origin, first + 3, merkle.root_of(values[: first + 2]))
    world.produce(world.settings.checkpoint_topic, None, good.note.encode())
    m_bad = world.produce(world.settings.checkpoint_topic, None, bad.note.encode())
    report = world.audit()
    assert report.new_events == 0 and report.new_checkpoints == 1 and report.state.latest.size == first + 2
    assert codes(report) == {"root_mismatch"} and failure_at(report, m_bad.partition, m_bad.offset)


def test_rewritten_history_with_a_resigned_checkpoint_fails_consistency(fresh_settings, tmp_path, api):
    w = make_world(fresh_settings, tmp_path, base=api["settings"])
    try:
        first = w.audit(api_url=api["url"])
        assert first.ok, [f.line() for f in first.failures]
        old_size = first.state.latest.size
        # The operator rewrites entry 8 in its database, rebuilds the tree and signs on.
        with psycopg.connect(w.settings.pg_conninfo, autocommit=True) as conn:
            conn.execute("UPDATE log_entries SET value = (SELECT value FROM log_entries WHERE log_index = 9) WHERE log_index = 8")
            tree.rebuild(conn)
        append_accepted(w.ledger, [w.cast.issue() for _ in range(10)])
        w.relay()
        report = w.audit(api_url=api["url"])
        found = codes(report)
        assert "inconsistent" in found and "root_mismatch" in found, [f.line() for f in report.failures]
        f = next(f for f in report.failures if f.code == "inconsistent")
        assert f"from checkpoint {old_size} to {old_size + 10}" in f.what and f.topic == w.settings.checkpoint_topic
        assert report.state.latest.size == old_size  # the rewritten checkpoint was not accepted
    finally:
        w.ledger.close()
