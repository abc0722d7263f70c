"""Lots in the read model: each lot chain's state and the lot graph (output lot <- input lots).

A ``Transformed`` event on an output lot names the input lots consumed to make
it; every such edge is a row of ``<schema>.lot_inputs``. Nothing is copied
onto labels when a lot is recalled: a label's view walks the graph upwards
from its own lot at read time (:func:`recalled_ancestors_sql`), so a recall of
a raw-material lot reaches every finished unit made from it, including units
issued after the recall, at the cost of one indexed recursive query per view.
The same graph walked downwards gives a recall's impact (:func:`impact`).
"""

from __future__ import annotations

import dataclasses

import psycopg

from ledger.events import Event
from ledger.lifecycle import MAX_NESTING, LotState

_COLUMNS = [f.name for f in dataclasses.fields(LotState)]
# Transformation chains are deeper than containment (cells -> module -> pack -> e-bike), but finite.
MAX_DEPTH = 4 * MAX_NESTING


def is_lot_key(key: str) -> bool:
    """Whether a record key can be a lot subject (``<GTIN-14>/<lot>``)."""
    return len(key) > 15 and key[14] == "/" and key[:14].isdigit()


def load(cur: psycopg.Cursor, s: str, keys: list[str]) -> dict[str, LotState]:
    """The stored state of each lot among ``keys`` (absent ones are left out)."""
    if not keys:
        return {}
    cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM {s}.lots WHERE gtin || '/' || lot = ANY(%s)", (keys,))
    out = {}
    for row in cur.fetchall():
        values = dict(zip(_COLUMNS, row))
        values.update(certificates=tuple(values["certificates"] or ()), inputs=tuple(values["inputs"] or ()), head=bytes(values["head"]))
        out[f"{values['gtin']}/{values['lot']}"] = LotState(**values)
    return out


def save(cur: psycopg.Cursor, s: str, states: list[LotState]) -> None:
    """Insert or update lot states (tuples stored as arrays)."""
    if not states:
        return
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS if c not in ("gtin", "lot"))
    cur.executemany(
        f"INSERT INTO {s}.lots ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))}) "
        f"ON CONFLICT (gtin, lot) DO UPDATE SET {updates}",
        [[list(v) if isinstance(v, tuple) else v for v in (getattr(st, c) for c in _COLUMNS)] for st in states],
    )


def edges(e: Event, log_index: int | None) -> list[tuple]:
    """The lot_inputs rows an applied event adds (only ``Transformed`` adds any)."""
    if e.kind != "Transformed":
        return []
    return [(e.subject, key, log_index) for key in e.payload["inputs"]]


def save_edges(cur: psycopg.Cursor, s: str, rows: list[tuple]) -> None:
    if rows:
        cur.executemany(f"INSERT INTO {s}.lot_inputs (output_lot, input_lot, log_index) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", rows)


def recalled_ancestors_sql(s: str) -> str:
    """Recalled lots a label's lot was made from, transitively (parameter: the label's lot key, twice)."""
    return (
        f"WITH RECURSIVE up(lot, depth) AS ("
        f" SELECT input_lot, 1 FROM {s}.lot_inputs WHERE output_lot = %s"
        f" UNION SELECT i.input_lot, up.depth + 1 FROM {s}.lot_inputs i JOIN up ON i.output_lot = up.lot WHERE up.depth < {MAX_DEPTH})"
        f" SELECT DISTINCT l.gtin || '/' || l.lot AS lot, l.reason, l.product FROM up JOIN {s}.lots l ON l.gtin || '/' || l.lot = up.lot"
        f" WHERE l.recalled AND up.lot <> %s ORDER BY 1"
    )


def _descendants_sql(s: str) -> str:
    return (
        f"WITH RECURSIVE down(lot, depth) AS ("
        f" SELECT %s::text, 0"
        f" UNION SELECT i.output_lot, down.depth + 1 FROM {s}.lot_inputs i JOIN down ON i.input_lot = down.lot WHERE down.depth < {MAX_DEPTH})"
        f" SELECT DISTINCT lot FROM down ORDER BY lot"
    )


def impact(conn: psycopg.Connection, s: str, lot_key: str) -> dict:
    """What recalling ``lot_key`` reaches: the lot itself and every lot made from it, and their units."""
    with conn.cursor() as cur:
        affected = [row[0] for row in cur.execute(_descendants_sql(s), (lot_key,)).fetchall()]
        per_lot = dict(
            cur.execute(
                # Joined on (gtin, lot) so the labels' lot index is used.
                f"SELECT k.key, count(l.serial) FROM unnest(%s::text[]) AS k(key) "
                f"JOIN {s}.labels l ON l.gtin = left(k.key, 14) AND l.lot = substr(k.key, 16) GROUP BY 1",
                (affected,),
            ).fetchall()
        )
        known = cur.execute(f"SELECT gtin || '/' || lot, recalled, product FROM {s}.lots WHERE gtin || '/' || lot = ANY(%s)", (affected,)).fetchall()
    info = {k: (recalled, product) for k, recalled, product in known}
    lots = [
        {"lot": k, "units": per_lot.get(k, 0), "recalled": info.get(k, (False, None))[0], "product": info.get(k, (False, None))[1]}
        for k in affected
    ]
    return {"lot": lot_key, "affected_lots": lots, "units": sum(x["units"] for x in lots)}
