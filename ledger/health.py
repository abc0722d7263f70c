"""Health of the stores behind a process: the database answers (``/healthz``'s old
check, now part of ``/readyz``), and how far the verification read model trails the log."""

from __future__ import annotations

import psycopg


async def ping(conn: psycopg.AsyncConnection) -> None:
    """One round trip; raises psycopg's error when the database cannot answer."""
    await conn.execute("SELECT 1")


def write_store_answers(ledger, timeout: float = 2.0) -> None:
    """Raise unless the ledger's event store hands out a working connection within ``timeout``.

    The event store has its own pool (eventsourcing's). After a database restart that pool
    reconnects with a growing back-off, later than the API's read pool: readiness must wait
    for it, or the first write after "ready" waits its whole timeout and answers 503.
    """
    with ledger.app.recorder.datastore.pool.connection(timeout=timeout) as conn:
        conn.execute("SELECT 1")


async def projector_lag(conn: psycopg.AsyncConnection, label_topic: str, schema: str = "verification") -> int:
    """Label-topic entries of the log not yet consumed by the ``schema`` projectors.

    The log's entries for the topic (what the relay publishes, one record each) minus
    the records the projectors' stored offsets say they consumed. A count over
    ``log_entries``: fine for readiness probes every few seconds at the sizes one
    machine holds (the API caches the answer for a second); a deployment of billions
    keeps a per-partition counter instead (docs/scale-out.md).
    """
    published = (await (await conn.execute("SELECT count(*) FROM log_entries WHERE topic = %s", (label_topic,))).fetchone())[0]
    try:
        consumed = (await (await conn.execute(
            f"SELECT coalesce(sum(next_offset), 0) FROM {schema}.consumer_offsets WHERE topic = %s", (label_topic,))).fetchone())[0]
    except psycopg.errors.UndefinedTable:
        await conn.rollback()
        consumed = 0
    return max(0, int(published) - int(consumed))
