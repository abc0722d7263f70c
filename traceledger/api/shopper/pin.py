"""``POST /v1/labels/{serial}/pin``: check a label's scratch-off PIN (JSON), rate-limited per label and per client.

Each check spends one of the client's PIN checks (:func:`traceledger.api.shopper.service.spend`);
the wrong-PIN lockouts and the first-use bookkeeping are :func:`ledger.channel_state.check_pin`'s.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from ledger import gs1
from ledger.errors import Refused
from traceledger.api.client_identity import client_of
from traceledger.api.problems import refused
from traceledger.api.responses import OrjsonResponse
from traceledger.api.shopper import service
from traceledger.shopper import wording

router = APIRouter()


class PinIn(BaseModel):
    pin: str = Field(max_length=64)


@router.post("/v1/labels/{serial}/pin", summary="Verify a scratch-off PIN (rate-limited per label and per client)")
async def post_pin(request: Request, serial: str, body: PinIn):
    """``first_use`` / ``already_used`` (with the first time) / ``wrong`` (tries left); 429 when rate-limited."""
    gs1.validate_serial(serial)
    state = request.app.state
    async with state.pool.connection() as conn:
        raw, cv = await service.consumer_of(state, conn, serial, channel=None, session=None)
        if cv["verdict"] == "unknown" and not raw.get("gtin"):
            return OrjsonResponse(cv | {"pin_result": None})
        client = client_of(request)
        await service.spend(state, conn, "pin", client)
        result = await service.pin_check(conn, raw, body.pin, client, "web", state=state, scan_channel="app", scan_session=client)
    if result["pin_result"] == "limited":
        return refused(429, Refused("too_many_attempts", "too many wrong PINs: try again later", field="pin"),
                       headers={"Retry-After": str(result["retry_after"])})
    return OrjsonResponse(cv | result | {"display": wording.display_key(cv, result)})
