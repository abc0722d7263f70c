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

The signed form of the same fact (the detector, a registered actor, opening each
alert with a signed event naming its producer, so the auditor can check it from
Kafka alone) needs a new event kind: requested in docs/design/event-v3-requests.md.
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


def register(cur: psycopg.Cursor, schema: str, dedupe_keys: Iterable[str]) -> list[uuid.UUID]:
    """Record the alerts of ``schema`` with these incident keys (just raised or updated) with their owners; their ids.

    Read back from the alert rows, so an update of an open alert registers the id it
    already has; a rebuild re-registering the same ids changes nothing.
    """
    rows = cur.execute(
        f"WITH raised AS (SELECT alert_id, producer, kind, serial FROM {schema}.alerts WHERE dedupe_key = ANY(%s)), "
        "stored AS (INSERT INTO public.alert_owners (alert_id, producer, kind, serial) SELECT * FROM raised "
        "ON CONFLICT (alert_id) DO NOTHING) SELECT alert_id FROM raised",
        (list(dedupe_keys),),
    ).fetchall()
    return [r[0] for r in rows]


def owner(conninfo: str, alert: str) -> tuple[str | None, str, str | None] | None:
    """(producer, kind, serial) of a raised alert, or None."""
    try:
        key = uuid.UUID(alert)
    except ValueError:
        return None
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return conn.execute("SELECT producer, kind, serial FROM public.alert_owners WHERE alert_id = %s", (key,)).fetchone()


def check(conninfo: str, kind: str, alert: str, payload: dict) -> None:
    """Refuse an alert transition that is not about a raised alert of the producer (kind, serial) it names."""
    found = owner(conninfo, alert)
    if found is None:
        raise Refused("unknown_subject", f"no alert {alert} has been raised", field="subject")
    producer, alert_kind, serial = found
    if payload.get("producer") != producer:
        raise Refused("not_authorized", f"alert {alert} is not about {payload.get('producer')}'s labels", field="producer")
    if kind == "AlertAcknowledged" and (payload.get("alert_kind") != alert_kind or payload.get("serial") != serial):
        raise Refused("invalid_field", f"alert {alert} is {alert_kind} on {serial}", field="alert_kind")
