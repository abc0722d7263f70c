"""``GET /healthz``: the API is up and its database answers."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from psycopg_pool import AsyncConnectionPool

from ledger.health import ping
from traceledger.api.dependencies import pool_of

router = APIRouter()


@router.get("/healthz")
async def healthz(pool: AsyncConnectionPool = Depends(pool_of)):
    async with pool.connection() as conn:
        await ping(conn)
    return {"ok": True}
