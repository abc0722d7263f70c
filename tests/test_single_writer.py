"""Two relays cannot both publish (issue 18): the second is a standby until the first is gone.

Both run as real processes on one database and topic prefix. The oracle is
exact: every event on Kafka once, in log order, whichever relay put it there.
"""

from __future__ import annotations

import json
import threading

import psycopg

from consumers import single_writer
from ledger.service import Ledger
from tests.conftest import wait_for
from tests.helpers import Cast, append_accepted
from tests.oracle import assert_exactly_once


def events_of(svc) -> list[str]:
    out = []
    for line in svc.log_path.read_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line)["event"])
    return out


def relayed(settings) -> int:
    with psycopg.connect(settings.pg_conninfo) as conn:
        return conn.execute("SELECT coalesce(max(size), 0) FROM checkpoints").fetchone()[0]


def test_two_relays_one_publishes_the_other_takes_over_exactly(settings, services, tmp_path):
    settings = settings.with_(checkpoint_seconds=0.5)
    cast = Cast()
    ledger = Ledger(settings)
    try:
        accepted = append_accepted(ledger, cast.founding_events())
        first = services("consumers.relay", settings, name="relay-1")
        wait_for(lambda: "single_writer_active" in events_of(first), 60, 0.2, "the first relay to be the writer")
        second = services("consumers.relay", settings, name="relay-2")
        wait_for(lambda: "single_writer_standby" in events_of(second), 60, 0.2, "the second relay to stand by")
        accepted += append_accepted(ledger, [cast.issue() for _ in range(300)])
        wait_for(lambda: relayed(settings) == len(accepted), 60, 0.2, "the first relay to publish")
        assert "relayed" not in events_of(second) and "relay_resumed" not in events_of(second), "the standby published"

        # The writer dies mid-stream: the standby takes over and publishes the rest, once.
        accepted += append_accepted(ledger, [cast.issue() for _ in range(300)])
        first.kill()
        accepted += append_accepted(ledger, [cast.issue() for _ in range(300)])
        wait_for(lambda: relayed(settings) == len(accepted), 90, 0.2, "the standby to take over")
        assert "single_writer_active" in events_of(second)

        # The writer's lock session is terminated under it (say, a database fail-over):
        # it exits at once, and a restarted relay stands by or resumes; still exactly once.
        third = services("consumers.relay", settings, name="relay-3")
        wait_for(lambda: "single_writer_standby" in events_of(third), 60, 0.2, "the third relay to stand by")
        with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'traceledger-relay-guard'"
                         " AND datname = current_database() AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)")
        wait_for(lambda: not second.running(), 30, 0.2, "the relay that lost its lock to exit")
        assert second.proc.returncode == 3 and "single_writer_lost" in events_of(second)
        accepted += append_accepted(ledger, [cast.issue() for _ in range(200)])
        wait_for(lambda: relayed(settings) == len(accepted), 90, 0.2, "the third relay to take over")
        third.stop()
    finally:
        ledger.close()
    assert_exactly_once(settings, accepted, schemas=(), audit_state=tmp_path / "audit.state")


def test_hold_waits_while_another_holds_and_stops_when_asked(settings):
    first = single_writer.hold(settings, "relay", on_lost=lambda: None)
    assert first is not None
    stop = threading.Event()
    got = []
    waiter = threading.Thread(target=lambda: got.append(single_writer.hold(settings, "relay", stop=stop, poll_s=0.1, on_lost=lambda: None)))
    waiter.start()
    waiter.join(1.0)
    assert waiter.is_alive(), "a second holder got the lock while the first held it"
    first.release()
    waiter.join(10)
    assert got and got[0] is not None
    got[0].release()
    stop.set()
    assert single_writer.hold(settings, "relay", stop=stop) is None  # asked to stop before it could take it
