"""Read-model figures for the operators' metrics (``GET /metrics``): alerts by kind, quarantined records."""

from __future__ import annotations

import psycopg


async def alerts_by_kind(conn: psycopg.AsyncConnection, schema: str = "alerts") -> dict[str, int]:
    """Number of alerts of each kind in ``schema`` ({} before the detector made its tables)."""
    try:
        cur = await conn.execute(f"SELECT kind, count(*) FROM {schema}.alerts GROUP BY kind")
    except psycopg.errors.UndefinedTable:
        await conn.rollback()
        return {}
    return {kind: n for kind, n in await cur.fetchall()}


async def quarantined(conn: psycopg.AsyncConnection, schemas: tuple[str, ...] = ("verification", "alerts")) -> dict[str, int]:
    """Records in each read model's quarantine (schemas without one are left out)."""
    out = {}
    for schema in schemas:
        try:
            out[schema] = (await (await conn.execute(f"SELECT count(*) FROM {schema}.quarantine")).fetchone())[0]
        except psycopg.errors.UndefinedTable:
            await conn.rollback()
    return out
