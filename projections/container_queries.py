"""Reads of the containers and lot graph read models that the API's aggregation routes need."""

from __future__ import annotations

import psycopg

from projections.verification import DEFAULT_SCHEMA


def children_inside(conn: psycopg.Connection, sscc: str, schema: str = DEFAULT_SCHEMA) -> list[str]:
    """What is packed in container ``sscc`` now, in packing order."""
    rows = conn.execute(
        f"SELECT child FROM {schema}.memberships WHERE container = %s AND unpacked_seq IS NULL ORDER BY packed_index, child", (sscc,),
    ).fetchall()
    return [row[0] for row in rows]


def lot_known(conn: psycopg.Connection, gtin: str, lot: str, schema: str = DEFAULT_SCHEMA) -> bool:
    """Whether the lot graph has this lot (it had a lot event)."""
    return conn.execute(f"SELECT 1 FROM {schema}.lots WHERE gtin = %s AND lot = %s", (gtin, lot)).fetchone() is not None
