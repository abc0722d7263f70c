"""Reads of the global log's entries (``log_entries``): by range, by subject, for exports and proof bundles.

Each entry row is ``(log_index, subject_type, subject, seq, event_id, value)``
unless a function says otherwise; ``value`` is the signed event's envelope,
the exact bytes on Kafka.
"""

from __future__ import annotations

import psycopg

ENTRY_COLUMNS = "log_index, subject_type, subject, seq, event_id, value"


def entries(conn: psycopg.Connection, start: int, end: int) -> list[tuple]:
    """Entries ``start..end-1``, in log order."""
    return conn.execute(
        f"SELECT {ENTRY_COLUMNS} FROM log_entries WHERE log_index >= %s AND log_index < %s ORDER BY log_index", (start, end),
    ).fetchall()


def subject_entries(conn: psycopg.Connection, subject_type: str, subject: str, below: int) -> list[tuple]:
    """One subject's entries with an index below ``below``, in log order."""
    return conn.execute(
        f"SELECT {ENTRY_COLUMNS} FROM log_entries WHERE subject_type = %s AND subject = %s AND log_index < %s ORDER BY log_index",
        (subject_type, subject, below),
    ).fetchall()


def batch_entries_of_label(conn: psycopg.Connection, serial: str, below: int, schema: str = "verification") -> list[tuple]:
    """The batch events (event.v3) that include label ``serial``, with an index below ``below``, in log order.

    A batch event is logged under its batch id, not under each label: the projection's
    label events (``<schema>.events``, one row per label the batch touched) say which.
    """
    return conn.execute(
        f"SELECT {', '.join('l.' + c for c in ENTRY_COLUMNS.split(', '))} FROM {schema}.events e "
        "JOIN log_entries l ON l.log_index = e.log_index "
        "WHERE e.subject_type = 'label' AND e.subject = %s AND l.subject_type = 'batch' AND l.log_index < %s ORDER BY l.log_index",
        (serial, below),
    ).fetchall()


def type_entries(conn: psycopg.Connection, subject_type: str, below: int) -> list[tuple]:
    """Every entry of one subject type (e.g. all actor events) with an index below ``below``, in log order."""
    return conn.execute(
        f"SELECT {ENTRY_COLUMNS} FROM log_entries WHERE subject_type = %s AND log_index < %s ORDER BY log_index", (subject_type, below),
    ).fetchall()


def count_from(conn: psycopg.Connection, subject_type: str, subject: str, start: int) -> int:
    """How many of a subject's entries have an index of ``start`` or more."""
    return conn.execute(
        "SELECT count(*) FROM log_entries WHERE subject_type = %s AND subject = %s AND log_index >= %s", (subject_type, subject, start),
    ).fetchone()[0]


def count_of_label_from(conn: psycopg.Connection, serial: str, start: int, schema: str = "verification") -> int:
    """How many log entries about label ``serial`` have an index of ``start`` or more: its own events
    and the batch events that include it (projected so far; see :func:`batch_entries_of_label`)."""
    batch = conn.execute(
        f"SELECT count(*) FROM {schema}.events e JOIN log_entries l ON l.log_index = e.log_index "
        "WHERE e.subject_type = 'label' AND e.subject = %s AND l.subject_type = 'batch' AND l.log_index >= %s",
        (serial, start),
    ).fetchone()[0]
    return count_from(conn, "label", serial, start) + batch


def subject_values(conn: psycopg.Connection, subject_type: str, subject: str) -> list[bytes]:
    """A subject's envelopes, in log order."""
    rows = conn.execute("SELECT value FROM log_entries WHERE subject_type = %s AND subject = %s ORDER BY log_index",
                        (subject_type, subject)).fetchall()
    return [bytes(r[0]) for r in rows]


def count_of_subjects(conn: psycopg.Connection, subjects: set[tuple[str, str]]) -> int:
    """How many entries these ``(subject_type, subject)`` pairs have."""
    return conn.execute(
        "SELECT count(*) FROM log_entries l JOIN unnest(%s::text[], %s::text[]) AS w(t, s) ON l.subject_type = w.t AND l.subject = w.s",
        ([t for t, _ in subjects], [s for _, s in subjects]),
    ).fetchone()[0]


def values_of_subjects(conn: psycopg.Connection, subjects: set[tuple[str, str]]) -> list[bytes]:
    """Every envelope of these ``(subject_type, subject)`` pairs, in log order."""
    rows = conn.execute(
        "SELECT value FROM log_entries l JOIN unnest(%s::text[], %s::text[]) AS w(t, s) ON l.subject_type = w.t AND l.subject = w.s "
        "ORDER BY log_index",
        ([t for t, _ in subjects], [s for _, s in subjects]),
    ).fetchall()
    return [bytes(r[0]) for r in rows]
