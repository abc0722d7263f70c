"""A label's verification view, checked against the ledger's store, in one round trip.

The hot read of the consumer API (``GET /v1/labels/{serial}``, scans, the
Digital Link resolver). One prepared statement returns the label's read-model
row, its trail and, when asked, the scans accepted but not projected yet, and
decides in PostgreSQL whether the ledger's stored chain still matches what
was published (:mod:`projections.integrity`): at every published position ``seq``
the stored row of version ``seq + 1`` must exist, carry the chain event topic
and a body whose SHA-256 is the published hash (the event hash is SHA-256 of
the signed body; :func:`ledger.store.chain_topic_sql` and :func:`ledger.store.signed_body_sql`
say where the store keeps topic and body, so only ``ledger.store`` knows its format).

That answer is only trusted when it says "matches". Anything else — a
mismatch, or a row PostgreSQL cannot parse (an edited row: invalid UTF-8,
JSON or base64 raises) — falls back to the precise Python check
(:func:`projections.integrity.guard_view`), so the reasons given are exactly the
ones it gives. The fast check is stricter than the Python one, never looser:
"matches" here means every published hash equals the stored one at a dense
run of versions starting at 1.

Views that need more than the label's own chain (it was packed into
containers, or its lot was made from other lots) run the extra queries of
:func:`projections.verification.extra_sql` afterwards: rare, and the same
code as :func:`projections.verification.read_view_async`.
"""

from __future__ import annotations

from functools import lru_cache

import psycopg
from psycopg.rows import dict_row

from ledger.logging_setup import get_logger
from ledger.store import LedgerApplication, chain_id, chain_topic_sql, signed_body_sql
from projections.integrity import guard_view
from projections.verification import (
    DEFAULT_SCHEMA,
    build_view,
    extra_sql,
    read_view_async,
    repeat_scans,
    repeat_scans_sql,
    unprojected_scans,
    unprojected_sql,
)

log = get_logger("checked_view")

_TRAIL_COLUMNS = ("seq", "kind", "actor", "region", "occurred_at", "log_index")


@lru_cache(maxsize=16)
def _sql(schema: str, events_table: str, with_inbox: bool) -> str:
    """The one statement (parameters: the chain's uuid twice, the serial)."""
    trail = ", ".join(f"array_agg(e.{c} ORDER BY e.seq) AS trail_{c}" for c in _TRAIL_COLUMNS)
    # Per published event: the stored row at version seq + 1 exists, is a chain event,
    # and its body hashes to the published hash. Parsing errors raise (the caller falls back).
    # A label's step in a batch event (event.v3) is stored as its head in public.label_heads
    # (written with the batch event, in one transaction): the published step hash must be it.
    stored_ok = (
        f"coalesce(bool_and(coalesce((s.topic = {chain_topic_sql('e.seq')}"
        " AND sha256(st.body) = e.hash) OR (h.seq = e.seq AND h.head = e.hash), false)), true)"
    )
    inbox = ""
    if with_inbox:
        inbox = (
            f", ({unprojected_sql(schema).replace('%s', 'l.serial')}) AS unprojected,"
            " (SELECT min(occurred_at) FROM scan_inbox WHERE serial = l.serial AND kind = 'scan') AS inbox_first_scan"
        )
    repeats = f", ({repeat_scans_sql(schema).replace('%s', 'l.serial')}) AS repeat_scans"
    return (
        f"SELECT l.*, COALESCE(lots.recalled, false) AS lot_recalled, COALESCE(cardinality(lots.inputs), 0) > 0 AS lot_transformed,"
        f" t.*{repeats}, NOT EXISTS (SELECT 1 FROM \"{events_table}\" WHERE originator_id = %s AND originator_version < 1) AND t.stored_ok AS chain_ok"
        f"{inbox}"
        f" FROM {schema}.labels l LEFT JOIN {schema}.lots lots ON lots.gtin = l.gtin AND lots.lot = l.lot"
        f" CROSS JOIN LATERAL (SELECT {trail}, {stored_ok} AS stored_ok"
        f"  FROM {schema}.events e LEFT JOIN \"{events_table}\" s ON s.originator_id = %s AND s.originator_version = e.seq + 1"
        f"  LEFT JOIN LATERAL (SELECT {signed_body_sql('s.state')} AS body) st ON true"
        f"  LEFT JOIN public.label_heads h ON h.serial = e.subject"
        f"  WHERE e.subject_type = 'label' AND e.subject = l.serial) t"
        f" WHERE l.serial = %s"
    )


async def checked_view(app: LedgerApplication, conn: psycopg.AsyncConnection, serial: str, *, with_inbox: bool = False,
                       schema: str = DEFAULT_SCHEMA) -> dict:
    """``serial``'s verification view, downgraded to ``suspicious`` when the stored chain was altered.

    Same answer as ``guard_view(app, conn, serial, read_view_async(conn, serial))``, except that
    ``scan_count`` is the public count: a client's repeat queries within a window are left out
    (:func:`projections.verification.repeat_scans_sql`).
    ``conn``: autocommit and not inside a transaction (a failed statement falls back on it).
    With ``with_inbox``, the view also carries ``unprojected`` (scans in the inbox
    not yet in the read model) and ``inbox_first_scan`` (the inbox's earliest scan)
    when the label is known.
    """
    events_table = app.recorder.events_table_name
    chain = chain_id("label", serial)
    try:
        async with conn.cursor(row_factory=dict_row) as cur:
            row = await (await cur.execute(_sql(schema, events_table, with_inbox), (chain, chain, serial), prepare=True, binary=True)).fetchone()
    except psycopg.DataError as exc:
        # A stored row PostgreSQL cannot parse: the ledger's store was edited. Let the
        # precise check say how (on a fresh statement: autocommit, nothing to roll back).
        log.warning("stored_row_unparsable", serial=serial, error=type(exc).__name__)
        return await _slow_view(app, conn, serial, with_inbox, schema)
    if row is None:
        return build_view(serial, None, [])
    trail = [dict(zip(_TRAIL_COLUMNS, values)) for values in zip(*(row[f"trail_{c}"] or () for c in _TRAIL_COLUMNS))]
    extras = {}
    for name, (sql, sql_params) in extra_sql(schema, serial, row, trail).items():
        async with conn.cursor(row_factory=dict_row) as cur:
            extras[name] = await (await cur.execute(sql, sql_params, prepare=True)).fetchall()
    out = build_view(serial, row, trail, extras)
    out["scan_count"] -= row["repeat_scans"]  # the public count: once per client and window
    if with_inbox:
        out["unprojected"], out["inbox_first_scan"] = row["unprojected"], row["inbox_first_scan"]
    if row["chain_ok"]:
        return out
    return await guard_view(app, conn, serial, out)


async def _slow_view(app: LedgerApplication, conn, serial: str, with_inbox: bool, schema: str) -> dict:
    out = await guard_view(app, conn, serial, await read_view_async(conn, serial, schema))
    if out.get("product"):
        out["scan_count"] -= await repeat_scans(conn, serial, schema)
    if with_inbox and out.get("product"):
        out["unprojected"] = await unprojected_scans(conn, serial, schema)
        first = await (await conn.execute("SELECT min(occurred_at) FROM scan_inbox WHERE serial = %s AND kind = 'scan'", (serial,))).fetchone()
        out["inbox_first_scan"] = first[0]
    return out
