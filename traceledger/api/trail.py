"""A label's full trail for the people entitled to it: its producer and regulators.

``GET /v1/labels/{serial}/trail`` answers only a signed request
(:mod:`traceledger.auth`): 401 unsigned or badly signed, 403 for any caller
but the label's producer or a regulator. A regulator may also ask about a
serial that was never issued (its consumer reports are still listed).

The trail is read from the ledger's write model — every event as stored and
signed, with its actors, event ids and payload (channels, places, consignees,
PIN outcomes, report reasons) — whereas the public views
(``GET /v1/labels/{serial}``, the consumer page) show places and dates only.
Even here a consumer's session pseudonym is shown only as a short hash:
enough to see that two scans came from the same phone, not to link it to the
gateway's own records. A PIN hash is never shown.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from fastapi import APIRouter, Depends, Request

from ledger import channel_state, gs1
from ledger.errors import Refused
from ledger.events import EPCIS_MAPPING, SignedEvent, decode_signed
from ledger.logging_setup import get_logger
from ledger.service import Ledger
from ledger.store import chain_id
from projections.integrity import guard_view
from projections.verification import read_view_async
from traceledger import auth
from traceledger.api.dependencies import caller
from traceledger.api.responses import OrjsonResponse

log = get_logger("api_trail")


def session_hash(session: str | None) -> str | None:
    """A short, stable stand-in for a consumer's session or client pseudonym."""
    return hashlib.sha256(session.encode()).hexdigest()[:16] if session else None


def chain_events(ledger: Ledger, serial: str) -> tuple[list[SignedEvent], str | None]:
    """The label's events as stored in the write model, in chain order (empty if never issued),
    and what stopped the reading early: a stored row that no longer decodes is tampering, shown, not a 500."""
    events: list[SignedEvent] = []
    try:
        for stored in ledger.app.events.get(chain_id("label", serial)):
            events.append(decode_signed(stored.body, stored.signature))
    except Exception as exc:  # noqa: BLE001 - any decoding failure of a stored row
        return events, f"stored event {len(events)} does not decode ({type(exc).__name__})"
    return events, None


def trail_entry(signed: SignedEvent) -> dict[str, Any]:
    """One event of the full trail: who, when, what, under which key, and its details."""
    e = signed.event
    details: dict[str, Any] = {}
    for name, value in e.payload.items():
        if name == "pin_hash":
            details["pin_protected"] = value is not None
        elif name == "session":
            details["session_hash"] = session_hash(value)
        elif value is not None:
            details[name] = value.hex() if isinstance(value, bytes) else value
    biz_step, disposition = EPCIS_MAPPING.get(e.kind, (None, None))
    return {
        "seq": e.seq, "event_id": e.event_id, "kind": e.kind, "at": e.occurred_at.isoformat(), "actor": e.actor,
        "key_id": e.key_id, "hash": signed.hash.hex(), "biz_step": biz_step, "disposition": disposition, "details": details,
    }


router = APIRouter()

SUMMARY_FIELDS = ("verdict", "reasons", "integrity", "product", "producer", "gtin", "lot", "expiry", "status",
                  "custodian", "consignee", "territory", "channel", "scan_count", "first_scanned_at")


async def reports_json(conn, serial: str, on_chain: set[str]) -> list[dict]:
    """Every consumer report about ``serial``, the client shown only as a hash, and whether it is on the chain."""
    reports = await channel_state.reports_of(conn, serial)
    for report in reports:
        report["client_hash"] = session_hash(report.pop("client"))  # the same hash as the event's session
        report["on_ledger"] = report["event_id"] in on_chain
    return reports


@router.get("/v1/labels/{serial}/trail", summary="A label's full trail (signed: its producer or a regulator)")
async def get_trail(request: Request, serial: str, signer: auth.Caller | None = Depends(caller)):
    """Every event on the label's chain with actors and details, and every consumer report about it."""
    gs1.validate_serial(serial)
    who = auth.require(signer, "producer", "regulator")
    state = request.app.state
    events, unreadable = await asyncio.to_thread(chain_events, state.ledger, serial)
    producer = events[0].event.actor if events and events[0].event.kind == "Issued" else None
    if not who.may_see_producer(producer):
        raise Refused("forbidden", "only the label's producer or a regulator sees its full trail", field="serial")
    async with state.pool.connection() as conn:
        view = await guard_view(state.ledger.app, conn, serial, await read_view_async(conn, serial))
        reports = await reports_json(conn, serial, {s.event.event_id for s in events})
    log.info("trail_read", serial=serial, caller=who.actor_id, role=who.role, events=len(events), reports=len(reports))
    summary = {k: view.get(k) for k in SUMMARY_FIELDS if k in view}
    if unreadable:
        summary["integrity"] = summary.get("integrity") or unreadable
    return OrjsonResponse({"serial": serial, **summary, "trail": [trail_entry(s) for s in events], "reports": reports})
