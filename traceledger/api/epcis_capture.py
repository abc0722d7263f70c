"""Standard EPCIS capture, signed by the capturing actor: ``POST /v1/epcis/capture/signed``, and the job list.

The actor's client (``traceledger epcis capture DOC --key``) reads an ordinary
EPCIS 2.0 document, maps each event (:mod:`ledger.epcis_capture`), signs the
ledger events locally and sends them here, one entry per EPCIS event: its
index, its key (``eventID``) and either its signed ledger events or the
reason it could not be mapped. The server never signs; it

1. refuses the request whole, writing nothing, when it is malformed, not
   signed by a registered actor (a signed request, :mod:`traceledger.auth`),
   carries events signed by anyone else, or is a document this actor
   captured before (``replayed document``);
2. appends each EPCIS event's ledger events as one all-or-nothing group, in
   document order, after reserving its key: an EPCIS event captured before by
   anyone is refused as a replay, and a group that follows a refused one on
   the same chain is refused with that reason; a label named with another
   GTIN than the one it was issued with is refused;
3. records the job with every event's result (``GET /v1/epcis/capture/{id}``)
   and answers 202 with it. ``captureErrorBehaviour`` is ``proceed``: a bad
   event never stops the others.

``GET /v1/epcis/capture`` lists jobs, newest first (``perPage``,
``nextPageToken``, ``Link``): a signed caller sees its own, a regulator all.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Annotated, Mapping

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ledger import capture_jobs, declarations, epcis
from ledger.batches import MAX_MANIFEST_BYTES, decode_manifest
from ledger.epcis_capture import MAX_EPCIS_EVENTS, MAX_EPCS
from ledger.errors import Refused
from ledger.events import DECLARATION_KINDS, Event, SignedEvent
from ledger.lifecycle import LabelState
from ledger.logging_setup import get_logger
from ledger.store import chain_id
from traceledger import auth
from traceledger.api.dependencies import caller, sync_pool
from traceledger.api.epcis_query import check_versions, next_link
from traceledger.api.signed_input import EventIn, decode_event

log = get_logger("epcis")

MAX_MANIFEST_BASE64 = 4 * (MAX_MANIFEST_BYTES // 3 + 1)

router = APIRouter(tags=["epcis"], dependencies=[Depends(check_versions)])


class Unmappable(BaseModel):
    code: str = Field(max_length=64)
    detail: str = Field(max_length=1000)


class CapturedEvent(BaseModel):
    """One EPCIS event of the document: its signed ledger events, or why it has none."""

    index: int = Field(ge=0, lt=MAX_EPCIS_EVENTS)
    eventKey: str = Field(min_length=1, max_length=512)
    signed: list[EventIn] = Field(default_factory=list, max_length=MAX_EPCS + 1)
    gtins: dict[str, str] = Field(default_factory=dict, max_length=MAX_EPCS, description="label serial -> the GTIN its EPC names")
    ignored: list[str] = Field(default_factory=list, max_length=200)
    refused: Unmappable | None = None
    manifest: str | None = Field(None, max_length=MAX_MANIFEST_BASE64, description="base64 manifest of a batch event (its only signed event)")


class SignedCapture(BaseModel):
    documentSha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    events: list[CapturedEvent] = Field(min_length=1, max_length=MAX_EPCIS_EVENTS)


def batch_manifest(entry: CapturedEvent, group: list[SignedEvent]) -> bytes | None:
    """The manifest of an entry that is one batch event (None for single events); refused if malformed or misplaced."""
    batches = [s for s in group if s.event.subject_type == "batch"]
    if not batches and entry.manifest is None:
        return None
    if len(group) != 1 or len(batches) != 1 or batches[0].event.kind != "BatchIssued" or entry.manifest is None:
        raise epcis.EpcisError("ValidationException", "a batch event is captured alone with its manifest (BatchIssued only), "
                               "and a manifest only with one", event_index=entry.index)
    try:
        manifest = base64.b64decode(entry.manifest, validate=True)
        decode_manifest(manifest)
    except (binascii.Error, ValueError):
        raise epcis.EpcisError("ValidationException", "manifest must be base64", event_index=entry.index) from None
    except Refused as exc:
        raise epcis.EpcisError("ValidationException", f"manifest does not decode: {exc.detail}", event_index=entry.index) from None
    return manifest


def decoded_groups(body: SignedCapture, actor: str, manifests: dict[int, bytes | None]) -> list[list[SignedEvent]]:
    """Each entry's signed events, decoded (batch manifests into ``manifests`` by entry index); refuse the whole
    request on any malformed entry."""
    if len({e.index for e in body.events}) != len(body.events) or len({e.eventKey for e in body.events}) != len(body.events):
        raise epcis.EpcisError("ValidationException", "each EPCIS event (index, eventKey) appears once")
    if sum(len(e.signed) for e in body.events) > MAX_EPCS + MAX_EPCIS_EVENTS:
        raise epcis.EpcisError("CaptureLimitExceededException", "too many signed events in one capture")
    groups = []
    for entry in body.events:
        if bool(entry.signed) == (entry.refused is not None):
            raise epcis.EpcisError("ValidationException", "an event has either signed ledger events or a refusal", event_index=entry.index)
        try:
            group = [decode_event(item) for item in entry.signed]
        except Refused as exc:
            raise epcis.EpcisError("ValidationException", f"signed event does not decode: {exc.detail}", event_index=entry.index) from None
        manifests[entry.index] = batch_manifest(entry, group)
        strangers = sorted({s.event.actor for s in group} - {actor})
        if strangers:
            raise epcis.EpcisError("ValidationException", f"events signed by {strangers[0]}, not by the caller {actor}: "
                                   "a capture holds the capturing actor's own events only", event_index=entry.index)
        groups.append(group)
    ids = [s.event.event_id for g in groups for s in g]
    if len(set(ids)) != len(ids):
        raise epcis.EpcisError("ValidationException", "a ledger event id appears twice in the capture")
    return groups


def gtin_mismatch(state, entry: CapturedEvent, group: list[SignedEvent]) -> str | None:
    """Why a label named by this event is not the one its EPC means (another GTIN), or None."""
    issued = {s.event.subject: s.event.payload["gtin"] for s in group if s.event.kind == "Issued"}
    labels = {s.event.subject for s in group if s.event.subject_type == "label"}
    others = [serial for serial in entry.gtins if serial not in issued and serial in labels]  # only what the events name
    chains = state.ledger.app.load_chains(chain_id("label", s) for s in others)
    for c in chains.values():
        if isinstance(c.state, LabelState) and c.state.gtin != entry.gtins[c.subject]:
            return f"the EPC names GTIN {entry.gtins[c.subject]} but label {c.subject} was issued as GTIN {c.state.gtin}"
    return None


def declaration_refusal(state, group: list[SignedEvent], earlier: Mapping[str, Event] = declarations.NO_EVENTS) -> tuple[str, str] | None:
    """Why an error declaration of this group may not stand (:func:`ledger.declarations.check`), or None.
    ``earlier``: events by id that come before it in the same document, not appended yet."""
    for s in group:
        if s.event.kind in DECLARATION_KINDS:
            try:
                declarations.check(state.ledger.app, s.event, state.ledger.actor(s.event.actor), earlier)
            except Refused as refusal:
                return refusal.code, refusal.detail
    return None


def append_entry(state, capture_id: str, entry: CapturedEvent, group: list[SignedEvent], refused_hashes: dict[bytes, int],
                 manifest: bytes | None = None) -> dict:
    """Reserve, check and append one EPCIS event's group; its result."""
    out = {"index": entry.index, "eventID": entry.eventKey, "ledgerEvents": [s.event.event_id for s in group]}
    if entry.ignored:
        out["ignored"] = entry.ignored
    follows = next((refused_hashes[s.event.prev_hash] for s in group if s.event.prev_hash in refused_hashes), None)
    reason = None
    if (why := gtin_mismatch(state, entry, group)) is not None:
        reason = ("gtin_mismatch", why)
    elif (refusal := declaration_refusal(state, group)) is not None:
        reason = refusal
    elif follows is not None:
        reason = ("follows_refused", f"signed on top of event {follows} of this document, which was refused")
    if reason is None:
        with sync_pool(state).connection() as conn:
            held = capture_jobs.reserve(conn, entry.eventKey, capture_id, entry.index)
        if held is not None:
            reason = ("replayed_event", f"EPCIS event {entry.eventKey[:100]} was captured before, in capture {held}")
    if reason is None:
        results = [state.ledger.append_batch(group[0], manifest)] if manifest is not None else state.ledger.append(group, atomic=True)
        bad = next((r for r in results if r.status == "refused" and r.error.code != "batch_aborted"), None)
        if bad is None:
            return out | {"status": "accepted" if any(r.status == "accepted" for r in results) else "duplicate"}
        with sync_pool(state).connection() as conn:
            capture_jobs.release(conn, entry.eventKey, capture_id)
        reason = (bad.error.code, f"{bad.subject}: {bad.error.detail}")
    refused_hashes.update({s.hash: entry.index for s in group})
    return out | {"status": "refused", "code": reason[0], "detail": reason[1]}


def capture_signed(state, body: SignedCapture, actor: str) -> JSONResponse:
    """Run one capture (blocking work: signatures, the store) and answer its job."""
    manifests: dict[int, bytes | None] = {}
    groups = decoded_groups(body, actor, manifests)
    capture_id = str(uuid.uuid4())
    with sync_pool(state).connection() as conn:
        capture_jobs.start(conn, capture_id, actor, body.documentSha256, len(body.events))
    refused_hashes: dict[bytes, int] = {}
    results = []
    for entry, group in sorted(zip(body.events, groups), key=lambda pair: pair[0].index):
        if entry.refused is not None:
            results.append({"index": entry.index, "eventID": entry.eventKey, "status": "refused",
                            "code": entry.refused.code, "detail": entry.refused.detail})
            continue
        results.append(append_entry(state, capture_id, entry, group, refused_hashes, manifests[entry.index]))
    errors = [{"type": "epcisException:ValidationException", "eventIndex": r["index"], "code": r["code"], "detail": r["detail"]}
              for r in results if r["status"] == "refused"]
    with sync_pool(state).connection() as conn:
        capture_jobs.finish(conn, capture_id, not errors, errors, results)
        job = capture_jobs.job(conn, capture_id)
    log.info("epcis_capture_signed", capture_id=capture_id, actor=actor, events=len(results),
             accepted=sum(r["status"] == "accepted" for r in results), refused=len(errors))
    return JSONResponse(job, status_code=202, headers={"Location": f"/v1/epcis/capture/{capture_id}"})


@router.post("/v1/epcis/capture/signed", status_code=202)
async def capture_signed_events(request: Request, body: SignedCapture, signer: auth.Caller | None = Depends(caller)):
    """Capture a standard EPCIS document as its actor signed it: event by event, each accepted or refused with a reason."""
    who = auth.require(signer)
    return await run_in_threadpool(capture_signed, request.app.state, body, who.actor_id)


class CapturedQuery(BaseModel):
    eventIDs: list[Annotated[str, Field(min_length=1, max_length=512)]] = Field(min_length=1, max_length=MAX_EPCIS_EVENTS)


@router.post("/v1/epcis/capture/events")
def captured_events(request: Request, body: CapturedQuery, signer: auth.Caller | None = Depends(caller)):
    """The ledger events that EPCIS events captured before became, by their eventIDs: the caller's own captures (a
    regulator: anyone's). The capture client resolves an error declaration's correctiveEventIDs with it."""
    who = auth.require(signer)
    with sync_pool(request.app.state).connection() as conn:
        found = capture_jobs.captured(conn, body.eventIDs, None if who.role == "regulator" else who.actor_id)
    return JSONResponse({"events": found})


@router.get("/v1/epcis/capture")
def capture_jobs_list(request: Request, perPage: int = Query(30, ge=1, le=500), nextPageToken: int | None = Query(None, ge=1, le=2**63 - 1),
                      signer: auth.Caller | None = Depends(caller)):
    """Capture jobs, newest first: the caller's own, or every job for a regulator."""
    who = auth.require(signer)
    with sync_pool(request.app.state).connection() as conn:
        jobs, more = capture_jobs.jobs(conn, perPage, nextPageToken, actor=None if who.role == "regulator" else who.actor_id)
    return JSONResponse(jobs, headers=next_link(request, None if more is None else str(more)))
