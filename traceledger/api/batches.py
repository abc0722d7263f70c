"""Writing batch events (event.v3): ``POST /v1/batches``, one signed event for up to 8,192 labels.

The body is the signed batch event (base64 body and signature, as for ``/v1/events``) and
its manifest (base64), whose Merkle root the body signs; a shipment or receipt also the
opening of its sealed confidential fields, which the ledger checks and keeps apart. The ledger stores all of it or
nothing (:meth:`ledger.service.Ledger.append_batch`); a refusal is answered as a result
with its code, like a refused event, so a client handles both alike.
"""

from __future__ import annotations

import base64
import binascii

from fastapi import APIRouter, Depends
from pydantic import Field

from ledger.batches import Opening
from ledger.errors import Refused
from ledger.service import Ledger
from traceledger.api.dependencies import ledger_of
from traceledger.api.responses import OrjsonResponse
from traceledger.api.signed_input import EventIn, decode_event

router = APIRouter()


class BatchIn(EventIn):
    manifest: str = Field(description="base64 of the batch manifest (schemas/batch_manifest.v1.avsc)")
    opening: dict | None = Field(default=None, description="a movement's sealed fields opened: {salt: base64, fields: {consignee, territory, channel}}")




@router.post("/v1/batches")
def post_batch(payload: BatchIn, ledger: Ledger = Depends(ledger_of)):
    """Append one client-signed batch event with its manifest: every label of it, or none."""
    try:
        manifest = base64.b64decode(payload.manifest, validate=True)
    except (binascii.Error, ValueError):
        raise Refused("malformed_manifest", "manifest must be base64", field="manifest") from None
    try:
        signed = decode_event(payload)
    except Refused as refusal:
        signed = refusal
    opening = None if payload.opening is None else Opening.from_json(payload.opening)
    result = ledger.append_batch(signed, manifest, opening=opening)
    return OrjsonResponse({"result": result.as_dict()})
