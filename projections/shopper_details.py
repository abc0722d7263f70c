"""The trust details a shopper's page shows beyond the verification view, from the read model.

:func:`lot_details` — a label's lot as the ledger knows it: the recall's hazard
(the signed ``Recalled`` reason), when and where the lot was recalled (the
recall step of the page's trail), the certificates its producer recorded when
commissioning the lot, and when the lot was commissioned (its production date).
:func:`label_recall` — the hazard of a label recalled by its own ``Recalled`` event
(:mod:`projections.shopper_facts` keeps its signed reason).
Names in Chinese and English, certificate status, hotlines and images need
fields the ledger does not carry yet (docs/design/event-v3-requests.md).
"""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

from ledger import gs1
from projections.verification import DEFAULT_SCHEMA


def _sql(schema: str) -> str:
    return (
        f"SELECT l.recalled, l.reason, l.certificates, "
        f"(SELECT occurred_at FROM {schema}.events e WHERE e.subject_type = 'lot' AND e.subject = %(key)s AND e.kind = 'Recalled' "
        f" ORDER BY seq LIMIT 1) AS recalled_at, "
        f"(SELECT region FROM {schema}.events e WHERE e.subject_type = 'lot' AND e.subject = %(key)s AND e.kind = 'Recalled' "
        f" ORDER BY seq LIMIT 1) AS recalled_region, "
        f"(SELECT occurred_at FROM {schema}.events e WHERE e.subject_type = 'lot' AND e.subject = %(key)s "
        f" AND e.kind = 'LotCommissioned' ORDER BY seq LIMIT 1) AS produced_at "
        f"FROM {schema}.lots l WHERE l.gtin = %(gtin)s AND l.lot = %(lot)s"
    )


async def lot_details(conn: psycopg.AsyncConnection, gtin: str | None, lot: str | None, schema: str = DEFAULT_SCHEMA) -> dict:
    """``{"recalled", "hazard", "recalled_at", "recalled_region", "certificates", "produced_at"}`` of a lot; {} if unknown."""
    if not gtin or not lot:
        return {}
    async with conn.cursor(row_factory=dict_row) as cur:
        row = await (await cur.execute(_sql(schema), {"key": gs1.lot_key(gtin, lot), "gtin": gtin, "lot": lot}, prepare=True)).fetchone()
    if row is None:
        return {}
    return {
        "recalled": row["recalled"],
        "hazard": row["reason"] if row["recalled"] else None,
        "recalled_at": row["recalled_at"].isoformat() if row["recalled_at"] else None,
        "recalled_region": row["recalled_region"],
        "certificates": list(row["certificates"] or ()),
        "produced_at": row["produced_at"].isoformat() if row["produced_at"] else None,
    }


async def label_recall(conn: psycopg.AsyncConnection, serial: str, schema: str = DEFAULT_SCHEMA) -> dict:
    """``{"recalled", "hazard", "recalled_at", "recalled_region"}`` of a label's own recall; {} if it has none."""
    async with conn.cursor(row_factory=dict_row) as cur:
        sql = f"SELECT reason, recalled_at, region FROM {schema}.label_recalls WHERE serial = %s"
        row = await (await cur.execute(sql, (serial,), prepare=True)).fetchone()
    if row is None:
        return {}
    return {"recalled": True, "hazard": row["reason"] or None, "recalled_at": row["recalled_at"].isoformat(), "recalled_region": row["region"]}
