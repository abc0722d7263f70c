"""Each deliberate crash point (``ledger.crash_points``) hit on purpose, then the exact oracle.

A random SIGKILL rarely lands at the moment that matters. Here each process
kills itself at a named point (``TRACELEDGER_CRASH_AT``); every test first
shows the kill landed with work in flight (committed here, not yet there),
then restarts the process and asserts the exact oracle of :mod:`tests.oracle`:
every event the clients were told was accepted exactly once in the store, the
log, Kafka and the read model, a passing audit, a rebuild equal to the live model.
"""

from __future__ import annotations

import csv
import signal
from contextlib import contextmanager

import httpx
import psycopg
from kafka import KafkaAdminClient

from ledger import gs1, pins, scan_inbox
from ledger.keys import KeyPair
from ledger.service import Ledger
from tests.conftest import free_port, wait_for, wait_for_api
from tests.helpers import Cast, events_body, issued_payload, scanned_payload
from tests.oracle import assert_exactly_once, assert_rebuild_equals_live, audit, rows, stored_events
from tests.pipeline import project_all, relay_all, topic_records
from tests.test_demo_e2e import cli


def crashed_at(svc, point: str, nth: int) -> None:
    """The service died by SIGKILL at exactly that pass of that point, not otherwise."""
    wait_for(lambda: not svc.running(), 90, 0.2, f"{svc.name} to reach crash point {point}")
    assert svc.proc.returncode == -signal.SIGKILL, (svc.proc.returncode, svc.log_path.read_text()[-2000:])
    assert f"crash_point {point} pass {nth}: SIGKILL" in svc.log_path.read_text()


def accept_all(ledger: Ledger, batch) -> list[str]:
    results = ledger.append(batch)
    assert [r.status for r in results] == ["accepted"] * len(batch), [r.as_dict() for r in results if r.status != "accepted"][:3]
    return [s.event.event_id for s in batch]


@contextmanager
def founded(fresh_settings, tmp_path, **changes):
    """(settings, cast, ledger, accepted event ids) on a fresh database with the founding actors,
    a log key of the test's own and a checkpoint soon after the relay goes idle."""
    settings = fresh_settings(log_key=tmp_path / "log.key", checkpoint_seconds=0.5, **changes)
    cast = Cast()
    ledger = Ledger(settings)
    try:
        yield settings, cast, ledger, accept_all(ledger, cast.founding_events())
    finally:
        ledger.close()


def relayed_checkpoint_covers(settings, n: int) -> bool:
    return rows(settings, "SELECT coalesce(max(size), 0) FROM checkpoints")[0][0] == n


def late_registration(cast: Cast, actor: str = "late-retailer"):
    """An actor event mid-batch: the relay waits for its acknowledgement (actor events go synchronously)."""
    key = KeyPair.generate(actor)
    return cast.event("registrar", "actor", actor, "ActorRegistered",
                      {"role": "retailer", "name": "Late Retailer", "public_key": key.public_key, "gtin_prefixes": []})


def test_relay_killed_after_indexing_with_some_partitions_acked(fresh_settings, services, tmp_path):
    with founded(fresh_settings, tmp_path) as (settings, cast, ledger, accepted):
        relay_all(settings)
        # 30 labels across the 4 partitions, an actor event the relay waits for, 30 more labels.
        batch = [cast.issue() for _ in range(30)] + [late_registration(cast)] + [cast.issue() for _ in range(30)]
        accepted += accept_all(ledger, batch)

        relay = services("consumers.relay", settings.with_(crash_at="relay.sent:32"), name="relay")
        crashed_at(relay, "relay.sent", 32)
        # In flight: every entry indexed and committed in PostgreSQL, and on Kafka exactly
        # what was acknowledged before the actor record's acknowledgement (31, maybe 32).
        assert rows(settings, "SELECT count(*) FROM log_entries")[0][0] == len(accepted)
        on_kafka = len(topic_records(settings, settings.label_topic)) + len(topic_records(settings, settings.actor_topic))
        assert len(Cast.ROLES) + 31 <= on_kafka <= len(Cast.ROLES) + 32, on_kafka
        partitions = {r.partition for r in topic_records(settings, settings.label_topic)}
        assert len(partitions) > 1, "the acknowledged records span several partitions"

        relay.settings = settings  # the same relay, no crash planned: resumes from the partitions' tails
        relay.start()
        wait_for(lambda: relayed_checkpoint_covers(settings, len(accepted)), 60, 0.3, "the relay to publish everything")
        relay.stop()
        project_all(settings)
        assert_exactly_once(settings, accepted, audit_state=tmp_path / "audit.state")
        assert_rebuild_equals_live(settings)


def test_relay_killed_between_a_checkpoints_topic_record_and_its_row(fresh_settings, services, tmp_path):
    with founded(fresh_settings, tmp_path, checkpoint_events=10, relay_batch=10) as (settings, cast, ledger, accepted):
        accepted += accept_all(ledger, [cast.issue() for _ in range(30)])

        relay = services("consumers.relay", settings.with_(crash_at="checkpointer.produced:2"), name="relay")
        crashed_at(relay, "checkpointer.produced", 2)
        # In flight: the second checkpoint (size 20) is on its topic, not in the table.
        on_topic = [r.value.decode().split("\n")[1] for r in topic_records(settings, settings.checkpoint_topic)]
        assert on_topic == ["10", "20"], on_topic
        assert rows(settings, "SELECT size FROM checkpoints ORDER BY id") == [(10,)]

        relay.settings = settings  # no crash planned
        relay.start()
        wait_for(lambda: relayed_checkpoint_covers(settings, len(accepted)), 60, 0.3, "the relay to checkpoint everything")
        relay.stop()
        project_all(settings)
        land = assert_exactly_once(settings, accepted, audit_state=tmp_path / "audit.state")
        # The orphaned checkpoint on the topic is a true one: the auditor verified its root too.
        assert 20 in audit(settings, tmp_path / "audit.state").state.roots
        assert len(land.log) == len(accepted)


def test_projector_killed_after_committing_a_batch_applies_nothing_twice(fresh_settings, services, tmp_path):
    with founded(fresh_settings, tmp_path) as (settings, cast, ledger, accepted):
        labels = [cast.issue() for _ in range(20)]
        accepted += accept_all(ledger, labels)
        relay_all(settings)
        project_all(settings)
        # Then only scans: every record a projector resuming too early would meet again is one.
        accepted += accept_all(ledger, [cast.event("gateway", "label", s.event.subject, "Scanned", scanned_payload()) for s in labels for _ in range(3)])
    relay_all(settings)
    label_events = len(accepted) - len(Cast.ROLES)

    projector = services("consumers.projector", settings.with_(crash_at="consumer.committed:1"), name="projector")
    crashed_at(projector, "consumer.committed", 1)
    # In flight: the batch and its offsets are committed in PostgreSQL, Kafka's group offsets are not.
    stored = rows(settings, "SELECT coalesce(sum(next_offset), 0) FROM verification.consumer_offsets")[0][0]
    assert 20 < stored <= label_events
    admin = KafkaAdminClient(**settings.kafka_client_config())
    try:
        group = f"{settings.topic_prefix}verification-verification"
        on_kafka = sum(o.offset for o in admin.list_group_offsets(group).get(group, {}).values())
        assert on_kafka < stored, (on_kafka, stored)
    finally:
        admin.close()

    projector.settings = settings
    projector.start()
    # One more scan per label after the restart: once they are projected, every partition
    # has been read past whatever the restarted projector met first.
    ledger = Ledger(settings)
    try:
        accepted += accept_all(ledger, [cast.event("gateway", "label", s.event.subject, "Scanned", scanned_payload()) for s in labels])
    finally:
        ledger.close()
    relay_all(settings)
    wait_for(lambda: rows(settings, "SELECT count(*) FROM verification.events")[0][0] == label_events + 20, 60, 0.3, "the projector to finish")
    projector.stop()
    assert rows(settings, "SELECT sum(scan_count) FROM verification.labels") == [(80,)], "a scan was counted twice"
    assert_exactly_once(settings, accepted)
    assert_rebuild_equals_live(settings)


def start_api(services, settings, cast: Cast, tmp_path, *, wait: bool = True, **changes):
    key_path = tmp_path / "gateway.key"
    if not key_path.exists():
        cast.keys["gateway"].save(key_path)
    port = free_port()
    s = settings.with_(listen_port=port, api_url=f"http://127.0.0.1:{port}", gateway_key=key_path, **changes)
    svc = services("traceledger.api", s, name="api")
    if wait:
        wait_for_api(svc, s.api_url)
    return s.api_url, svc


def post(url: str, batch) -> list[dict]:
    r = httpx.post(f"{url}/v1/events", json=events_body(batch), timeout=60)
    assert r.status_code == 200, r.text[:1000]
    return r.json()["results"]


def test_api_killed_between_commit_and_reply_then_the_retry_answers_duplicate(fresh_settings, services, tmp_path):
    settings = fresh_settings(log_key=tmp_path / "log.key", checkpoint_seconds=0.5)
    cast = Cast()
    url, api = start_api(services, settings, cast, tmp_path, crash_at="ledger.committed:2")
    founding = cast.founding_events()
    assert {r["status"] for r in post(url, founding)} == {"accepted"}  # commit 1
    batch = [cast.issue() for _ in range(50)]
    try:
        httpx.post(f"{url}/v1/events", json=events_body(batch), timeout=60)
        raise AssertionError("the API answered although it should have died after committing")
    except httpx.TransportError:
        pass  # the client never hears: it cannot know whether the batch was stored
    crashed_at(api, "ledger.committed", 2)
    # In flight: committed, yet nobody was told.
    ledger = Ledger(settings)
    try:
        assert all(h is not None for h in ledger.heads([("label", s.event.subject) for s in batch]).values())
    finally:
        ledger.close()

    url, api = start_api(services, settings, cast, tmp_path)  # no crash planned
    retry = post(url, batch)
    assert [(r["event_id"], r["status"]) for r in retry] == [(s.event.event_id, "duplicate") for s in batch]
    api.stop()
    relay_all(settings)
    project_all(settings)
    assert_exactly_once(settings, {s.event.event_id for s in founding + batch}, audit_state=tmp_path / "audit.state")
    assert_rebuild_equals_live(settings)


def test_scan_worker_killed_after_recording_a_batch_records_each_scan_once(fresh_settings, services, tmp_path):
    with founded(fresh_settings, tmp_path, scan_batch=40) as (settings, cast, ledger, accepted):
        labels = [cast.issue() for _ in range(10)]
        accepted += accept_all(ledger, labels)
    # 100 scans accepted exactly as the scan route accepts them: one durable insert each.
    with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
        scans = [scan_inbox.accept(conn, labels[i % 10].event.subject, channel="web", region="440305").event_id for i in range(100)]

    url, api = start_api(services, settings, cast, tmp_path, wait=False, crash_at="scan_inbox.recorded:1")
    crashed_at(api, "scan_inbox.recorded", 1)
    # In flight: the first batch of 40 is on the chains with its tracking record, the rest waits.
    ledger = Ledger(settings)
    try:
        assert ledger.app.recorder.max_tracking_id(scan_inbox.TRACKING_NAME) == 40
        assert sum(h["seq"] for h in ledger.heads([("label", s.event.subject) for s in labels]).values()) == 40
    finally:
        ledger.close()

    url, api = start_api(services, settings, cast, tmp_path)
    ledger = Ledger(settings)
    try:
        wait_for(lambda: ledger.app.recorder.max_tracking_id(scan_inbox.TRACKING_NAME) == 100, 60, 0.3, "the worker to record every scan")
    finally:
        ledger.close()
    api.stop()
    relay_all(settings)
    project_all(settings)
    assert_exactly_once(settings, accepted + scans, audit_state=tmp_path / "audit.state")
    assert rows(settings, "SELECT sum(scan_count) FROM verification.labels") == [(100,)]
    assert_rebuild_equals_live(settings)


def test_cli_killed_between_an_accepted_batch_and_its_csv_rows(api, tmp_path):
    url, cast = api["url"], api["cast"]
    settings = api["settings"].with_(log_key=tmp_path / "log.key", checkpoint_seconds=0.5)
    founding = cast.founding_events()
    post(url, founding)
    key = tmp_path / "acme.key"
    cast.keys["acme"].save(key)
    out = tmp_path / "labels.csv"
    args = ["issue", "--key", str(key), "--gtin", "06901234000016", "--lot", "L1", "--product", "Battery",
            "--count", "3000", "--batch", "1000", "--out", str(out)]
    proc = cli(settings.with_(crash_at="cli.issue_accepted:2"), *args, check=False)
    assert proc.returncode == -signal.SIGKILL and "crash_point cli.issue_accepted pass 2: SIGKILL" in proc.stderr, proc.stderr[-2000:]

    # The first batch's rows are on disk, whole; the second batch is on the ledger (the API
    # accepted it) with no CSV row: the one batch a crash can orphan. The third was never sent.
    with open(out, newline="") as fh:
        printed = [row["serial"] for row in csv.DictReader(fh)]
    assert len(printed) == len(set(printed)) == 1000
    stored = stored_events(settings)
    labels = [(event_id, serial) for event_id, subject_type, serial in stored if subject_type == "label"]
    batches = {event_id for event_id, subject_type, _ in stored if subject_type == "batch"}
    # Issued one event per label, or (the CLI's default) in batch events with a head row per label.
    issued = {serial for _, serial in labels} | {r[0] for r in rows(settings, "SELECT serial FROM label_heads")}
    assert set(printed) <= issued, "a CSV row for a label the ledger does not have"
    assert len(issued) == 2000, "more than the batch in flight was issued, or a batch was lost"

    # Everything the API accepted is exactly once in the log, on Kafka and in the read model,
    # and every printed label answers from it.
    relay_all(settings)
    project_all(settings)
    assert_exactly_once(settings, {s.event.event_id for s in founding} | {e for e, _ in labels} | batches, audit_state=tmp_path / "audit.state")
    projected = {r[0] for r in rows(settings, "SELECT serial FROM verification.labels")}
    assert set(printed) <= projected and len(projected) == 2000


PIN = "24681357"


def test_api_killed_after_counting_a_pin_use_keeps_state_and_ledger_in_step(api, services, tmp_path):
    """The PIN's first use is state (``pin_uses``) and evidence (a Scanned event with
    ``pin_result``); a crash between the two must not leave one without the other."""
    url, cast, api_svc = api["url"], api["cast"], api["service"]
    settings = api["settings"]
    serial = gs1.new_serial()
    founding = cast.founding_events()
    post(url, founding)
    post(url, [cast.event("acme", "label", serial, "Issued", issued_payload() | {"pin_hash": pins.hash_pin(serial, PIN)})])
    relay_all(settings)
    project_all(settings)  # the PIN route reads the label's pin hash from the read model
    api_svc.stop()

    url, svc = start_api(services, settings, cast, tmp_path, crash_at="pins.checked:1")
    try:
        httpx.post(f"{url}/v1/labels/{serial}/pin", json={"pin": PIN}, timeout=30)
        raise AssertionError("the API answered although it should have died after counting the use")
    except httpx.TransportError:
        pass
    crashed_at(svc, "pins.checked", 1)

    url, svc = start_api(services, settings, cast, tmp_path)
    again = httpx.post(f"{url}/v1/labels/{serial}/pin", json={"pin": PIN}, timeout=30)
    assert again.status_code == 200, again.text
    ledger = Ledger(settings)
    try:
        newest = rows(settings, "SELECT max(id) FROM scan_inbox")[0][0]
        wait_for(lambda: (ledger.app.recorder.max_tracking_id(scan_inbox.TRACKING_NAME) or 0) >= newest, 30, 0.3, "the scans to be recorded")
    finally:
        ledger.close()
    uses = rows(settings, "SELECT uses FROM pin_uses WHERE serial = %s", serial)[0][0]
    results = [r for (r,) in rows(settings, "SELECT pin_result FROM scan_inbox WHERE serial = %s AND pin_result IS NOT NULL ORDER BY id", serial)]
    # As many PIN-verified scans as counted uses, the first of them the first use.
    assert len(results) == uses and results[:1] == ["first_use"] and results[1:] == ["reused"] * (uses - 1), (uses, results, again.json())
