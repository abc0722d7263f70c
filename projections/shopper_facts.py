"""What the projector records for a shopper's page beyond the verification view.

:func:`apply` is called by :class:`projections.verification.VerificationProjector` for
every label, lot, container or alert record it applied (checked, new, in the consumer's
transaction), and writes the few kinds a page needs in more detail than the label and
lot rows keep: a recall's signed details (hazard, remedy, hotline, notice; a label's own
recall and a lot's), the certificates and production date an ``Issued`` or
``LotCommissioned`` names (event.v4), and a lot's quality commitment. Every other kind
costs one set lookup. Certificates and products have chains of their own:
:mod:`projections.certificates`. The tables are
ledger/migrations/verification/0004_shopper_facts.sql; reads are :mod:`projections.shopper_details`.
:func:`apply_batch` does the same for a batch event's labels (``BatchIssued``'s certificates
and production date, ``BatchRecalled``'s reason), so a batch-issued label's page shows what a
single-issued one's does (issue 17).
"""

from __future__ import annotations

import psycopg

from ledger.events import Event

KINDS = frozenset({"Recalled", "Issued", "LotCommissioned", "QualityCommitted"})
RECALL_FIELDS = ("hazard_zh", "hazard_en", "remedy", "remedy_text_zh", "remedy_text_en", "hotline", "notice_url", "recall_id")


def apply(cur: psycopg.Cursor, schema: str, e: Event) -> None:
    """Record what ``e`` (an applied, new event) tells a shopper's page; most kinds: nothing."""
    if e.kind not in KINDS:
        return
    p = e.payload
    if e.kind == "Recalled" and e.subject_type in ("label", "lot"):
        # A subject is recalled once (a second recall is refused by the rules): the first stays.
        cur.execute(
            f"INSERT INTO {schema}.recalls (subject_type, subject, reason, {', '.join(RECALL_FIELDS)}, recalled_at, region) "
            f"VALUES (%s, %s, %s, {', '.join(['%s'] * len(RECALL_FIELDS))}, %s, %s) ON CONFLICT DO NOTHING",
            (e.subject_type, e.subject, p.get("reason") or "", *(p.get(f) for f in RECALL_FIELDS), e.occurred_at, p.get("region")),
        )
    elif e.kind in ("Issued", "LotCommissioned") and (p.get("certificates") or p.get("production_date")):
        cur.execute(
            f"INSERT INTO {schema}.subject_facts (subject_type, subject, certificates, production_date) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (subject_type, subject) DO UPDATE SET certificates = EXCLUDED.certificates, production_date = EXCLUDED.production_date",
            (e.subject_type, e.subject, list(p.get("certificates") or ()), p.get("production_date")),
        )
    elif e.kind == "QualityCommitted":
        save_commitment(cur, schema, e)


def apply_batch(cur: psycopg.Cursor, schema: str, e: Event, serials: list[str]) -> None:
    """Record what batch event ``e`` (applied, new) tells the pages of its labels ``serials``.

    One statement per batch (arrays unnested in PostgreSQL), not one per label: a batch holds
    up to thousands of labels and this runs in the projector's transaction.
    """
    p = e.payload
    if e.kind == "BatchIssued" and (p.get("certificates") or p.get("production_date")):
        cur.execute(
            f"INSERT INTO {schema}.subject_facts (subject_type, subject, certificates, production_date) "
            "SELECT 'label', s, %s, %s FROM unnest(%s::text[]) s ON CONFLICT (subject_type, subject) DO UPDATE "
            "SET certificates = EXCLUDED.certificates, production_date = EXCLUDED.production_date",
            (list(p.get("certificates") or ()), p.get("production_date"), serials),
        )
    elif e.kind == "BatchRecalled":
        # A batch recall signs only its reason (event.v4 has no hazard/remedy on it): the rest stays empty,
        # as for a single Recalled without them. A label is recalled once: the first stays.
        cur.execute(
            f"INSERT INTO {schema}.recalls (subject_type, subject, reason, recalled_at, region) "
            "SELECT 'label', s, %s, %s, %s FROM unnest(%s::text[]) s ON CONFLICT DO NOTHING",
            (p.get("reason") or "", e.occurred_at, p.get("region"), serials),
        )


def save_commitment(cur: psycopg.Cursor, schema: str, e: Event) -> None:
    """A ``QualityCommitted`` (on a lot or a product): it replaces the subject's earlier one."""
    p = e.payload
    cur.execute(
        f"INSERT INTO {schema}.quality_commitments (subject_type, subject, text_zh, text_en, standard, valid_until, committed_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (subject_type, subject) DO UPDATE SET text_zh = EXCLUDED.text_zh, "
        "text_en = EXCLUDED.text_en, standard = EXCLUDED.standard, valid_until = EXCLUDED.valid_until, committed_at = EXCLUDED.committed_at",
        (e.subject_type, e.subject, p.get("text_zh") or "", p.get("text_en"), p.get("standard"), p.get("valid_until"), e.occurred_at),
    )
