"""Group commit of the consumer path's durable writes: many requests' limit spends and inbox rows, one commit.

Every recorded query (the QR page, ``POST /v1/labels/{serial}/scans``) costs two
writes: one hit of the client's per-window limit (:mod:`ledger.client_limits`)
and, within the limit, one row in the scan inbox (:mod:`ledger.scan_inbox`) with
the client's first-query mark. Done one request at a time, each request waited
for two WAL flushes (~1.5-3 ms each on the machines measured). A
:class:`GroupCommit` (one per API worker process) writes every request that is
waiting with ONE statement, which spends the limits, marks first queries and
inserts the rows that are within their limits, and commits once.

Batching is natural, not timed: a request arriving while fewer than
:data:`WRITERS` writes run is written at once (a batch of one, no added wait);
requests arriving while they all run are written together by the next free
one, up to :data:`MAX_ROWS`. Under load a batch is as large as the number of
requests that arrived during one commit, so the flush cost is shared, and the
wait is at most about two writes.

Crash semantics: a request's result (its inbox id, or :class:`ledger.client_limits.OverLimit`)
is handed back only after the statement that wrote it has committed (autocommit,
``synchronous_commit`` on: flushed), and the API answers only after that. A crash
(SIGKILL of the API, or of PostgreSQL) before the commit writes none of the batch
and answers none of it; after the commit, every row of the batch is durable,
whether or not its answer got out. No answered query is ever lost. A failed
statement fails every request of its batch with the error (the API answers 5xx),
and nothing of the batch is written.

Exactness is kept from the one-request statements: a client's hits are counted in
request order within the batch (hit n of a client is refused exactly when n is
past its limit), over the limit nothing is inserted, and a label's query counts
once per client and window (only the first of several in one batch is
``counted``). Locks are taken in (scope, client) order, so two workers' batches
cannot deadlock on the counters; a deadlock or serialization failure anyway is
retried.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import psycopg

from ledger import client_limits, scan_inbox
from ledger.client_limits import Limit
from ledger.logging_setup import get_logger

log = get_logger("inbox_group")

MAX_ROWS = 256  # requests written by one statement at most
WRITERS = 2  # statements in flight at once per worker (PostgreSQL may share one WAL flush between them)
RETRIES = 3  # of a batch that lost a deadlock or serialization race

_LIMIT_ARRAYS = (("scope", "text"), ("lclient", "text"), ("w", "int"), ("lim", "int"))
_ROW_TYPES = {"lat": "float8", "lon": "float8", "occurred_at": "timestamptz", "claim": "jsonb"}
_ROW_ARRAYS = tuple((c, _ROW_TYPES.get(c, "text")) for c in scan_inbox.COLUMNS) + (("cw", "int"),)
_ARRAYS = (("ord", "int"), *_LIMIT_ARRAYS, *_ROW_ARRAYS)
_COLS = ", ".join(scan_inbox.COLUMNS)
_OUT_COLS = ", ".join(f"o.{c}" for c in scan_inbox.COLUMNS)


def _sql() -> str:
    unnest = ", ".join(f"%({name})s::{typ}[]" for name, typ in _ARRAYS)
    return (
        f"WITH req AS (SELECT * FROM unnest({unnest}) AS r({', '.join(name for name, _ in _ARRAYS)})),"
        # One upsert per (scope, client) of the batch: ON CONFLICT may touch a row once per statement.
        " agg AS (SELECT scope, lclient, min(w) AS w, count(*)::int AS n FROM req WHERE scope IS NOT NULL GROUP BY scope, lclient),"
        " spent AS (INSERT INTO client_limits AS c (scope, client, window_start, hits)"
        f"  SELECT scope, lclient, {client_limits.window_start_sql('w')}, n FROM agg ORDER BY scope, lclient"
        "  ON CONFLICT (scope, client) DO UPDATE SET"
        "  hits = CASE WHEN c.window_start = EXCLUDED.window_start THEN c.hits + EXCLUDED.hits ELSE EXCLUDED.hits END,"
        "  window_start = EXCLUDED.window_start RETURNING scope, client, hits, window_start),"
        # Each request's own hit number: the client's count before the batch plus its rank in the batch.
        " ranked AS (SELECT req.*, s.hits - a.n + row_number() OVER (PARTITION BY req.scope, req.lclient ORDER BY req.ord) AS my_hits,"
        "  ceil(extract(epoch FROM s.window_start + make_interval(secs => req.w) - now()))::int AS left_s"
        "  FROM req LEFT JOIN agg a ON a.scope = req.scope AND a.lclient = req.lclient"
        "  LEFT JOIN spent s ON s.scope = req.scope AND s.client = req.lclient),"
        " ok AS (SELECT * FROM ranked WHERE (scope IS NULL OR my_hits <= lim) AND event_id IS NOT NULL),"
        " firsts AS (INSERT INTO label_query_clients (serial, client, window_start)"
        f"  SELECT DISTINCT serial, client, {client_limits.window_start_sql('cw')} FROM ok WHERE client IS NOT NULL AND kind = 'scan'"
        "  ORDER BY 1, 2 ON CONFLICT DO NOTHING RETURNING serial, client),"
        # Counted: a scan by a known client only when it is the client's first of the label in the
        # window (its mark was new) and the first of the batch's; every other entry as before (true).
        " ins AS (INSERT INTO scan_inbox (" + _COLS + ", counted)"
        f"  SELECT {_OUT_COLS}, CASE WHEN o.client IS NULL OR o.kind <> 'scan' THEN true"
        "   ELSE EXISTS (SELECT 1 FROM firsts f WHERE f.serial = o.serial AND f.client = o.client)"
        "    AND o.ord = min(o.ord) OVER (PARTITION BY o.serial, o.client) END"
        "  FROM ok o ORDER BY o.ord RETURNING id, event_id)"
        " SELECT r.ord, r.my_hits, r.left_s, i.id FROM ranked r LEFT JOIN ins i ON i.event_id = r.event_id ORDER BY r.ord"
    )


SQL = _sql()


@dataclass
class _Request:
    """One request's part of a batch: a spend (``limit`` with ``scope``/``client``) and/or an inbox ``row``."""

    scope: str | None
    client: str | None
    limit: Limit | None
    row: tuple | None
    count_window: int
    future: asyncio.Future


class GroupCommit:
    """One API worker's writer of limit spends and inbox rows, many requests per commit.

    ``pool``: the worker's async connection pool (autocommit connections); each write
    borrows one connection for one statement.
    """

    def __init__(self, pool, *, max_rows: int = MAX_ROWS, writers: int = WRITERS):
        self.pool = pool
        self.max_rows, self.max_writers = max_rows, writers
        self._pending: list[_Request] = []
        self._writers: set[asyncio.Task] = set()  # referenced here so none is collected mid-write
        self.batches = self.rows = 0  # written so far (for the benchmarks' notes)

    async def spend(self, scope: str, client: str, limit: Limit) -> None:
        """Count one ``scope`` request of ``client`` (durable when this returns); :class:`OverLimit` past ``limit``."""
        if limit.hits <= 0:
            return
        await self._submit(scope, client, limit, None, 0)

    async def accept(self, serial: str, *, channel: str, scope: str | None = None, limit: Limit | None = None,
                     region=None, lat=None, lon=None, session=None, kind: str = scan_inbox.SCAN, pin_result: str | None = None,
                     reason: str | None = None, client: str | None = None, count_window: int = 3600) -> scan_inbox.AcceptedScan:
        """:func:`ledger.scan_inbox.accept_async` in a group commit, with the client's ``scope`` limit spent in it.

        With ``scope`` and ``limit``: one hit of ``client`` in ``scope``; past the limit
        :class:`ledger.client_limits.OverLimit` and nothing inserted. Committed when this returns.
        """
        row = scan_inbox.new_row(serial, channel, region, lat, lon, session, kind, pin_result, reason, client)
        spend = scope is not None and limit is not None and limit.hits > 0 and client is not None
        row_id = await self._submit(scope if spend else None, client, limit if spend else None, row, count_window)
        return scan_inbox.AcceptedScan(row_id, row[0], row[7])

    async def _submit(self, scope, client, limit, row, count_window) -> int | None:
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Request(scope, None if client is None else str(client), limit, row, count_window, future))
        if len(self._writers) < self.max_writers:
            task = asyncio.create_task(self._write_all())
            self._writers.add(task)
            task.add_done_callback(self._writers.discard)
        # Shielded: a request given up (its client went away) neither cancels the batch nor loses its place in it.
        return await asyncio.shield(future)

    async def _write_all(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self.max_rows], self._pending[self.max_rows:]
            try:
                results = await self._write(batch)
            except Exception as exc:  # noqa: BLE001 - every request of the batch gets the error
                log.warning("inbox_group_failed", rows=len(batch), error=type(exc).__name__, detail=str(exc)[:200])
                for r in batch:
                    if not r.future.done():
                        r.future.set_exception(exc)
                continue
            self.batches += 1
            self.rows += len(batch)
            for r, (hits, left, row_id) in zip(batch, results):
                if r.future.done():
                    continue
                try:
                    if r.limit is not None:
                        client_limits.check(r.scope, r.client, r.limit, hits, left)
                    r.future.set_result(row_id)
                except client_limits.OverLimit as exc:
                    r.future.set_exception(exc)
            if any(h == 1 for h, _, _ in results) and client_limits.prune_due():
                await self._prune(batch)

    async def _write(self, batch: list[_Request]) -> list[tuple[int | None, int | None, int | None]]:
        params = {name: [] for name, _ in _ARRAYS}
        for i, r in enumerate(batch):
            params["ord"].append(i)
            params["scope"].append(r.scope)
            params["lclient"].append(r.client if r.scope else None)
            params["w"].append(r.limit.window_seconds if r.limit else None)
            params["lim"].append(r.limit.hits if r.limit else None)
            for c, v in zip(scan_inbox.COLUMNS, r.row or (None,) * len(scan_inbox.COLUMNS)):
                params[c].append(v)
            params["cw"].append(r.count_window)
        for attempt in range(RETRIES + 1):
            try:
                async with self.pool.connection() as conn:
                    rows = await (await conn.execute(SQL, params, prepare=True)).fetchall()
                return [(hits, left, row_id) for _, hits, left, row_id in rows]
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                if attempt == RETRIES:
                    raise
                log.info("inbox_group_retry", rows=len(batch), attempt=attempt + 1)
        raise AssertionError("unreachable")

    async def _prune(self, batch: list[_Request]) -> None:
        windows = {r.limit.window_seconds for r in batch if r.limit is not None}
        try:
            async with self.pool.connection() as conn:
                for w in windows:
                    await client_limits.prune(conn, w)
        except psycopg.Error as exc:  # pruning is housekeeping: the next one catches up
            log.warning("client_limits_prune_failed", error=type(exc).__name__)
