"""Does the ledger's stored chain of a label still match what it published?

The verification view is built from Kafka, so editing or deleting an event row
in the ledger's PostgreSQL store changes nothing a consumer sees there — but
the ledger would then be answering from (and appending to) a history that is
no longer the signed one. A label is treated as tampered with when

- a stored row is missing (a gap in versions) or no longer decodes, or
- a stored event's hash differs from the hash of the published event at the
  same position (what the projector verified from Kafka), or
- the store holds fewer events than were published (rows deleted).

The API then answers ``suspicious`` with the reason, never ``genuine``.
(An edited row that still decodes and links shows up as a hash difference.)
"""

from __future__ import annotations

from eventsourcing.persistence import StoredEvent

from ledger.events import event_hash
from ledger.logging_setup import get_logger
from ledger.store import LedgerApplication, chain_id

log = get_logger("integrity")

_PUBLISHED_SQL = "SELECT seq, hash FROM {schema}.events WHERE subject_type = 'label' AND subject = %s ORDER BY seq"
_STORED_SQL = 'SELECT originator_version, topic, state FROM "{table}" WHERE originator_id = %s ORDER BY originator_version'


def compare(serial: str, stored: list[bytes], stored_problem: str | None, published: list[tuple[int, bytes]]) -> str | None:
    """What is wrong with the stored event hashes given the published (seq, hash) pairs; None if nothing. Pure.

    Equal hashes at every published position mean the stored chain *is* the
    published one, which the projector verified link by link; events stored
    but not yet projected are checked once they are.
    """
    for seq, h in published:
        if seq >= len(stored):
            if stored_problem:
                return f"the stored chain is broken: {stored_problem}"
            if not stored:
                return f"the ledger store has no events for {serial}, yet {len(published)} were published"
            return f"the ledger store holds {len(stored)} events but event {seq} was published: stored events were deleted"
        if stored[seq] != bytes(h):
            return f"stored event {seq} differs from the published, signed event {seq}"
    return None


async def stored_hashes(app: LedgerApplication, conn, serial: str) -> tuple[list[bytes], str | None]:
    """Hashes of the label's stored events in order, and what stopped the
    reading early (a missing version, a row that no longer decodes).

    Reads the store's rows on the caller's async connection and only maps and
    hashes them: no aggregate folding and no thread hop on the read path.
    """
    originator_id = chain_id("label", serial)
    cur = await conn.execute(_STORED_SQL.format(table=app.recorder.events_table_name), (originator_id,))
    hashes: list[bytes] = []
    rows = await cur.fetchall()
    if not rows or rows[0][0] != 1:  # issued in a batch (event.v3): its stored step hash is seq 0
        cur = await conn.execute("SELECT seq, head FROM public.label_heads WHERE serial = %s", (serial,))
        head = await cur.fetchone()
        if head and head[0] == 0:
            hashes.append(bytes(head[1]))
    for version, topic, state in rows:
        if version != len(hashes) + 1:
            return hashes, f"stored event {len(hashes)} is missing (found version {version}): stored events were deleted"
        try:
            event = app.mapper.to_domain_event(StoredEvent(originator_id, version, topic, bytes(state)))
            hashes.append(event_hash(event.body))
        except Exception as exc:  # an edited row that no longer maps is tampering too
            return hashes, f"stored event {len(hashes)} does not decode ({type(exc).__name__})"
    return hashes, None


async def stored_chain_problem(app: LedgerApplication, conn, serial: str, schema: str = "verification") -> str | None:
    """Check ``serial``'s stored chain against the published events (async connection)."""
    cur = await conn.execute(_PUBLISHED_SQL.format(schema=schema), (serial,))
    published = [(seq, bytes(h)) for seq, h in await cur.fetchall()]
    stored, problem = await stored_hashes(app, conn, serial)
    return compare(serial, stored, problem, published)


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
    out["reason_codes"] = list(out.get("reason_codes") or []) + [{"code": "integrity", "arg": None}]
    out["integrity"] = problem
    return out
