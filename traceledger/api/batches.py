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
from traceledger.api.access import owners, reader
from traceledger.api.dependencies import caller, ledger_of
from traceledger.api.responses import OrjsonResponse
from traceledger.api.signed_input import EventIn, decode_event
from traceledger.auth import Caller

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


@router.get("/v1/batches/{batch_id}")
def get_batch(batch_id: str, ledger: Ledger = Depends(ledger_of), who: Caller | None = Depends(caller)):
    """A batch event, its manifest and (a movement) the opening of its sealed fields: signed readers only.

    Who may read it: a regulator; the actor who signed it; for a movement whose sealed
    fields name a consignee, that consignee; the producer of its labels. Anonymous: 401;
    anyone else: 403. The public sees batch bodies only as leaf hashes of the log, and a
    body holds only the commitment (``sealed``), never the consignee, territory or channel.
    """
    me = reader(who, ledger)
    found = ledger.batch(batch_id)
    if found is None:
        raise Refused("unknown_subject", f"batch {batch_id} does not exist", field="batch_id")
    batch, opening = found
    e = batch.signed.event
    entitled = me.sees_everything or me.caller.actor_id == e.actor or (opening is not None and opening.fields.get("consignee") == me.caller.actor_id)
    if not entitled:
        producers = set(owners(ledger, [("label", s.serial) for s in batch.steps]).values())
        entitled = producers == {me.caller.actor_id}
    if not entitled:
        raise Refused("forbidden", "only a regulator, the batch's signer, its consignee or its labels' producer reads a batch", field="authorization")
    return OrjsonResponse({
        "batch_id": e.subject, "kind": e.kind, "actor": e.actor, "count": len(batch.steps),
        "body": base64.b64encode(batch.signed.body).decode(), "signature": base64.b64encode(batch.signed.signature).decode(),
        "manifest": base64.b64encode(batch.manifest).decode(),
        "opening": None if opening is None else opening.as_json(),
    })
