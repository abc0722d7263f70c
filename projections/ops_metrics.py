"""Read-model figures for the operators' metrics (``GET /metrics``) and readiness (``/readyz``):
alerts by kind, quarantined records, and parked records (count and oldest age)."""

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


async def parked(conn: psycopg.AsyncConnection, schemas: tuple[str, ...] = ("verification", "alerts")) -> dict[str, tuple[int, float]]:
    """Each read model's parked records (``<schema>.pending``): how many, and the oldest one's age in seconds (0 when none).

    A record parks while it waits for its label's batch event (consumers/exactly_once.py);
    one whose batch never comes stays forever, so an old one is what an operator must see.
    Schemas without a pending table are left out.
    """
    out = {}
    for schema in schemas:
        try:
            n, age = await (await conn.execute(
                f"SELECT count(*), coalesce(extract(epoch FROM now() - min(parked_at)), 0) FROM {schema}.pending")).fetchone()
        except psycopg.errors.UndefinedTable:
            await conn.rollback()
            continue
        out[schema] = (int(n), float(age))
    return out
