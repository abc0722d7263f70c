"""Alert chains in a read model: the signed state of each alert (acknowledged, resolved).

An alert's transitions (``AlertAcknowledged``, ``AlertResolved``: subject type
``alert``, subject = the alert's UUID) travel on ``label-events`` like every
non-actor subject. The verification projector checks them with the same
lifecycle rules as label events, which needs each alert chain's state (its
head, and what ``authorize`` compares: producer and status). This module keeps
that state in ``<schema>.alert_chains``; :mod:`projections.verification`
calls it, and the detector (:mod:`projections.alerts`) applies the transitions
to its alert rows.
"""

from __future__ import annotations

import dataclasses
import uuid

import psycopg

from ledger.lifecycle import AlertState

_COLUMNS = [f.name for f in dataclasses.fields(AlertState)]


def is_alert_key(key: str) -> bool:
    """Whether a record key can be an alert's subject (a lower-case UUID)."""
    if len(key) != 36 or key[8] != "-":
        return False
    try:
        return str(uuid.UUID(key)) == key
    except ValueError:
        return False


def load(cur: psycopg.Cursor, s: str, keys: list[str]) -> dict[str, AlertState]:
    """The stored state of each alert chain among ``keys`` (absent ones are left out)."""
    if not keys:
        return {}
    cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM {s}.alert_chains WHERE alert_id = ANY(%s)", (keys,))
    return {row[0]: AlertState(*row[:-1], head=bytes(row[-1])) for row in cur.fetchall()}


def save(cur: psycopg.Cursor, s: str, states: list[AlertState]) -> None:
    """Insert or update alert chain states."""
    if not states:
        return
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS if c != "alert_id")
    cur.executemany(
        f"INSERT INTO {s}.alert_chains ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))}) "
        f"ON CONFLICT (alert_id) DO UPDATE SET {updates}",
        [[getattr(st, c) for c in _COLUMNS] for st in states],
    )
