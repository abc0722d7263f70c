"""Projectors scale by consumer group: an instance added and one removed mid-stream, the result exact (issue 18)."""

from __future__ import annotations

import json

from ledger.service import Ledger
from tests.conftest import wait_for
from tests.helpers import Cast, append_accepted
from tests.oracle import assert_exactly_once, assert_rebuild_equals_live, rows


def assigned(svc) -> bool:
    """The instance was given partitions at its latest rebalance."""
    events = [json.loads(line) for line in svc.log_path.read_text().splitlines() if line.startswith("{")]
    latest = [e for e in events if e.get("event") == "partitions_assigned"]
    return bool(latest and latest[-1]["partitions"])


def projected(settings) -> int:
    return rows(settings, "SELECT count(*) FROM verification.events")[0][0]


def test_a_projector_added_and_one_removed_mid_stream(settings, services, tmp_path):
    settings = settings.with_(checkpoint_seconds=0.5)
    cast = Cast()
    ledger = Ledger(settings)
    try:
        accepted = append_accepted(ledger, cast.founding_events())
        services("consumers.relay", settings, name="relay")
        first = services("consumers.projector", settings, name="projector-1")
        accepted += append_accepted(ledger, [cast.issue() for _ in range(300)])
        wait_for(lambda: projected(settings) > 0, 90, 0.2, "the first projector to start")

        second = services("consumers.projector", settings, name="projector-2")  # joins: the partitions are split
        accepted += append_accepted(ledger, [cast.issue() for _ in range(300)])
        wait_for(lambda: assigned(second), 90, 0.2, "the second projector to be given partitions")
        accepted += append_accepted(ledger, [cast.issue() for _ in range(300)])

        first.kill()  # leaves without a goodbye: its partitions move after the session timeout
        accepted += append_accepted(ledger, [cast.issue() for _ in range(300)])
        wait_for(lambda: projected(settings) == 1200, 180, 0.5, "the remaining projector to project everything")
        wait_for(lambda: rows(settings, "SELECT coalesce(max(size), 0) FROM checkpoints")[0][0] == len(accepted), 60, 0.2, "the last checkpoint")
        assert second.running()
        second.stop()
    finally:
        ledger.close()
    assert_exactly_once(settings, accepted)
    assert_rebuild_equals_live(settings)
