"""Does the ledger's stored chain of a label still match what it published?

The verification view is built from Kafka, so editing or deleting an event row
in the ledger's PostgreSQL store changes nothing a consumer sees there — but
the ledger would then be answering from (and appending to) a history that is
no longer the signed one. A label is treated as tampered with when

- its stored chain does not fold (``Chain.broken``: a row that no longer
  decodes, or an event that does not link to its predecessor), or
- a stored event's hash differs from the hash of the published event at the
  same position (what the projector verified from Kafka), or
- the store holds fewer events than were published (rows deleted).

The API then answers ``suspicious`` with the reason, never ``genuine``.
"""

from __future__ import annotations

import asyncio

from ledger.store import LedgerApplication
from traceledger.logs import get_logger

log = get_logger("integrity")

_PUBLISHED_SQL = "SELECT seq, hash FROM {schema}.events WHERE subject_type = 'label' AND subject = %s ORDER BY seq"


def compare(serial: str, chain, published: list[tuple[int, bytes]]) -> str | None:
    """What is wrong with the stored ``chain`` given the published (seq, hash) pairs; None if nothing. Pure."""
    if chain is None:
        return f"the ledger store has no events for {serial}, yet {len(published)} were published" if published else None
    if chain.broken:
        return f"the stored chain is broken: {chain.broken}"
    for seq, h in published:
        if seq >= chain.length:
            return f"the ledger store holds {chain.length} events but event {seq} was published: stored events were deleted"
        if chain.hashes[seq] != bytes(h):
            return f"stored event {seq} differs from the published, signed event {seq}"
    return None


async def stored_chain_problem(app: LedgerApplication, conn, serial: str, schema: str = "verification") -> str | None:
    """Check ``serial``'s stored chain against the published events (async connection)."""
    cur = await conn.execute(_PUBLISHED_SQL.format(schema=schema), (serial,))
    published = [(seq, bytes(h)) for seq, h in await cur.fetchall()]
    try:
        chain = await asyncio.to_thread(app.load_chain, "label", serial)
    except Exception as exc:  # eventsourcing refuses a chain with a missing version (a deleted row)
        return f"the stored chain cannot be loaded ({type(exc).__name__}: {exc}): stored events were deleted or reordered"
    return compare(serial, chain, published)


async def guard_view(app: LedgerApplication, conn, serial: str, view: dict) -> dict:
    """Downgrade a view to ``suspicious`` when the stored chain does not match (see module doc)."""
    if view.get("verdict") == "unknown" and not view.get("product"):
        return view
    problem = await stored_chain_problem(app, conn, serial)
    if problem is None:
        return view
    log.error("stored_chain_mismatch", serial=serial, problem=problem)
    out = dict(view)
    if out["verdict"] == "genuine":
        out["verdict"] = "suspicious"
    out["reasons"] = list(out.get("reasons") or []) + [f"the ledger's record of this label has been altered: {problem}"]
    out["integrity"] = problem
    return out
