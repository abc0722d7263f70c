"""Alerts bound to their owners: unguessable alert ids, and who may move each alert.

Issue 15: alert ids were UUIDv5 of the incident key and its first evidence
event, both readable from the log, and ``AlertAcknowledged`` for someone
else's alert was a valid ledger event. Another producer could compute a
competitor's alert id, acknowledge it in its own name first, and so own the
alert's chain: its real owner and the regulators could then never move it.

Two things close that:

* :func:`alert_id` is a keyed hash (HMAC-SHA256 under a key drawn once per
  database and never published, :mod:`ledger.platform_secrets`) of the incident key and its first
  evidence: a detector rebuilt from the topic gives every alert the same id,
  but nobody without the database can compute one. Only those the API shows
  the alert to (its producer, regulators) learn it.
* :func:`register` records each alert the detector raises with its producer
  (``alert_owners``, ledger/migrations/0009_alert_owners_and_places.sql), in the
  detector's transaction; :func:`check` is asked by the ledger before it
  appends an event of an ``alert`` chain, and refuses one that names another
  producer (or another kind or serial) than the alert's, or an alert never
  raised. With the ledger's own rule (the signer is a regulator or the named
  producer) only the owner or a regulator can move an alert.

The signed form of the same fact (event.v4): a detector with a key (a registered
actor, role ``detector``) registers each alert ``raise_pending`` with its severity
and :func:`evidence_commitment`, and then opens the alert's chain with a signed
``AlertRaised`` naming its producer (:mod:`consumers.alert_raiser`, which marks the
row raised). From then on ownership is signed history: the ledger's lifecycle
rules and the auditor check it from Kafka alone. Until then, :func:`check` refuses
transitions of that alert (retry in a moment: it is being raised), so no producer
can open the chain first; and it refuses an ``AlertRaised`` that is not about an
alert registered here (a detector key alone does not make an alert).
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Iterable

import psycopg

from ledger import platform_secrets
from ledger.errors import Refused


def secret(cur: psycopg.Cursor | psycopg.Connection) -> bytes:
    """The key of alert ids (:mod:`ledger.platform_secrets`)."""
    return platform_secrets.get(cur, platform_secrets.ALERT_IDS)


def alert_id(key: bytes, dedupe_key: str, first_evidence: str) -> uuid.UUID:
    """The id of the alert an incident opens with its first evidence (stable, not computable without ``key``)."""
    digest = hmac.new(key, f"{dedupe_key}\n{first_evidence}".encode(), hashlib.sha256).digest()
    return uuid.UUID(bytes=digest[:16], version=4)


def evidence_commitment(event_ids: Iterable[str]) -> bytes:
    """SHA-256 over the sorted evidence event ids, one per line: what ``AlertRaised`` commits to.

    Checkable by whoever may read the evidence events (the alert's producer, regulators)
    without the public log showing which events they are.
    """
    return hashlib.sha256("\n".join(sorted(set(event_ids))).encode()).digest()


# The same commitment in SQL (byte order, like Python's sort of ASCII ids).
_COMMITMENT_SQL = ("sha256(convert_to(array_to_string(ARRAY(SELECT e FROM (SELECT DISTINCT e FROM unnest(evidence) AS e) AS d "
                   "ORDER BY e COLLATE \"C\"), E'\\n'), 'UTF8'))")


def register(cur: psycopg.Cursor, schema: str, dedupe_keys: Iterable[str], *, signed: bool = False) -> list[uuid.UUID]:
    """Record the alerts of ``schema`` with these incident keys (just raised or updated) with their owners; their ids.

    Read back from the alert rows, so an update of an open alert registers the id it
    already has; a rebuild re-registering the same ids changes nothing. ``signed``: the
    detector signs ``AlertRaised``; a new alert is registered pending its raise, with its
    severity and evidence commitment as of now.
    """
    rows = cur.execute(
        f"WITH raised AS (SELECT alert_id, producer, kind, serial, severity, {_COMMITMENT_SQL} AS commitment "
        f"FROM {schema}.alerts WHERE dedupe_key = ANY(%s)), "
        "stored AS (INSERT INTO public.alert_owners (alert_id, producer, kind, serial, raise_pending, severity, evidence_commitment) "
        "SELECT alert_id, producer, kind, serial, %s, severity, commitment FROM raised "
        "ON CONFLICT (alert_id) DO NOTHING) SELECT alert_id FROM raised",
        (list(dedupe_keys), signed),
    ).fetchall()
    return [r[0] for r in rows]


def pending_raises(conn: psycopg.Connection, limit: int) -> list[tuple]:
    """Alerts waiting for their ``AlertRaised``, oldest first: (alert_id, producer, kind, serial, severity, commitment)."""
    return conn.execute(
        "SELECT alert_id, producer, kind, serial, severity, evidence_commitment FROM public.alert_owners "
        "WHERE raise_pending ORDER BY raised_at, alert_id LIMIT %s",
        (limit,),
    ).fetchall()


def mark_raised(conn: psycopg.Connection, raised: dict[uuid.UUID, str]) -> None:
    """Record that these alerts' ``AlertRaised`` events (alert id -> event id) are on the ledger."""
    if raised:
        conn.execute(
            "UPDATE public.alert_owners o SET raise_pending = false, raised_event = r.event_id "
            "FROM unnest(%s::uuid[], %s::text[]) AS r(alert_id, event_id) WHERE o.alert_id = r.alert_id",
            (list(raised), list(raised.values())),
        )


def owner(conninfo: str, alert: str) -> tuple[str | None, str, str | None, bool] | None:
    """(producer, kind, serial, whether its signed AlertRaised is still to come) of a raised alert, or None."""
    try:
        key = uuid.UUID(alert)
    except ValueError:
        return None
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return conn.execute("SELECT producer, kind, serial, raise_pending FROM public.alert_owners WHERE alert_id = %s", (key,)).fetchone()


def check(conninfo: str, kind: str, alert: str, payload: dict, *, opened: bool | None = None) -> None:
    """Refuse an alert event that is not about a raised alert of the producer (kind, serial) it names.

    ``opened``: whether the alert's chain already exists (None: not known). An alert
    whose ``AlertRaised`` is still to come cannot be moved by anyone before it is on
    the chain, or a producer could open the chain with its own acknowledgement.
    """
    found = owner(conninfo, alert)
    if found is None:
        raise Refused("unknown_subject", f"no alert {alert} has been raised", field="subject")
    producer, alert_kind, serial, pending = found
    if payload.get("producer") != producer:
        raise Refused("not_authorized", f"alert {alert} is not about {payload.get('producer')}'s labels", field="producer")
    if kind in ("AlertAcknowledged", "AlertRaised") and (payload.get("alert_kind") != alert_kind or payload.get("serial") != serial):
        raise Refused("invalid_field", f"alert {alert} is {alert_kind} on {serial}", field="alert_kind")
    if kind != "AlertRaised" and pending and not opened:
        raise Refused("alert_not_raised_yet", f"alert {alert} is being raised on the ledger: try again in a few seconds", field="subject")
