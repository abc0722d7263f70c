"""Writing to the ledger: ``POST /v1/events`` (client-signed batches) and ``POST /v1/heads`` (chain heads to sign against)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ledger.errors import Refused
from ledger.events import SignedEvent
from ledger.logging_setup import get_logger
from ledger.service import Ledger
from traceledger.api.dependencies import ledger_of
from traceledger.api.limits import MAX_EVENTS_PER_REQUEST
from traceledger.api.responses import OrjsonResponse
from traceledger.api.signed_input import EventIn, decode_event

log = get_logger("api")

router = APIRouter()


class EventsIn(BaseModel):
    events: list[EventIn]
    atomic: bool = Field(default=False, description="all or nothing: one refusal and no event is written (always so for pack/unpack batches)")


class SubjectRef(BaseModel):
    type: Literal["label", "lot", "actor", "alert", "container", "certificate", "product"]  # event.v4 adds the last two
    subject: str


class HeadsIn(BaseModel):
    subjects: list[SubjectRef]


def decode_item(item: EventIn) -> SignedEvent | Refused:
    """The item's signed event, or its refusal (a batch answers each item on its own)."""
    try:
        return decode_event(item)
    except Refused as refusal:
        return refusal


@router.post("/v1/events")
def post_events(payload: EventsIn, ledger: Ledger = Depends(ledger_of)):
    """Append a batch of client-signed events; each gets its own result."""
    if len(payload.events) > MAX_EVENTS_PER_REQUEST:
        raise Refused("too_many_events", f"at most {MAX_EVENTS_PER_REQUEST} events per request", field="events")
    batch = [decode_item(item) for item in payload.events]
    results = [r.as_dict() for r in ledger.append(batch, atomic=payload.atomic)]
    accepted = sum(r["status"] in ("accepted", "duplicate") for r in results)
    log.info("events_appended", submitted=len(results), accepted=accepted, refused=len(results) - accepted)
    # Plain dicts of str/int/None: orjson directly, not FastAPI's per-field jsonable_encoder walk.
    return OrjsonResponse({"results": results, "accepted": accepted, "refused": len(results) - accepted})


@router.post("/v1/heads")
def post_heads(payload: HeadsIn, ledger: Ledger = Depends(ledger_of)):
    """The write model's current head of each subject (null if none)."""
    if len(payload.subjects) > MAX_EVENTS_PER_REQUEST:
        raise Refused("too_many_subjects", f"at most {MAX_EVENTS_PER_REQUEST} subjects per request", field="subjects")
    return {"heads": ledger.heads([(s.type, s.subject) for s in payload.subjects])}
