"""HTTP API of the global Merkle log: checkpoints, entries, proofs, label bundles.

Included by :func:`traceledger.api.app.create_app`; the routes are blocking and use the
app's small sync pool (:func:`traceledger.api.dependencies.sync_pool`).
Every proof is computed from O(log n) stored nodes in one query (``ledger.transparency.tree``).
Bad parameters are :class:`ledger.errors.Refused` -> 400 problem+json.

Who sees what (:mod:`traceledger.api.access`): checkpoints and proofs are
public. ``GET /v1/log/entries`` shows anyone each entry's index and leaf hash
(enough to recompute every root and check every proof); the event bytes,
subject and event id only to a signed caller entitled to that event (a
regulator: all). A label's proof bundle (``GET /v1/labels/{serial}/proof``)
is, for its producer or a regulator, self-contained evidence: the latest
signed checkpoint, every event of the label and of its lot, and every actor
event up to the checkpoint (so the signers' keys and authority can be
re-derived offline), each with its inclusion proof; ``traceledger audit
verify-bundle FILE`` checks it without any server. Anyone else gets the public
bundle: the checkpoint and the label's leaf hashes with their inclusion proofs,
no event bytes (``traceledger audit public --bundle FILE`` checks it).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import psycopg
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from consumers.checkpointer import latest_checkpoint
from ledger import gs1, store
from ledger.batches import Batch, Opening, step_proof
from ledger.config import Settings
from ledger.errors import Refused
from ledger.events import SignedEvent
from ledger.logging_setup import get_logger
from ledger.transparency import merkle, proofs, tree
from ledger.transparency.checkpoints import verifier_key
from projections import log_queries
from traceledger.api import access
from traceledger.api.dependencies import caller, sync_pool
from traceledger.api.problems import not_found
from traceledger.auth import Caller

log = get_logger("api_log")

MAX_ENTRIES = 1000
BUNDLE_FORMAT = "traceledger-proof-bundle/v1"
PUBLIC_BUNDLE_FORMAT = "traceledger-public-bundle/v1"

router = APIRouter(tags=["log"])


def public_entry(index: int, leaf: bytes) -> dict:
    """What anyone may see of a log entry: its index and leaf hash."""
    return {"index": index, "leaf_hash": leaf.hex()}


def entry_json(row, leaf: bytes | None) -> dict:
    """A log entry row as the API shows it (the leaf hash is computed when not given)."""
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


def no_checkpoint() -> JSONResponse:
    return not_found("the log has not published a checkpoint yet", "no_checkpoint")


def check_size(conn, wanted: int, name: str) -> None:
    """Refuse ``wanted`` (a size or end, parameter ``name``) beyond the stored log."""
    have = tree.stored_size(conn)
    if wanted > have:
        raise Refused("invalid_range", f"the log has {have} entries; {name} must be <= {have}", field=name)


@router.get("/v1/log/checkpoint")
def get_checkpoint(request: Request):
    """The latest signed checkpoint: size, root (hex), timestamp (unix ms), note, key_id."""
    with sync_pool(request.app.state).connection() as conn:
        cp = latest_checkpoint(conn)
    if cp is None:
        return no_checkpoint()
    return cp.as_dict()


@router.get("/v1/log/entries")
def get_entries(request: Request, start: int = Query(..., ge=0, le=2**63 - 1), end: int = Query(..., ge=1, le=2**63 - 1), signer: Caller | None = Depends(caller)):
    """Leaves ``start..end-1``: index and leaf hash for anyone; event bytes (base64), subject, serial and
    event id of the entries the signed caller may read (``readable``: false on the others)."""
    if end <= start:
        raise Refused("invalid_range", "end must be greater than start", field="end")
    if end - start > MAX_ENTRIES:
        raise Refused("invalid_range", f"at most {MAX_ENTRIES} entries per request", field="end")
    with sync_pool(request.app.state).connection() as conn:
        check_size(conn, end, "end")
        leaves = tree.read_nodes(conn, [(0, i) for i in range(start, end)])
        if signer is None:
            return {"start": start, "end": end, "entries": [public_entry(i, leaf) for (_, i), leaf in sorted(leaves.items())]}
        rows = log_queries.entries(conn, start, end)
    readable = access.Reader(signer, request.app.state.ledger).readable_values([bytes(r[5]) for r in rows])
    entries = [entry_json(r, leaves.get((0, r[0]))) | {"readable": True} if ok
               else public_entry(r[0], leaves.get((0, r[0])) or merkle.leaf_hash(bytes(r[5]))) | {"readable": False}
               for r, ok in zip(rows, readable)]
    log.info("log_entries_read", caller=signer.actor_id, role=signer.role, entries=len(entries), readable=sum(readable))
    return {"start": start, "end": end, "entries": entries}


@router.get("/v1/log/proof/inclusion")
def get_inclusion(request: Request, index: int = Query(..., ge=0, le=2**63 - 1), size: int = Query(..., ge=1, le=2**63 - 1)):
    """Audit path of leaf ``index`` in the tree of ``size`` leaves (RFC 6962 §2.1.1)."""
    if index >= size:
        raise Refused("invalid_range", f"index {index} is not below size {size}", field="index")
    with sync_pool(request.app.state).connection() as conn:
        check_size(conn, size, "size")
        hashes = proofs.inclusion_proof(index, size, tree.reader_for(conn))
    return {"index": index, "size": size, "hashes": [h.hex() for h in hashes]}


@router.get("/v1/log/proof/consistency")
def get_consistency(request: Request, first: int = Query(..., alias="from", ge=1, le=2**63 - 1), second: int = Query(..., alias="to", ge=1, le=2**63 - 1)):
    """Consistency proof from the tree of ``from`` leaves to the tree of ``to`` (RFC 6962 §2.1.2)."""
    if first > second:
        raise Refused("invalid_range", f"from ({first}) must be <= to ({second})", field="from")
    with sync_pool(request.app.state).connection() as conn:
        check_size(conn, second, "to")
        hashes = proofs.consistency_proof(first, second, tree.reader_for(conn))
    return {"from": first, "to": second, "hashes": [h.hex() for h in hashes]}


@router.get("/v1/labels/{serial}/proof")
def get_label_proof(request: Request, serial: str, signer: Caller | None = Depends(caller)):
    """Evidence bundle against the latest checkpoint: for the label's producer or a regulator, the label's
    (and its lot's) events and all actor events with inclusion proofs; for anyone else, the label's leaf
    hashes with their inclusion proofs (no event bytes)."""
    gs1.validate_serial(serial)
    state = request.app.state
    entitled = signer is not None and access.Reader(signer, state.ledger).may_read_subject("label", serial)
    with sync_pool(state).connection() as conn:
        return label_bundle(conn, state.settings, serial) if entitled else public_bundle(conn, state.settings, serial)


def proved_entries(conn: psycopg.Connection, rows: list[tuple], size: int) -> list[dict]:
    """Entry rows with their inclusion proofs in the tree of ``size`` leaves (one query for every node)."""
    plans = [proofs.plan_inclusion(r[0], size) for r in rows]
    flat = proofs.resolve([entry for plan in plans for entry in plan], tree.reader_for(conn))
    entries, at = [], 0
    for r, plan in zip(rows, plans):
        e = entry_json(r, None)
        e["proof"] = [h.hex() for h in flat[at : at + len(plan)]]
        at += len(plan)
        entries.append(e)
    return entries


def label_log_rows(conn: psycopg.Connection, serial: str, size: int) -> list[tuple]:
    """Every log row of label ``serial`` below ``size``: its own events and the batch events that include it, in log order."""
    rows = log_queries.subject_entries(conn, "label", serial, size) + log_queries.batch_entries_of_label(conn, serial, size)
    return sorted(rows, key=lambda r: r[0])


def checkpointed_label(conn: psycopg.Connection, serial: str):
    """(latest checkpoint, the label's log rows up to it), or the 404 problem when either is missing."""
    cp = latest_checkpoint(conn)
    if cp is None:
        return no_checkpoint()
    label_rows = label_log_rows(conn, serial, cp.size)
    if not label_rows:
        return not_found(f"label {serial} has no event in the log up to checkpoint size {cp.size}", "unknown_label")
    return cp, label_rows


def with_step_proofs(conn: psycopg.Connection, serial: str, entries: list[dict]) -> list[dict]:
    """Give each batch entry of ``entries`` the label's step in it: leaf index, step and inclusion
    path under the signed ``labels_root`` (the manifest itself stays on the server: up to 8,192 steps)."""
    batch_entries = [e for e in entries if e["subject_type"] == "batch"]
    manifests = store.batch_manifests(conn, [e["event_id"] for e in batch_entries])
    openings = store.batch_openings(conn, [e["event_id"] for e in batch_entries])  # entitled: the label's producer or a regulator
    for e in batch_entries:
        signed = SignedEvent.from_envelope(base64.b64decode(e["value"]))
        batch = Batch.checked(signed, manifests[e["event_id"]])
        leaf = next(i for i, step in enumerate(batch.steps) if step.serial == serial)
        proof = step_proof(batch, leaf)
        e["step"] = {"leaf": leaf, "step": proof["step"], "path": proof["path"]}
        if e["event_id"] in openings:
            e["step"]["opening"] = Opening.from_bytes(openings[e["event_id"]]).as_json()
    return entries


def public_bundle(conn: psycopg.Connection, settings: Settings, serial: str) -> dict | JSONResponse:
    """What anyone may hold of a label's proof: the checkpoint, the label's leaf hashes and their inclusion proofs."""
    found = checkpointed_label(conn, serial)
    if isinstance(found, JSONResponse):
        return found
    cp, label_rows = found
    entries = [{"index": e["index"], "leaf_hash": e["leaf_hash"], "proof": e["proof"]} for e in proved_entries(conn, label_rows, cp.size)]
    pub = log_public_key(settings)
    log.info("public_label_bundle", serial=serial, size=cp.size, entries=len(entries))
    return {
        "format": PUBLIC_BUNDLE_FORMAT,
        "serial": serial,
        "checkpoint": cp.as_dict(),
        "log_verifier_key": verifier_key(cp.origin, pub) if pub else None,
        "entries": entries,
        "label_events_after_checkpoint": log_queries.count_of_label_from(conn, serial, cp.size),
    }


def label_bundle(conn: psycopg.Connection, settings: Settings, serial: str) -> dict | JSONResponse:
    """The proof bundle of ``serial`` (see module doc); 404 problem if unknown or no checkpoint."""
    found = checkpointed_label(conn, serial)
    if isinstance(found, JSONResponse):
        return found
    cp, label_rows = found
    issued = SignedEvent.from_envelope(bytes(label_rows[0][5])).event
    lot = f"{issued.payload['gtin']}/{issued.payload['lot']}" if issued.kind in ("Issued", "BatchIssued") else None
    lot_rows = log_queries.subject_entries(conn, "lot", lot, cp.size) if lot else []
    actor_rows = log_queries.type_entries(conn, "actor", cp.size)
    entries = with_step_proofs(conn, serial, proved_entries(conn, sorted(actor_rows + label_rows + lot_rows, key=lambda r: r[0]), cp.size))
    newer = log_queries.count_of_label_from(conn, serial, cp.size)
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
