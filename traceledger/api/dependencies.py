"""What routes take from the running app (FastAPI dependencies over ``app.state``).

The app's lifespan (:mod:`traceledger.api.app`) fills ``app.state``:
``settings``, ``ledger`` (the write model), ``pool`` (the async pool every
read uses) and ``channel_secret`` (the shopper channels' keyed-hash secret).
They are ``async`` so FastAPI calls them on the event loop, not in a thread.
"""

from __future__ import annotations

import threading

from psycopg_pool import AsyncConnectionPool, ConnectionPool
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ledger import request_nonces
from ledger.errors import Refused
from ledger.service import Ledger
from traceledger.auth import Caller, parse_header, verify_request


async def ledger_of(request: Request) -> Ledger:
    return request.app.state.ledger


async def pool_of(request: Request) -> AsyncConnectionPool:
    return request.app.state.pool


_opening = threading.Lock()  # sync routes run in a thread pool: open the sync pool once


def sync_pool(state) -> ConnectionPool:
    """A small blocking pool for the sync routes (Merkle log), opened on first use; closed by the lifespan."""
    with _opening:
        if getattr(state, "sync_pool", None) is None:
            pool = ConnectionPool(state.settings.pg_conninfo, min_size=1, max_size=8, kwargs={"autocommit": True}, open=False)
            pool.open()
            state.sync_pool = pool
    return state.sync_pool


async def caller(request: Request) -> Caller | None:
    """Who signed the request (:mod:`traceledger.auth`), or None when unsigned.

    Checked against the write model's actors on every request, so a revoked or
    rotated key stops working with the very next one. A present but bad
    signature is refused (401), never treated as anonymous; so is a header
    whose nonce was already used (``replayed_request``): only once its
    signature verified, so nobody can spend another actor's nonces.
    """
    header = request.headers.get("authorization")
    if not header:
        return None
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    state = request.app.state
    who = await run_in_threadpool(verify_request, header, request.method, target, state.ledger.actor)
    signed = parse_header(header)
    async with state.pool.connection() as conn:
        if not await request_nonces.first_use(conn, who.actor_id, signed.nonce, signed.expires_at):
            raise Refused("replayed_request", "this signed request was already received (its nonce is used): sign each request anew",
                          field="authorization")
    return who
