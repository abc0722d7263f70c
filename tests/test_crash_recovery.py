"""SIGKILL the relay and the projector mid-stream, restart them: every event
ends up on Kafka exactly once per log index and in the read model exactly once."""

from __future__ import annotations

import random
import threading
import time

import psycopg

from ledger import gs1
from ledger.service import Ledger
from tests.conftest import wait_for
from tests.helpers import Cast, scanned_payload
from tests.pipeline import log_indexes, project_all, topic_records


def count(settings, sql) -> int:
    try:
        with psycopg.connect(settings.pg_conninfo) as conn:
            return conn.execute(sql).fetchone()[0]
    except psycopg.errors.UndefinedTable:
        return 0


def test_sigkill_relay_and_projector_mid_stream(settings, services):
    ledger = Ledger(settings)
    cast = Cast()
    ledger.append(cast.founding_events())
    relay = services("consumers.relay", settings, name="relay")
    projector = services("consumers.projector", settings, name="projector")

    batches, per_batch = 24, 250
    serials: list[str] = []
    done = threading.Event()

    def write():
        for i in range(batches):
            batch = [cast.issue(gs1.new_serial()) for _ in range(per_batch)]
            serials.extend(s.event.subject for s in batch)
            if i % 4 == 3:  # some follow-up events on earlier labels
                batch += [cast.event("gateway", "label", s, "Scanned", scanned_payload()) for s in serials[-per_batch - 50:-per_batch]]
            results = ledger.append(batch)
            assert all(r.status == "accepted" for r in results)
            time.sleep(0.05)
        done.set()

    writer = threading.Thread(target=write)
    writer.start()
    rng = random.Random(7)
    kills = {"relay": 0, "projector": 0}
    while not done.is_set() or sum(kills.values()) < 6:
        time.sleep(rng.uniform(0.3, 1.2))
        victim = relay if rng.random() < 0.5 else projector
        name = "relay" if victim is relay else "projector"
        if kills[name] >= 3:
            victim = projector if victim is relay else relay
            name = "relay" if victim is relay else "projector"
        victim.kill()
        kills[name] += 1
        time.sleep(rng.uniform(0.0, 0.3))
        victim.start()
        if all(k >= 3 for k in kills.values()) and done.is_set():
            break
    writer.join()

    total = ledger.app.recorder.max_notification_id() and count(settings, "SELECT count(*) FROM ledger_events")
    label_events = total - len(Cast.ROLES)
    wait_for(lambda: count(settings, "SELECT count(*) FROM verification.events") == label_events, 120, 0.5, "the projector to catch up")
    assert count(settings, "SELECT count(*) FROM verification.labels") == len(serials) == batches * per_batch
    assert count(settings, "SELECT count(*) FROM verification.quarantine") == 0

    records = topic_records(settings, settings.label_topic) + topic_records(settings, settings.actor_topic)
    assert log_indexes(records) == list(range(total)), "a log index is missing or doubled on Kafka"
    assert len(records) == total

    # No effect doubled: scan counts equal the scanned events, and a rebuild agrees.
    assert count(settings, "SELECT sum(scan_count) FROM verification.labels") == count(settings, "SELECT count(*) FROM verification.events WHERE kind = 'Scanned'")
    project_all(settings, schema="rebuilt")
    with psycopg.connect(settings.pg_conninfo) as conn:
        live = conn.execute("SELECT * FROM verification.labels ORDER BY serial").fetchall()
        rebuilt = conn.execute("SELECT * FROM rebuilt.labels ORDER BY serial").fetchall()
    assert live == rebuilt
    assert kills["relay"] >= 3 and kills["projector"] >= 3
    ledger.close()
