"""Whether the database answers (the API's ``/healthz``)."""

from __future__ import annotations

import psycopg


async def ping(conn: psycopg.AsyncConnection) -> None:
    """One round trip; raises psycopg's error when the database cannot answer."""
    await conn.execute("SELECT 1")
