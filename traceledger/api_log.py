"""HTTP API of the global Merkle log: checkpoints, entries, proofs, label bundles.

Mounted by ``traceledger.api`` (``app.include_router(log_router(settings))``).
Every proof is computed from O(log n) stored nodes in one query (``ledger.transparency.tree``).
Bad parameters are :class:`ledger.errors.Refused` -> 400 problem+json.

A label's proof bundle (``GET /v1/labels/{serial}/proof``) is self-contained
evidence: the latest signed checkpoint, every event of the label and of its
lot, and every actor event up to the checkpoint (so the signers' keys and
authority can be re-derived offline), each with its inclusion proof.
``traceledger audit verify-bundle FILE`` checks it without any server.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import psycopg
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from psycopg_pool import ConnectionPool

from consumers.checkpointer import latest_checkpoint
from ledger import gs1
from ledger.transparency import merkle, proofs, tree
from ledger.transparency.checkpoints import verifier_key
from ledger.errors import Refused
from ledger.events import SignedEvent
from ledger.config import Settings
from ledger.logging_setup import get_logger

log = get_logger("api_log")

MAX_ENTRIES = 1000
BUNDLE_FORMAT = "traceledger-proof-bundle/v1"


def _problem(status: int, detail: str, code: str) -> JSONResponse:
    return JSONResponse(
        {"type": f"https://traceledger.example/problems/{code}", "title": "not found", "status": status, "detail": detail, "code": code},
        status_code=status, media_type="application/problem+json",
    )


def _entry_row(row, leaf: bytes | None) -> dict:
    index, subject_type, subject, seq, event_id, value = row
    value = bytes(value)
    return {
        "index": index,
        "subject_type": subject_type,
        "subject": subject,
        "serial": subject if subject_type == "label" else None,
        "seq": seq,
        "event_id": event_id,
        "value": base64.b64encode(value).decode(),
        "leaf_hash": (leaf or merkle.leaf_hash(value)).hex(),
    }


def log_public_key(settings: Settings) -> bytes | None:
    """The log's public key from ``<log key>.pub`` (None if not readable here)."""
    try:
        data = json.loads(Path(str(settings.log_key_path) + ".pub").read_text())
        return bytes.fromhex(data["public_key"])
    except (OSError, ValueError, KeyError):
        return None


def log_router(settings: Settings) -> APIRouter:
    """The router of the log endpoints, on its own small connection pool (opened on first use)."""
    router = APIRouter(tags=["log"])
    holder: dict = {}

    def pool() -> ConnectionPool:
        if "pool" not in holder:
            p = ConnectionPool(settings.pg_conninfo, min_size=1, max_size=8, kwargs={"autocommit": True}, open=False)
            p.open()
            holder["pool"] = p
        return holder["pool"]

    def sizes(conn) -> int:
        return tree.stored_size(conn)

    @router.get("/v1/log/checkpoint")
    def get_checkpoint():
        """The latest signed checkpoint: size, root (hex), timestamp (unix ms), note, key_id."""
        with pool().connection() as conn:
            cp = latest_checkpoint(conn)
        if cp is None:
            return _problem(404, "the log has not published a checkpoint yet", "no_checkpoint")
        return cp.as_dict()

    @router.get("/v1/log/entries")
    def get_entries(start: int = Query(..., ge=0), end: int = Query(..., ge=1)):
        """Leaves ``start..end-1``: index, event bytes (base64), leaf hash, serial, event id."""
        if end <= start:
            raise Refused("invalid_range", "end must be greater than start", field="end")
        if end - start > MAX_ENTRIES:
            raise Refused("invalid_range", f"at most {MAX_ENTRIES} entries per request", field="end")
        with pool().connection() as conn:
            size = sizes(conn)
            if end > size:
                raise Refused("invalid_range", f"the log has {size} entries; end must be <= {size}", field="end")
            rows = conn.execute(
                "SELECT log_index, subject_type, subject, seq, event_id, value FROM log_entries "
                "WHERE log_index >= %s AND log_index < %s ORDER BY log_index", (start, end),
            ).fetchall()
            leaves = tree.read_nodes(conn, [(0, i) for i in range(start, end)])
        return {"start": start, "end": end, "entries": [_entry_row(r, leaves.get((0, r[0]))) for r in rows]}

    @router.get("/v1/log/proof/inclusion")
    def get_inclusion(index: int = Query(..., ge=0), size: int = Query(..., ge=1)):
        """Audit path of leaf ``index`` in the tree of ``size`` leaves (RFC 6962 §2.1.1)."""
        if index >= size:
            raise Refused("invalid_range", f"index {index} is not below size {size}", field="index")
        with pool().connection() as conn:
            have = sizes(conn)
            if size > have:
                raise Refused("invalid_range", f"the log has {have} entries; size must be <= {have}", field="size")
            hashes = proofs.inclusion_proof(index, size, tree.reader_for(conn))
        return {"index": index, "size": size, "hashes": [h.hex() for h in hashes]}

    @router.get("/v1/log/proof/consistency")
    def get_consistency(first: int = Query(..., alias="from", ge=1), second: int = Query(..., alias="to", ge=1)):
        """Consistency proof from the tree of ``from`` leaves to the tree of ``to`` (RFC 6962 §2.1.2)."""
        if first > second:
            raise Refused("invalid_range", f"from ({first}) must be <= to ({second})", field="from")
        with pool().connection() as conn:
            have = sizes(conn)
            if second > have:
                raise Refused("invalid_range", f"the log has {have} entries; to must be <= {have}", field="to")
            hashes = proofs.consistency_proof(first, second, tree.reader_for(conn))
        return {"from": first, "to": second, "hashes": [h.hex() for h in hashes]}

    @router.get("/v1/labels/{serial}/proof")
    def get_label_proof(serial: str):
        """Evidence bundle: the label's (and its lot's) events and all actor events, each with an
        inclusion proof against the latest checkpoint, and that checkpoint."""
        gs1.validate_serial(serial)
        with pool().connection() as conn:
            return label_bundle(conn, settings, serial)

    return router


def label_bundle(conn: psycopg.Connection, settings: Settings, serial: str) -> dict:
    """The proof bundle of ``serial`` (see module doc); 404 problem if unknown or no checkpoint."""
    cp = latest_checkpoint(conn)
    if cp is None:
        return _problem(404, "the log has not published a checkpoint yet", "no_checkpoint")
    cols = "log_index, subject_type, subject, seq, event_id, value"
    label_rows = conn.execute(
        f"SELECT {cols} FROM log_entries WHERE subject_type = 'label' AND subject = %s AND log_index < %s ORDER BY log_index",
        (serial, cp.size),
    ).fetchall()
    if not label_rows:
        return _problem(404, f"label {serial} has no event in the log up to checkpoint size {cp.size}", "unknown_label")
    issued = SignedEvent.from_envelope(bytes(label_rows[0][5])).event
    lot = f"{issued.payload['gtin']}/{issued.payload['lot']}" if issued.kind == "Issued" else None
    lot_rows = conn.execute(
        f"SELECT {cols} FROM log_entries WHERE subject_type = 'lot' AND subject = %s AND log_index < %s ORDER BY log_index",
        (lot, cp.size),
    ).fetchall() if lot else []
    actor_rows = conn.execute(
        f"SELECT {cols} FROM log_entries WHERE subject_type = 'actor' AND log_index < %s ORDER BY log_index", (cp.size,),
    ).fetchall()
    rows = sorted(actor_rows + label_rows + lot_rows, key=lambda r: r[0])
    # One query for every node of every proof.
    plans = [proofs.plan_inclusion(r[0], cp.size) for r in rows]
    flat = proofs.resolve([entry for plan in plans for entry in plan], tree.reader_for(conn))
    entries, at = [], 0
    for r, plan in zip(rows, plans):
        e = _entry_row(r, None)
        e["proof"] = [h.hex() for h in flat[at : at + len(plan)]]
        at += len(plan)
        entries.append(e)
    newer = conn.execute(
        "SELECT count(*) FROM log_entries WHERE subject_type = 'label' AND subject = %s AND log_index >= %s", (serial, cp.size),
    ).fetchone()[0]
    pub = log_public_key(settings)
    log.info("label_bundle", serial=serial, size=cp.size, entries=len(entries))
    return {
        "format": BUNDLE_FORMAT,
        "serial": serial,
        "checkpoint": cp.as_dict(),
        "log_verifier_key": verifier_key(cp.origin, pub) if pub else None,
        "entries": entries,
        "label_events_after_checkpoint": newer,
    }
