"""Per-client request limits of the anonymous (shopper) channels, shared by every API worker.

A fixed-window counter per (scope, client) in PostgreSQL (``client_limits``,
ledger/migrations/0007_client_limits.sql): one ``INSERT … ON CONFLICT DO UPDATE …
RETURNING`` per request either starts the client's window or counts one more hit
in it, atomically, so workers and replicas share one count and a restart forgets
nothing. Over the limit, :class:`OverLimit` says how long until the window ends.

Old rows are pruned a bounded batch at a time, now and then when a client starts
a new window (one in :data:`PRUNE_EVERY`: each prune can delete far more rows
than were created since the last), so the table holds roughly the clients of the
last window without costing most requests anything.

The label's public query count uses the same idea (:func:`first_query_sql`):
a label's scans by one client within one window count once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import psycopg

from ledger.errors import Refused
from ledger.logging_setup import get_logger

log = get_logger("client_limits")

PRUNE_BATCH = 500  # rows of expired windows deleted per prune, per table
PRUNE_EVERY = 32  # a prune on about one in this many new windows


class OverLimit(Refused):
    """A client went over its limit in ``scope``: nothing was done; retry after ``retry_after`` s."""

    def __init__(self, scope: str, retry_after: int):
        super().__init__("rate_limited", f"too many {scope} requests from this client: try again in {retry_after} s", field=None)
        self.scope, self.retry_after = scope, retry_after


@dataclass(frozen=True)
class Limit:
    """At most ``hits`` requests per ``window_seconds`` per client (``hits`` 0: unlimited)."""

    hits: int
    window_seconds: int


_WINDOW_START = "to_timestamp(floor(extract(epoch FROM now()) / %(w)s) * %(w)s)"

_SPEND = (
    "INSERT INTO client_limits AS c (scope, client, window_start, hits) "
    f"VALUES (%(scope)s, %(client)s, {_WINDOW_START}, 1) "
    "ON CONFLICT (scope, client) DO UPDATE SET "
    "hits = CASE WHEN c.window_start = EXCLUDED.window_start THEN c.hits + 1 ELSE 1 END, "
    "window_start = EXCLUDED.window_start "
    "RETURNING hits, ceil(extract(epoch FROM window_start + make_interval(secs => %(w)s) - now()))::int"
)



def bounded_delete_sql(table: str, expired: str, batch_param: str = "%s") -> str:
    """SQL deleting at most ``batch_param`` (a parameter placeholder) rows of ``table`` where ``expired`` holds.

    Bounded and non-blocking: rows another worker is deleting are skipped, not waited for.
    Shared by the tables pruned on the request path (also :mod:`ledger.request_nonces`).
    """
    return f"DELETE FROM {table} WHERE ctid IN (SELECT ctid FROM {table} WHERE {expired} LIMIT {batch_param} FOR UPDATE SKIP LOCKED)"


_EXPIRED = "window_start < now() - make_interval(secs => %(w)s)"
# Both tables in one round trip.
_PRUNE = (
    f"WITH limits AS ({bounded_delete_sql('client_limits', _EXPIRED, '%(n)s')} RETURNING 1), "
    f"marks AS ({bounded_delete_sql('label_query_clients', _EXPIRED, '%(n)s')} RETURNING 1) "
    "SELECT (SELECT count(*) FROM limits), (SELECT count(*) FROM marks)"
)


async def spend(conn: psycopg.AsyncConnection, scope: str, client: str, limit: Limit) -> None:
    """Count one request of ``client`` in ``scope``; raise :class:`OverLimit` past ``limit``.

    ``conn``: autocommit (the count commits at once, whatever the request does next).
    """
    if limit.hits <= 0:
        return
    row = await (await conn.execute(_SPEND, {"scope": scope, "client": client, "w": limit.window_seconds}, prepare=True)).fetchone()
    hits, left = row
    if hits == 1 and prune_due():
        await prune(conn, limit.window_seconds)
    check(scope, client, limit, hits, left)


def prune_due() -> bool:
    """Whether a client's new window should also prune (about one in :data:`PRUNE_EVERY`)."""
    return random.randrange(PRUNE_EVERY) == 0  # noqa: S311 - spreading work, not a secret


def check(scope: str, client: str, limit: Limit, hits: int, left: int) -> None:
    """Raise :class:`OverLimit` when ``hits`` (this request's count in its window, ``left`` s to go) is past ``limit``."""
    if limit.hits > 0 and hits > limit.hits:
        if hits == limit.hits + 1:  # once per client and window: a flood logs one line
            log.warning("client_over_limit", scope=scope, client=client, limit=limit.hits, window=limit.window_seconds)
        raise OverLimit(scope, max(1, left))


async def prune(conn: psycopg.AsyncConnection, window_seconds: int) -> None:
    """Delete a batch of counters and first-query marks of windows that ended."""
    await conn.execute(_PRUNE, {"w": window_seconds, "n": PRUNE_BATCH}, prepare=True)


def window_start_sql(seconds: str) -> str:
    """SQL: the start of the current fixed window of ``seconds`` (an SQL expression, e.g. a parameter or column)."""
    return _WINDOW_START.replace("%(w)s", seconds)


def first_query_sql(window_param: str = "%(count_window)s") -> str:
    """SQL (a CTE body): mark (serial, client) as having queried the label in this window; returns a row only the first time.

    Parameters ``%(serial)s``, ``%(client)s`` and ``window_param`` (seconds).
    """
    start = window_start_sql(window_param)
    return (f"INSERT INTO label_query_clients (serial, client, window_start) VALUES (%(serial)s, %(client)s, {start}) "
            "ON CONFLICT DO NOTHING RETURNING 1")
