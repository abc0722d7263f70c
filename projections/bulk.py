"""Set-based writes of a poll batch's rows: COPY instead of one statement per row.

A projector writes thousands of rows per poll batch. ``executemany`` sends one
INSERT per row (pipelined, but each row is still parsed, bound and executed on
its own); COPY streams them all in one statement, and for an upsert one
``INSERT ... SELECT ... ON CONFLICT DO UPDATE`` from a temporary table applies
them set-based. Both run inside the caller's transaction, so they commit (or
roll back) with the batch's offsets like any other statement.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import psycopg


def copy_rows(cur: psycopg.Cursor, table: str, cols: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Append ``rows`` to ``table`` (a duplicate key fails the statement, as an INSERT would)."""
    with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def upsert_rows(cur: psycopg.Cursor, table: str, cols: Sequence[str], key: str, rows: Sequence[Sequence]) -> None:
    """Insert ``rows`` into ``table`` or update the rows with the same ``key`` columns.

    Each key at most once in ``rows`` (an upsert cannot touch a row twice).
    The rows pass through a temporary table private to this connection,
    truncated after use: a later call in the same transaction (a consumer's
    careful retry flushes once per record) starts clean, and nothing is left
    to bloat it (autovacuum never visits temporary tables, so a DELETE would).
    A rolled-back transaction takes its staged rows (or the table's creation) with it.
    """
    if not rows:
        return
    keys = {k.strip() for k in key.split(",")}
    staging = "bulk_" + table.replace(".", "_")
    names = ", ".join(cols)
    cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {staging} (LIKE {table})")
    copy_rows(cur, staging, cols, rows)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c not in keys)
    cur.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} ON CONFLICT ({key}) DO UPDATE SET {updates}")
    cur.execute(f"TRUNCATE {staging}")
