"""The trust details a shopper's page shows beyond the verification view, from the read model.

:func:`page_details` gathers, for one label, what its chains signed besides the verdict:

- the recall that reaches it (its own ``Recalled``, else its lot's): the hazard (the
  signed reason, and event.v4's ``hazard_zh``/``hazard_en``), remedy, hotline, the
  regulator's notice and recall number, when and where (the recall step of the trail);
- its certificates (linked by its ``Issued``, its lot's ``LotCommissioned``) with their
  status *now* (:mod:`projections.certificates`); ids no certification body signed (the
  free strings of older lots) come back with status ``None``;
- its production date (signed on ``Issued`` or ``LotCommissioned``; else the lot's
  commissioning day, ``produced_at``), the product's description (names in Chinese and
  English, brand, image by hash, authorised sellers) and the quality commitment (the lot's,
  else the product's).

Written by :mod:`projections.shopper_facts` and :mod:`projections.certificates`.
"""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

from ledger import gs1
from projections.certificates import certificates_of
from projections.shopper_facts import RECALL_FIELDS
from projections.verification import DEFAULT_SCHEMA

_RECALL_COLUMNS = ", ".join(f"r.{f}" for f in RECALL_FIELDS)


def _lot_sql(schema: str) -> str:
    return (
        f"SELECT l.recalled, l.reason, l.certificates, r.recalled_at, r.region AS recalled_region, {_RECALL_COLUMNS}, "
        f"f.certificates AS signed_certificates, f.production_date, "
        f"q.text_zh AS q_text_zh, q.text_en AS q_text_en, q.standard AS q_standard, q.valid_until AS q_valid_until, q.committed_at AS q_at, "
        f"(SELECT occurred_at FROM {schema}.events e WHERE e.subject_type = 'lot' AND e.subject = %(key)s "
        f" AND e.kind = 'LotCommissioned' ORDER BY seq LIMIT 1) AS produced_at "
        f"FROM {schema}.lots l "
        f"LEFT JOIN {schema}.recalls r ON r.subject_type = 'lot' AND r.subject = %(key)s "
        f"LEFT JOIN {schema}.subject_facts f ON f.subject_type = 'lot' AND f.subject = %(key)s "
        f"LEFT JOIN {schema}.quality_commitments q ON q.subject_type = 'lot' AND q.subject = %(key)s "
        f"WHERE l.gtin = %(gtin)s AND l.lot = %(lot)s"
    )


def _label_sql(schema: str) -> str:
    return (
        f"SELECT r.reason, r.recalled_at, r.region AS recalled_region, {_RECALL_COLUMNS}, f.certificates, f.production_date, "
        f"p.name_zh, p.name_en, p.brand_zh, p.brand_en, p.image_sha256, p.image_url, p.sellers, "
        f"q.text_zh AS q_text_zh, q.text_en AS q_text_en, q.standard AS q_standard, q.valid_until AS q_valid_until, q.committed_at AS q_at "
        f"FROM (SELECT 1) one "
        f"LEFT JOIN {schema}.recalls r ON r.subject_type = 'label' AND r.subject = %(serial)s "
        f"LEFT JOIN {schema}.subject_facts f ON f.subject_type = 'label' AND f.subject = %(serial)s "
        f"LEFT JOIN {schema}.products p ON p.gtin = %(gtin)s "
        f"LEFT JOIN {schema}.quality_commitments q ON q.subject_type = 'product' AND q.subject = %(gtin)s"
    )


def _recall(row: dict) -> dict:
    out = {"recalled": True, "hazard": row.get("reason") or None,
           "recalled_at": row["recalled_at"].isoformat() if row.get("recalled_at") else None,
           "recalled_region": row.get("recalled_region")}
    return out | {f: row.get(f) for f in RECALL_FIELDS}


def _quality(row: dict) -> dict | None:
    if not row.get("q_text_zh"):
        return None
    return {"text_zh": row["q_text_zh"], "text_en": row["q_text_en"], "standard": row["q_standard"], "valid_until": row["q_valid_until"],
            "committed_at": row["q_at"].isoformat()}


async def page_details(conn: psycopg.AsyncConnection, serial: str, gtin: str | None, lot: str | None, schema: str = DEFAULT_SCHEMA) -> dict:
    """Everything of the module doc for one label (``{}`` parts left out when its chains say nothing)."""
    if not gtin:
        return {}
    out: dict = {}
    async with conn.cursor(row_factory=dict_row) as cur:
        lot_row = None
        if lot:
            params = {"key": gs1.lot_key(gtin, lot), "gtin": gtin, "lot": lot}
            lot_row = await (await cur.execute(_lot_sql(schema), params, prepare=True)).fetchone()
        label = await (await cur.execute(_label_sql(schema), {"serial": serial, "gtin": gtin}, prepare=True)).fetchone()
    ids: list[str] = []
    if lot_row:
        if lot_row["recalled"]:
            out |= _recall(lot_row)
        ids += list(lot_row["signed_certificates"] or ()) + list(lot_row["certificates"] or ())
        out["produced_at"] = lot_row["produced_at"].isoformat() if lot_row["produced_at"] else None
        out["production_date"] = lot_row["production_date"]
        out["quality"] = _quality(lot_row)
    if label["recalled_at"]:  # the label's own recall names its hazard: it wins over the lot's
        out |= _recall(label)
    ids = list(label["certificates"] or ()) + ids
    out["production_date"] = label["production_date"] or out.get("production_date")
    out["quality"] = out.get("quality") or _quality(label)
    if label["name_zh"] or label["sellers"]:
        out["product"] = {k: label[k] for k in ("name_zh", "name_en", "brand_zh", "brand_en", "image_sha256", "image_url")}
        out["product"]["sellers"] = list(label["sellers"] or ())
    ids = list(dict.fromkeys(ids))  # each once, in order
    known = await certificates_of(conn, ids, schema)
    out["certificates"] = [known.get(i) or {"cert_id": i, "status": None} for i in ids]
    return out
