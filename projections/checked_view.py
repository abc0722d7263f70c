"""A label's verification view from the read model, in one round trip.

The hot read of the consumer API (``GET /v1/labels/{serial}``, scans, the
Digital Link resolver). One prepared statement returns the label's read-model
row, its trail, its integrity flag and, when asked, the scans accepted but not
projected yet.

The stored chain is not re-hashed here: the projector verified every projected
event's signature and chain link, and the integrity sweep
(:mod:`projections.integrity_sweep`) re-hashes every label's stored chain in the
ledger's event store against the published hashes in the background and flags
a label whose chain no longer matches. A flagged label goes through the precise
check (:func:`projections.integrity.guard_view`) on every read, so it answers
``suspicious`` with the reason, never ``genuine``; an edit of the store is thus
seen by reads within one sweep (``docs/design/read-path.md`` states the guarantee).

Views that need more than the label's own chain (it was packed into
containers, or its lot was made from other lots) run the extra queries of
:func:`projections.verification.extra_sql` afterwards: rare, and the same
code as :func:`projections.verification.read_view_async`.
"""

from __future__ import annotations

from functools import lru_cache

import psycopg
from psycopg.rows import dict_row

from ledger.store import LedgerApplication
from projections.integrity import guard_view
from projections.verification import DEFAULT_SCHEMA, build_view, extra_sql, repeat_scans_sql, unprojected_sql

_TRAIL_COLUMNS = ("seq", "kind", "actor", "region", "occurred_at", "log_index")


@lru_cache(maxsize=16)
def _sql(schema: str, with_inbox: bool, many: bool = False) -> str:
    """The one statement (parameter: the serial; with ``many``, an array of serials)."""
    trail = ", ".join(f"array_agg(e.{c} ORDER BY e.seq) AS trail_{c}" for c in _TRAIL_COLUMNS)
    inbox = ""
    if with_inbox:
        inbox = (
            f", ({unprojected_sql(schema).replace('%s', 'l.serial')}) AS unprojected,"
            " (SELECT min(occurred_at) FROM scan_inbox WHERE serial = l.serial AND kind = 'scan') AS inbox_first_scan"
        )
    repeats = f", ({repeat_scans_sql(schema).replace('%s', 'l.serial')}) AS repeat_scans"
    return (
        f"SELECT l.*, COALESCE(lots.recalled, false) AS lot_recalled, COALESCE(cardinality(lots.inputs), 0) > 0 AS lot_transformed,"
        f" t.*{repeats}, EXISTS (SELECT 1 FROM {schema}.label_integrity f WHERE f.serial = l.serial) AS flagged"
        f"{inbox}"
        f" FROM {schema}.labels l LEFT JOIN {schema}.lots lots ON lots.gtin = l.gtin AND lots.lot = l.lot"
        f" CROSS JOIN LATERAL (SELECT {trail}"
        f"  FROM {schema}.events e WHERE e.subject_type = 'label' AND e.subject = l.serial) t"
        f" WHERE l.serial = {'ANY(%s)' if many else '%s'}"
    )


async def checked_view(app: LedgerApplication, conn: psycopg.AsyncConnection, serial: str, *, with_inbox: bool = False,
                       schema: str = DEFAULT_SCHEMA) -> dict:
    """``serial``'s verification view; a label flagged by the integrity sweep is checked precisely and answered
    ``suspicious`` with the reason (:func:`projections.integrity.guard_view`).

    Once the sweep has passed over the label, the same answer as ``guard_view(app, conn, serial,
    read_view_async(conn, serial))``, except that ``scan_count`` is the public count: a client's repeat
    queries within a window are left out (:func:`projections.verification.repeat_scans_sql`).
    With ``with_inbox``, the view also carries ``unprojected`` (scans in the inbox
    not yet in the read model) and ``inbox_first_scan`` (the inbox's earliest scan)
    when the label is known.
    """
    async with conn.cursor(row_factory=dict_row) as cur:
        row = await (await cur.execute(_sql(schema, with_inbox), (serial,), prepare=True, binary=True)).fetchone()
    return await _view(app, conn, serial, row, with_inbox, schema)


async def checked_views(app: LedgerApplication, conn: psycopg.AsyncConnection, serials: list[str], *, with_inbox: bool = False,
                        schema: str = DEFAULT_SCHEMA) -> dict[str, dict]:
    """:func:`checked_view` of each of ``serials``, all read by ONE statement.

    For answering concurrent lookups together: one round trip for many requests."""
    async with conn.cursor(row_factory=dict_row) as cur:
        rows = await (await cur.execute(_sql(schema, with_inbox, True), (list(serials),), prepare=True, binary=True)).fetchall()
    found = {row["serial"]: row for row in rows}
    return {serial: await _view(app, conn, serial, found.get(serial), with_inbox, schema) for serial in dict.fromkeys(serials)}


async def _view(app: LedgerApplication, conn: psycopg.AsyncConnection, serial: str, row: dict | None, with_inbox: bool,
                schema: str) -> dict:
    """The view from the statement's row (None: an unknown serial); extras and the precise check as needed."""
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
    if not row["flagged"]:
        return out
    return await guard_view(app, conn, serial, out)
