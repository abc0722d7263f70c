"""Signed alert transitions applied to the detector's alert rows.

An alert moves open -> acknowledged -> resolved only by signed ledger events
of its producer or a regulator (``AlertAcknowledged``, ``AlertResolved``;
subject type ``alert``, subject = the alert's UUID). Since event.v4 the chain
opens with the detector's ``AlertRaised`` (seq 0): recorded here like a
transition that changes nothing, so the ones after it follow it. The verification
projector has already checked each one (signature, chain, lifecycle rules)
before the detector sees it; this module records it in
``<schema>.alert_transitions`` and applies it to the alert row, in the
detector's transaction.

A checked transition is never quarantined: it is a legitimate ledger fact,
already folded into the verifier's chain state in the same transaction, and
the quarantine is for records that break the ledger's rules. What can still
disagree is the detector's own read model, and then the transition is
recorded with a status instead of being applied:

* ``pending``: no alert with that id yet. Alert events and the label events
  that raised the alert are keyed differently, so they sit on different
  partitions and a rebuild may read the transition first; it is applied as
  soon as the alert is raised (:func:`apply_pending`).
* ``rejected``: the transition names another producer (or, for an
  acknowledgement, another kind or serial) than the alert row. Submitted
  through ``POST /v1/events`` anyone could sign such an event for their own
  alert id; it must not move someone else's alert. Logged as a warning.

A later transition of the same alert follows its predecessor: pending behind
a pending one, rejected behind a rejected one.

What a rebuild does not reproduce exactly: Kafka orders records within a
partition only, so a rebuilt detector may read a label's later scans before
the resolution of its alert (they then join the resolved alert instead of
opening a new one), or the resolution first (then scans that came before it
open a new alert). Alert ids and the outcome of each transition are the same
either way; only evidence that straddles a resolution can be grouped
differently.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import psycopg

from ledger.logging_setup import get_logger

log = get_logger("detector")

@dataclass(frozen=True)
class Transition:
    """One checked alert event, as the detector records it."""

    alert_id: uuid.UUID
    seq: int
    event_id: str
    kind: str  # AlertRaised | AlertAcknowledged | AlertResolved
    actor: str
    producer: str | None
    alert_kind: str | None
    serial: str | None
    resolution: str | None
    note: str | None
    occurred_at: datetime
    log_index: int | None
    where: dict  # topic, partition, offset of the record (for the logs)

    @classmethod
    def of(cls, event, log_index: int | None, where: dict) -> "Transition":
        p = event.payload
        return cls(uuid.UUID(event.subject), event.seq, event.event_id, event.kind, event.actor, p.get("producer"),
                   p.get("alert_kind"), p.get("serial"), p.get("resolution"), p.get("note"), event.occurred_at, log_index, where)


def record(cur: psycopg.Cursor, s: str, transitions: list[Transition]) -> None:
    """Record checked transitions (in stream order) and apply each one that can be."""
    for t in transitions:
        status, reason = _decide(cur, s, t)
        cur.execute(
            f"INSERT INTO {s}.alert_transitions (alert_id, seq, event_id, kind, actor, producer, alert_kind, serial, resolution, "
            "note, occurred_at, log_index, status, reason) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (alert_id, seq) DO NOTHING",
            (t.alert_id, t.seq, t.event_id, t.kind, t.actor, t.producer, t.alert_kind, t.serial, t.resolution, t.note,
             t.occurred_at, t.log_index, status, reason),
        )
        _log(t, status, reason)


def apply_pending(cur: psycopg.Cursor, s: str, alert_ids: list[uuid.UUID]) -> int:
    """Apply the pending transitions of alerts just raised; return how many were settled."""
    if not alert_ids:
        return 0
    rows = cur.execute(
        f"SELECT alert_id, seq, event_id, kind, actor, producer, alert_kind, serial, resolution, note, occurred_at, log_index "
        f"FROM {s}.alert_transitions WHERE status = 'pending' AND alert_id = ANY(%s) ORDER BY alert_id, seq",
        (alert_ids,),
    ).fetchall()
    for row in rows:
        t = Transition(*row, where={})
        status, reason = _decide(cur, s, t)
        cur.execute(f"UPDATE {s}.alert_transitions SET status = %s, reason = %s WHERE alert_id = %s AND seq = %s",
                    (status, reason, t.alert_id, t.seq))
        _log(t, status, reason)
    return len(rows)


def _decide(cur: psycopg.Cursor, s: str, t: Transition) -> tuple[str, str | None]:
    """Apply ``t`` to its alert row if it may be; return (status, reason)."""
    if t.seq > 0:
        prev = cur.execute(f"SELECT status FROM {s}.alert_transitions WHERE alert_id = %s AND seq = %s",
                           (t.alert_id, t.seq - 1)).fetchone()
        if prev is None or prev[0] == "pending":
            return "pending", "waiting for the alert's earlier transition"
        if prev[0] == "rejected":
            return "rejected", "the alert's earlier transition was rejected"
    row = cur.execute(f"SELECT kind, serial, producer FROM {s}.alerts WHERE alert_id = %s FOR UPDATE", (t.alert_id,)).fetchone()
    if row is None:
        return "pending", "no alert with this id has been raised (yet)"
    kind, serial, producer = row
    if t.producer != producer:
        return "rejected", f"the transition names producer {t.producer}, the alert's producer is {producer}"
    if t.kind in ("AlertAcknowledged", "AlertRaised") and (t.alert_kind != kind or t.serial != serial):
        return "rejected", f"the {t.kind} is for a {t.alert_kind} alert on {t.serial}, the alert is {kind} on {serial}"
    if t.kind == "AlertRaised":
        return "applied", None  # the detector's signature on the alert it raised: the row stays open
    if t.kind == "AlertAcknowledged":
        cur.execute(f"UPDATE {s}.alerts SET state = 'acknowledged', updated_at = now() WHERE alert_id = %s AND state = 'open'", (t.alert_id,))
    else:
        cur.execute(f"UPDATE {s}.alerts SET state = 'resolved', resolution = %s, updated_at = now() WHERE alert_id = %s",
                    (t.resolution, t.alert_id))
    return "applied", None


def _log(t: Transition, status: str, reason: str | None) -> None:
    fields = dict(alert_id=str(t.alert_id), seq=t.seq, event_id=t.event_id, kind=t.kind, actor=t.actor, log_index=t.log_index, **t.where)
    if status == "rejected":
        log.warning("alert_transition_rejected", reason=reason, **fields)
    elif status == "pending":
        log.info("alert_transition_pending", reason=reason, **fields)
    else:
        log.info("alert_transition_applied", **fields)
