"""Containers (cases, pallets: SSCC subjects) in the read model, and what travelled in them.

Each container chain's state is a row of ``<schema>.containers``. Each time a
label or container is packed into a container, its own chain's ``PackedInto``
event opens a row of ``<schema>.memberships`` (with the event's global log
index) and its ``UnpackedFrom`` closes it. Shipping, receiving or recalling a
pallet is one event on the pallet's chain: nothing is copied onto the units.
A unit's view finds, at read time, every container it was in (transitively:
unit -> case -> pallet, intersecting the periods by log index) and the
container events that happened while it was inside (:func:`containers_sql`,
:func:`steps_sql`). So a recalled pallet makes exactly the units that were on
it at the time answer recalled, a unit unpacked before the recall stays
genuine, and the answer does not depend on the order in which the
projector's partitions were read (log indexes are global).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

import psycopg

from ledger.events import Event
from ledger.gs1 import is_sscc
from ledger.lifecycle import MAX_NESTING, ContainerState

_COLUMNS = [f.name for f in dataclasses.fields(ContainerState)]
_OPEN = 2**63 - 1  # "still inside": the upper bound of an open membership
# Container events that a unit inside it shows in its own trail.
CUSTODY_KINDS = ("Shipped", "Received", "Recalled", "Decommissioned")


def container_keys(keys) -> list[str]:
    """The record keys that can be container subjects (18 digits)."""
    return [k for k in keys if is_sscc(k)]


def load(cur: psycopg.Cursor, s: str, keys: list[str]) -> dict[str, ContainerState]:
    """The stored state of each container among ``keys`` (absent ones are left out)."""
    if not keys:
        return {}
    cur.execute(f"SELECT {', '.join(_COLUMNS)} FROM {s}.containers WHERE sscc = ANY(%s)", (keys,))
    return {row[0]: ContainerState(*row[:-1], head=bytes(row[-1])) for row in cur.fetchall()}


def save(cur: psycopg.Cursor, s: str, states: list[ContainerState]) -> None:
    """Insert or update container states."""
    if not states:
        return
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS if c != "sscc")
    cur.executemany(
        f"INSERT INTO {s}.containers ({', '.join(_COLUMNS)}) VALUES ({', '.join(['%s'] * len(_COLUMNS))}) "
        f"ON CONFLICT (sscc) DO UPDATE SET {updates}",
        [[getattr(st, c) for c in _COLUMNS] for st in states],
    )


def membership_change(e: Event, log_index: int | None) -> tuple | None:
    """The memberships statement an applied event implies, as (kind, params); None for other kinds."""
    if e.kind == "PackedInto":
        return ("open", (e.subject_type, e.subject, e.payload["container"], e.seq, log_index, e.occurred_at))
    if e.kind == "UnpackedFrom":
        return ("close", (e.seq, log_index, e.occurred_at, e.subject_type, e.subject, e.payload["container"]))
    return None


def save_memberships(cur: psycopg.Cursor, s: str, changes: list[tuple]) -> None:
    """Apply membership changes in order (a pack and an unpack of one child may share a batch)."""
    for kind, params in changes:
        if kind == "open":
            cur.execute(
                f"INSERT INTO {s}.memberships (child_type, child, container, packed_seq, packed_index, packed_at) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                params,
            )
        else:
            cur.execute(
                f"UPDATE {s}.memberships SET unpacked_seq = %s, unpacked_index = %s, unpacked_at = %s "
                "WHERE child_type = %s AND child = %s AND container = %s AND unpacked_seq IS NULL",
                params,
            )


def _up_cte(s: str) -> str:
    # Every container a child was in, transitively, with the log-index period during
    # which the child was (indirectly) inside it: the intersection of the periods.
    return (
        f"WITH RECURSIVE up(container, lo, hi, depth, packed_at, unpacked_at) AS ("
        f" SELECT container, packed_index, COALESCE(unpacked_index, {_OPEN}), 1, packed_at, unpacked_at"
        f" FROM {s}.memberships WHERE child_type = %s AND child = %s"
        f" UNION ALL"
        f" SELECT m.container, GREATEST(m.packed_index, up.lo), LEAST(COALESCE(m.unpacked_index, {_OPEN}), up.hi), up.depth + 1,"
        f" GREATEST(m.packed_at, up.packed_at), CASE WHEN m.unpacked_at IS NULL THEN up.unpacked_at"
        f" WHEN up.unpacked_at IS NULL THEN m.unpacked_at ELSE LEAST(m.unpacked_at, up.unpacked_at) END"
        f" FROM {s}.memberships m JOIN up ON m.child_type = 'container' AND m.child = up.container"
        f" WHERE m.packed_index < up.hi AND COALESCE(m.unpacked_index, {_OPEN}) > up.lo AND up.depth < {MAX_NESTING})"
    )


def containers_sql(s: str) -> str:
    """Containers a child travelled in (parameters: child type, child)."""
    return (
        _up_cte(s)
        + f" SELECT up.container AS sscc, c.level, up.depth, up.lo, up.hi, up.packed_at, up.unpacked_at,"
        f" c.status, c.custodian, c.territory, c.channel FROM up JOIN {s}.containers c ON c.sscc = up.container"
        f" ORDER BY up.lo, up.depth"
    )


def steps_sql(s: str) -> str:
    """Custody events of those containers while the child was inside (parameters: child type, child)."""
    return (
        _up_cte(s)
        + f" SELECT e.subject AS container, e.seq, e.kind, e.actor, e.region, e.occurred_at, e.log_index"
        f" FROM up JOIN {s}.events e ON e.subject_type = 'container' AND e.subject = up.container"
        f" AND e.log_index > up.lo AND e.log_index < up.hi"
        f" WHERE e.kind IN ({', '.join(repr(k) for k in CUSTODY_KINDS)}) ORDER BY e.log_index"
    )


def travelled(containers: list[dict], steps: list[dict]) -> dict:
    """What a child's view adds from its containers. Pure.

    ``inside``: the containers it is in now, outermost last (the one whose
    custody and shipment count for it); ``recalled_by``: containers recalled
    while it was inside.
    """
    distinct = {(s["container"], s["seq"]): s for s in steps}.values()
    inside = sorted((c for c in containers if c["hi"] == _OPEN), key=lambda c: c["depth"])
    return {
        "containers": [
            {"sscc": c["sscc"], "level": c["level"], "packed_at": _iso(c["packed_at"]), "unpacked_at": _iso(c["unpacked_at"])}
            for c in containers
        ],
        "inside": inside,
        "steps": sorted(distinct, key=lambda s: s["log_index"]),
        "recalled_by": sorted({s["container"] for s in distinct if s["kind"] == "Recalled"}),
    }


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None
