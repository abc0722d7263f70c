"""Single-column reads of the verification read model's ``labels`` table that the API needs."""

from __future__ import annotations

import psycopg

from projections.verification import DEFAULT_SCHEMA


async def pin_hash(conn: psycopg.AsyncConnection, serial: str, schema: str = DEFAULT_SCHEMA) -> str | None:
    """The stored hash of a label's scratch-off PIN (None without a PIN)."""
    row = await (await conn.execute(f"SELECT pin_hash FROM {schema}.labels WHERE serial = %s", (serial,))).fetchone()
    return row[0] if row else None
