"""Concurrent label lookups of one API worker answered together: one statement for every waiting request.

``GET /v1/labels/{serial}`` costs one database round trip, and at the server's
ceiling the client side of a query (psycopg's send, wait, parse; the event loop's
wake-ups) costs as much CPU as the answer itself. A :class:`ViewBatcher` (one per
worker, ``app.state.views``; ``app.state.scan_views`` with the inbox figures, for scans) collects the serials asked for while its readers are
busy and reads them all with ONE statement (:func:`projections.checked_view.checked_views`,
``WHERE serial = ANY(...)``). Batching is natural, not timed, like the inbox's group
commit (:mod:`ledger.inbox_group`): a lookup arriving while fewer than
:data:`READERS` statements run is read at once (a batch of one, no added wait).

Freshness is unchanged: every answer is computed by a statement that started after
its request arrived, from the read model as committed then (no cache).
"""

from __future__ import annotations

import asyncio

from ledger.logging_setup import get_logger
from projections.checked_view import checked_views

log = get_logger("api")

MAX_SERIALS = 128  # serials read by one statement at most
READERS = 2  # statements in flight at once per worker


class ViewBatcher:
    """One API worker's reader of label views, many requests per statement (``pool``: the worker's async pool)."""

    def __init__(self, app, pool, *, with_inbox: bool = False, max_serials: int = MAX_SERIALS, readers: int = READERS):
        self.app, self.pool, self.with_inbox = app, pool, with_inbox
        self.max_serials, self.max_readers = max_serials, readers
        self._pending: list[tuple[str, asyncio.Future]] = []
        self._readers: set[asyncio.Task] = set()  # referenced here so none is collected mid-read
        self.batches = self.lookups = 0

    async def view(self, serial: str) -> dict:
        """``serial``'s checked view (:func:`projections.checked_view.checked_view`; the inbox figures if ``with_inbox``)."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((serial, future))
        if len(self._readers) < self.max_readers:
            task = asyncio.create_task(self._read_all())
            self._readers.add(task)
            task.add_done_callback(self._readers.discard)
        # Shielded: a request given up (its client went away) does not cancel the others' statement.
        return dict(await asyncio.shield(future))

    async def _read_all(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self.max_serials], self._pending[self.max_serials:]
            try:
                async with self.pool.connection() as conn:
                    views = await checked_views(self.app, conn, [s for s, _ in batch], with_inbox=self.with_inbox)
            except Exception as exc:  # noqa: BLE001 - every request of the batch gets the error (an unreachable database: 503)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            self.lookups += len(batch)
            for serial, future in batch:
                if not future.done():
                    future.set_result(views[serial])
