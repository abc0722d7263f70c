"""Nonces of signed API requests, remembered until the request's signature window ends.

A signed request (:mod:`traceledger.auth`) carries a fresh random nonce under its
signature. The API records ``(actor, nonce)`` here once the signature verified;
a second request with the same pair is a replay and is refused. A row is needed
only while its header could still be accepted (until ``ts`` + the allowed age),
so expired rows are pruned, a bounded batch per request: the table holds about
one signature window of signed requests, shared by every API worker.
The table is ledger/migrations/0007_client_limits.sql.
"""

from __future__ import annotations

import psycopg

from ledger.client_limits import bounded_delete_sql

PRUNE_BATCH = 100

_REMEMBER = (
    "INSERT INTO request_nonces (actor, nonce, expires_at) VALUES (%s, %s, to_timestamp(%s)) "
    "ON CONFLICT (actor, nonce) DO NOTHING RETURNING 1"
)
_PRUNE = bounded_delete_sql("request_nonces", "expires_at < now()")


async def first_use(conn: psycopg.AsyncConnection, actor: str, nonce: str, expires_at: int) -> bool:
    """Record ``actor``'s ``nonce`` (kept until unix time ``expires_at``); False if it was already used."""
    row = await (await conn.execute(_REMEMBER, (actor, nonce, expires_at), prepare=True)).fetchone()
    await conn.execute(_PRUNE, (PRUNE_BATCH,), prepare=True)
    return row is not None
