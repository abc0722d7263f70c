"""The integrity sweep: every label's stored chain re-hashed against what was published, off the read path.

The verification read model is built from Kafka by the projector, which verifies
each event's signature and chain link before projecting it. What the projector
cannot see is an edit of the ledger's own PostgreSQL event store made *after*
projection. Reads used to re-hash the label's stored chain on every request; the
sweep does that work once per pass for all labels instead, and flags a label
whose stored chain no longer matches in ``{schema}.label_integrity``. Every read
(:mod:`projections.checked_view`) looks the flag up in the same statement and
sends a flagged label through the precise check (:func:`projections.integrity.guard_view`),
so a tampered label never answers ``genuine`` once flagged. The window between an
edit and its flag is at most one pass plus the pause between passes (see
``docs/design/read-path.md``).

A pass walks the read model's labels in serial order, :data:`CHUNK` at a time. One
statement per chunk decides in PostgreSQL which labels' chains match (at every
published position ``seq`` the stored row of version ``seq + 1`` exists, is a chain
event and its signed body hashes to the published hash; no stored version below 1).
Only the labels it does not clear, and every label of a chunk whose statement
PostgreSQL could not run (an edited row that no longer parses as UTF-8, JSON or
base64 raises), are checked precisely in Python
(:func:`projections.integrity.stored_chain_problem`); a label with a problem is
flagged with it, a flagged label whose chain matches again is cleared.

:func:`run_sweeper` runs passes forever in one process per database: it holds a
session advisory lock on its own connection, so among several API workers exactly
one sweeps, and another takes over within one pause if that one dies.
"""

from __future__ import annotations

import asyncio
import time

import psycopg

from ledger.logging_setup import get_logger
from ledger.store import LedgerApplication, chain_id, chain_topic_sql, signed_body_sql
from projections.integrity import stored_chain_problem
from projections.verification import DEFAULT_SCHEMA

log = get_logger("integrity_sweep")

CHUNK = 500
SWEEP_LOCK = 0x74726973  # any fixed number: one sweeper per database
# The pause after a pass is at least this many times the pass's own time: the sweep takes at
# most 1/(1 + DUTY) of the time of one database backend, however many labels there are.
DUTY = 4


def _chunk_sql(schema: str, events_table: str) -> str:
    """Of the chunk's (serial, chain uuid) pairs, the serials whose stored chain is NOT cleared (parameters: two arrays)."""
    # A label's step in a batch event (event.v3) is stored as its head in public.label_heads
    # (written with the batch event, in one transaction): the published step hash must be it.
    stored_ok = (
        f"coalesce(bool_and(coalesce((s.topic = {chain_topic_sql('e.seq')}"
        " AND sha256(st.body) = e.hash) OR (h.seq = e.seq AND h.head = e.hash), false)), true)"
    )
    return (
        f"SELECT c.serial FROM unnest(%s::text[], %s::uuid[]) AS c(serial, chain)"
        f" CROSS JOIN LATERAL (SELECT {stored_ok} AS ok"
        f"  FROM {schema}.events e LEFT JOIN \"{events_table}\" s ON s.originator_id = c.chain AND s.originator_version = e.seq + 1"
        f"  LEFT JOIN LATERAL (SELECT {signed_body_sql('s.state')} AS body) st ON true"
        f"  LEFT JOIN public.label_heads h ON h.serial = e.subject"
        f"  WHERE e.subject_type = 'label' AND e.subject = c.serial) t"
        f" WHERE NOT t.ok OR EXISTS (SELECT 1 FROM \"{events_table}\" WHERE originator_id = c.chain AND originator_version < 1)"
    )


async def _suspects(app: LedgerApplication, conn: psycopg.AsyncConnection, serials: list[str], schema: str) -> list[str]:
    """The serials of the chunk that need the precise check (all of them when the statement cannot run)."""
    chains = [chain_id("label", s) for s in serials]
    try:
        cur = await conn.execute(_chunk_sql(schema, app.recorder.events_table_name), (serials, chains))
        return [r[0] for r in await cur.fetchall()]
    except psycopg.DataError as exc:
        # A stored row PostgreSQL cannot parse: the store was edited somewhere in this chunk.
        log.warning("sweep_chunk_unparsable", first=serials[0], last=serials[-1], error=type(exc).__name__)
        return serials


async def sweep_chunk(app: LedgerApplication, conn: psycopg.AsyncConnection, serials: list[str], schema: str = DEFAULT_SCHEMA) -> int:
    """Check ``serials``' stored chains and set their flags; the number flagged. ``conn``: autocommit."""
    problems = {}
    for serial in await _suspects(app, conn, serials, schema):
        problem = await stored_chain_problem(app, conn, serial, schema)
        if problem is not None:
            problems[serial] = problem
    async with conn.transaction():
        await conn.execute(f"DELETE FROM {schema}.label_integrity WHERE serial = ANY(%s) AND NOT serial = ANY(%s)",
                           (serials, list(problems)))
        for serial, problem in problems.items():
            cur = await conn.execute(
                f"INSERT INTO {schema}.label_integrity (serial, problem) VALUES (%s, %s)"
                f" ON CONFLICT (serial) DO UPDATE SET problem = EXCLUDED.problem"
                f" WHERE {schema}.label_integrity.problem IS DISTINCT FROM EXCLUDED.problem RETURNING serial", (serial, problem))
            if await cur.fetchone():
                log.error("stored_chain_flagged", serial=serial, problem=problem)
    return len(problems)


async def sweep(app: LedgerApplication, conn: psycopg.AsyncConnection, schema: str = DEFAULT_SCHEMA) -> dict:
    """One pass over every label of the read model; what it found (labels, flagged, seconds)."""
    started, after, labels, flagged = time.monotonic(), "", 0, 0
    while True:
        cur = await conn.execute(f"SELECT serial FROM {schema}.labels WHERE serial > %s ORDER BY serial LIMIT %s", (after, CHUNK))
        serials = [r[0] for r in await cur.fetchall()]
        if not serials:
            break
        flagged += await sweep_chunk(app, conn, serials, schema)
        labels += len(serials)
        after = serials[-1]
    return {"labels": labels, "flagged": flagged, "seconds": round(time.monotonic() - started, 3)}


async def run_sweeper(app: LedgerApplication, conninfo: str, pause: float, schema: str = DEFAULT_SCHEMA) -> None:
    """Sweep forever, ``pause`` seconds (at least :data:`DUTY` times the last pass's time) between passes, while
    this process holds the sweep lock (else keep trying)."""
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                while not (await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (SWEEP_LOCK,))).fetchone())[0]:
                    await asyncio.sleep(pause)
                log.info("integrity_sweeper_started", pause=pause)
                while True:
                    found = await sweep(app, conn, schema)
                    log.debug("integrity_sweep_pass", **found)
                    await asyncio.sleep(max(pause, DUTY * found["seconds"]))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database away or the read model being rebuilt: try again after a pause
            log.warning("integrity_sweep_failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(pause)
