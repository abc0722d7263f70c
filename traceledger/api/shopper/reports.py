"""``POST /v1/labels/{serial}/reports``: a shopper reports a suspected fake (JSON; the page has its own form).

A report goes through the scan inbox and becomes a ``ReportedFake`` event
(see :func:`ledger.channel_state.add_report`).
``GET /v1/report-photos/{sha256}``: a report's photo (:mod:`ledger.report_photos`), for regulators only.
"""

from __future__ import annotations

import asyncio
import re

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ledger import channel_state, gs1, report_photos, shopper_records
from ledger.errors import Refused
from traceledger import auth
from traceledger.api.client_identity import client_of
from traceledger.api.dependencies import caller
from traceledger.api.problems import not_found
from traceledger.api.responses import OrjsonResponse
from traceledger.api.shopper import page, service
from traceledger.auth import Caller
from traceledger.shopper import wording

router = APIRouter()


class ReportIn(BaseModel):
    note: str | None = Field(default=None, max_length=500)
    place: str | None = Field(default=None, max_length=80, description="where it was bought (shop or online store)")
    price: str | None = Field(default=None, max_length=12, description="price paid, CNY")
    phone: str | None = Field(default=None, max_length=20, description="optional phone for the regulator to call back")


@router.post("/v1/labels/{serial}/reports", status_code=201, summary="Report a suspected fake")
async def post_report(request: Request, serial: str, body: ReportIn | None = None):
    """Kept in ``consumer_reports`` for regulators and signed onto the label's chain as a
    ``ReportedFake`` event (``event_id``) by the gateway; ``on_ledger`` is false for a
    serial that was never issued, whose report stays in the table only. ``report_id`` is a
    random number (``R-`` and 10 characters): it says nothing about how many reports there are.
    The note, place, price and phone stay in the tables, never on the ledger."""
    gs1.validate_serial(serial)
    note = ((body.note if body else None) or "").strip() or None
    if note and re.search(r"[\x00-\x1f\x7f]", note):
        raise Refused("invalid_field", "note contains control characters", field="note")
    values = page.report_values(body.model_dump() if body else {})
    if any(values.values()) and (problem := page.report_problem(values)):
        raise Refused("invalid_field", wording.TEXT["en"][problem], field=problem.removeprefix("report_bad_"))
    state = request.app.state
    async with state.pool.connection() as conn:
        client = client_of(request)
        await service.spend(state, conn, "report", client)
        async with conn.transaction():
            accepted = await channel_state.add_report(conn, serial, "api", client, note)
            public_id = await shopper_records.add_details(conn, accepted.report_id, serial, place=values["place"] or None,
                                                          price=values["price"] or None, phone=values["phone"] or None)
    issued = await asyncio.to_thread(state.ledger.head, "label", serial) is not None
    detail = ("signed onto the label's ledger chain by the gateway for regulators" if issued else
              "this code was never issued, so there is no ledger chain to sign it onto: kept for regulators in the report table")
    return OrjsonResponse({"report_id": public_id, "event_id": accepted.event_id, "serial": serial,
                           "on_ledger": issued, "detail": detail}, status_code=201)


# A photo is served as data to save, never as something a browser renders in our origin.
PHOTO_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "default-src 'none'; sandbox",
                 "Cache-Control": "private, no-store"}


@router.get("/v1/report-photos/{sha256}", summary="A report's photo (regulators only)",
            responses={200: {"content": {report_photos.CONTENT_TYPE: {}}}})
async def report_photo(request: Request, sha256: str, who: Caller | None = Depends(caller)):
    """The stored photo named by the SHA-256 in a report's details (re-encoded by the server as a plain JPEG; the
    hash is of these bytes, so the regulator can check them). Anonymous callers and other roles are refused:
    a photo of a purchase may show a person, a home, a receipt."""
    auth.require(who, "regulator")
    async with request.app.state.pool.connection() as conn:
        data = await report_photos.fetch(conn, sha256)
    if data is None:
        return not_found(f"there is no report photo {sha256}", "unknown_photo", "sha256")
    return Response(data, media_type=report_photos.CONTENT_TYPE,
                    headers=PHOTO_HEADERS | {"Content-Disposition": f'attachment; filename="{sha256}.jpg"'})
