"""Deliberate crash points: kill this process at a named place, on purpose, for the tests.

README's invariant 4 ("nothing lost, nothing doubled") is a claim about what
happens when a process dies at the worst moment. Random SIGKILLs rarely land
there, so the recovery tests name the moment instead::

    TRACELEDGER_CRASH_AT=relay.sent:3                 # SIGKILL at the 3rd pass of that point
    TRACELEDGER_CRASH_AT=relay.sent:3,ledger.committed:1

A call site is one line, ``crash_point("relay.sent")``, placed where a crash
is most interesting. SIGKILL, not an exception: nothing gets to clean up, flush
or roll back, exactly as with the OOM killer or a pulled plug.

Cost when unset: :data:`crash_point` is bound once, at import, to a function
that does nothing, so the hot paths (the relay's send loop) pay one empty call.
The points themselves are listed in :data:`POINTS`, so a typo in the
environment fails loudly at start instead of silently never firing.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from typing import Callable

from ledger.config import crash_plan_from_env

__all__ = ["POINTS", "crash_point", "parse_plan"]

# Every named point and where it is; the tests in tests/test_crash_points.py hit each.
POINTS = {
    "relay.sent": "consumers/relay.py: a log entry, indexed and committed in PostgreSQL, handed to the producer",
    "checkpointer.produced": "consumers/checkpointer.py: a checkpoint acknowledged on its topic, its table row not yet written",
    "consumer.committed": "consumers/exactly_once.py: a batch and its offsets committed in PostgreSQL, Kafka's group offsets not yet",
    "ledger.committed": "ledger/service.py: a batch committed to the event store, the caller not yet answered",
    "scan_inbox.recorded": "ledger/scan_inbox.py: a batch of inbox entries recorded on the chains, not yet logged",
    "cli.issue_accepted": "traceledger CLI issue: a batch accepted by the API, its CSV rows not yet written",
    "projector.batch_staged": "projections/verification.py: a batch event's label rows written in the consumer's transaction, not yet committed",
    "consumer.unparked": "consumers/exactly_once.py: parked records applied (and deleted from pending) with what they waited for, not yet committed",
    "pins.checked": "ledger/channel_state.py: a correct PIN's use counted, the consumer not yet answered",
}


def parse_plan(spec: str) -> dict[str, int]:
    """``"name:n,name:n"`` -> {name: n}; refuses unknown names and non-positive passes."""
    plan: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, nth = item.partition(":")
        if name not in POINTS:
            raise SystemExit(f"TRACELEDGER_CRASH_AT names an unknown crash point {name!r}; known: {', '.join(POINTS)}")
        if not nth.isdigit() or int(nth) < 1:
            raise SystemExit(f"TRACELEDGER_CRASH_AT: {item!r} must be NAME:N with N >= 1 (the pass to crash at)")
        plan[name] = int(nth)
    return plan


def _never(name: str) -> None:
    """No crash planned: the point costs one call."""


def _armed(plan: dict[str, int]) -> Callable[[str], None]:
    passes: Counter[str] = Counter()

    def crash_point(name: str) -> None:
        if name not in plan:
            return
        passes[name] += 1
        if passes[name] == plan[name]:
            # One line on stderr so a test can tell this planned death from an unplanned one.
            print(f"crash_point {name} pass {passes[name]}: SIGKILL", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    return crash_point


_PLAN = parse_plan(crash_plan_from_env())
crash_point: Callable[[str], None] = _armed(_PLAN) if _PLAN else _never
