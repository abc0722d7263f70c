"""What the projector records for a shopper's page beyond the verification view.

:func:`apply` is called by :class:`projections.verification.VerificationProjector` for
every record it applied (checked, new, in the consumer's transaction), and writes the
few kinds a page needs in more detail than the label row keeps: a label's own recall
reason (the hazard; the lot's is on its lot row). Every other kind costs one set lookup.
The tables are ledger/migrations/verification/0004_shopper_facts.sql; reads are
:mod:`projections.shopper_details`.
"""

from __future__ import annotations

import psycopg

from ledger.events import Event

KINDS = frozenset({"Recalled"})


def apply(cur: psycopg.Cursor, schema: str, e: Event) -> None:
    """Record what ``e`` (an applied, new event) tells a shopper's page; most kinds: nothing."""
    if e.kind not in KINDS:
        return
    if e.kind == "Recalled" and e.subject_type == "label":
        # The first recall's reason stays (a label is recalled once; a later one would be refused).
        cur.execute(
            f"INSERT INTO {schema}.label_recalls (serial, reason, recalled_at, region, seq) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (serial) DO NOTHING",
            (e.subject, e.payload.get("reason") or "", e.occurred_at, e.payload.get("region"), e.seq),
        )
