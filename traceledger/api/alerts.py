"""Alert endpoints: list, show, summary (JSON and SVG), transitions (an APIRouter included by traceledger.api.app).

Reads the detector's ``alerts`` schema (:mod:`projections.alert_queries`) on the API's async pool. Every read
needs a signed request (:mod:`traceledger.auth`): a regulator sees every
alert; a producer sees the alerts on its own labels (``producer`` = itself;
unknown-code alerts have no producer, so only regulators see them); other
roles see none.

Alerts are named by their stable UUID (``id``); pages follow ``next_cursor``,
an opaque position in newest-first order.

``POST /v1/alerts/{id}/transitions`` takes one client-signed
``AlertAcknowledged`` / ``AlertResolved`` event and appends it to the ledger
after checking it is about this alert (subject, producer, kind, serial):
the ledger itself checks the signer, the chain and the lifecycle. The
detector applies it to the alert once it comes back through Kafka.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ledger import regions
from ledger.errors import Refused
from ledger.events import ALERT_KINDS as TRANSITION_KINDS
from ledger.logging_setup import get_logger
from projections import alert_queries
from projections.alert_queries import AlertFilter
from traceledger import alerts_chart, auth
from traceledger.api.dependencies import caller
from traceledger.api.problems import not_found, problem
from traceledger.api.responses import OrjsonResponse
from traceledger.api.signed_input import EventIn, decode_event
from traceledger.auth import Caller

log = get_logger("api")

MAX_PAGE = 1000
# A refused transition's HTTP status by the ledger's code (anything else is 400).
TRANSITION_STATUS = {"not_authorized": 403, "revoked": 403, "revoked_key": 403, "invalid_transition": 409,
                     "unknown_subject": 409, "stale_head": 409, "chain_gap": 409, "prev_hash_mismatch": 409}

router = APIRouter(tags=["alerts"])


def alert_json(row: dict) -> dict:
    """An alerts row as the API shows it."""
    out = {k: v for k, v in row.items() if k != "position"}
    out["id"] = str(row["id"]) if row.get("id") else None
    for k in ("first_seen", "last_seen", "created_at", "updated_at"):
        out[k] = row[k].isoformat() if row.get(k) else None
    out["region_name"] = regions.name(row.get("region"))
    return out


@dataclass
class SummaryQuery:
    """Query parameters of the summary, shared by its JSON and SVG forms."""

    since: datetime | None = None
    until: datetime | None = None
    bucket: Literal["hour", "day", "week", "month"] = "day"
    level: Literal["province", "city"] = "province"
    producer: str | None = None


def visible_producer(caller: Caller | None, producer: str | None) -> str | None:
    """The producer filter a caller's reads get: its own for a producer, as asked for a regulator."""
    who = auth.require(caller, "regulator", "producer")
    if who.is_regulator:
        return producer
    if producer is not None and producer != who.actor_id:
        raise Refused("forbidden", f"a producer sees only its own alerts, not {producer}'s", field="producer")
    return who.actor_id


def unknown_alert(alert_id) -> Response:
    return not_found(f"there is no alert {alert_id}", "unknown_alert", "alert_id")


@router.get("/v1/alerts")
async def list_alerts(
    request: Request,
    kind: str | None = None,
    serial: str | None = None,
    producer: str | None = None,
    region: str | None = Query(None, description="GB/T 2260 code or prefix: 31 = Shanghai, 4403 = Shenzhen"),
    state: Literal["open", "acknowledged", "resolved"] | None = None,
    since: datetime | None = Query(None, description="alerts last seen at or after"),
    until: datetime | None = Query(None, description="alerts first seen before"),
    limit: int = Query(100, ge=1, le=MAX_PAGE),
    cursor: int | None = Query(None, ge=0, le=2**63 - 1, description="next_cursor of the previous page"),
    who: Caller | None = Depends(caller),
):
    """Alerts the caller may see, newest first, filtered; page with ``cursor``."""
    which = AlertFilter(kind, serial, visible_producer(who, producer), region, state, since, until)
    async with request.app.state.pool.connection() as conn:
        rows = await alert_queries.page(conn, which, limit, cursor)
    return OrjsonResponse({
        "alerts": [alert_json(r) for r in rows],
        "next_cursor": rows[-1]["position"] if len(rows) == limit else None,
    })


async def summarize(request: Request, q: SummaryQuery, producer: str | None) -> dict:
    """The summary of the alerts ``q`` covers (of ``producer``'s labels if given)."""
    which = AlertFilter(producer=producer, since=q.since, until=q.until)
    async with request.app.state.pool.connection() as conn:
        raw = await alert_queries.counts(conn, which, q.bucket, q.level)
    regions_out: dict[str | None, dict] = {}
    for r, kind, n in raw["by_region"]:
        entry = regions_out.setdefault(r, {"region": r, "name": regions.name(r), "total": 0, "by_kind": {}})
        entry["total"] += n
        entry["by_kind"][kind] = n
    return {
        "total": sum(n for _, n in raw["by_kind"]),
        "by_kind": dict(raw["by_kind"]),
        "by_state": dict(raw["by_state"]),
        "by_region": sorted(regions_out.values(), key=lambda e: -e["total"]),
        "series": [{"bucket": b.isoformat(), "kind": k, "count": n} for b, k, n in raw["series"]],
        "bucket": q.bucket,
        "level": q.level,
    }


@router.get("/v1/alerts/summary")
async def summary(request: Request, q: SummaryQuery = Depends(), who: Caller | None = Depends(caller)):
    """Counts by kind, by region and over time: the regulator's first view."""
    return OrjsonResponse(await summarize(request, q, visible_producer(who, q.producer)))


@router.get("/v1/alerts/summary.svg", response_class=Response, responses={200: {"content": {"image/svg+xml": {}}}})
async def summary_chart(request: Request, q: SummaryQuery = Depends(), who: Caller | None = Depends(caller)):
    """The summary as a self-contained SVG chart: alerts by kind over time, and by region."""
    mine = visible_producer(who, q.producer)
    data = await summarize(request, q, mine)
    title = f"Alerts of {mine}" if mine else "Alerts"
    return Response(alerts_chart.render(data, title=title), media_type="image/svg+xml")


@router.get("/v1/alerts/{alert_id}")
async def show(request: Request, alert_id: uuid.UUID, who: Caller | None = Depends(caller)):
    """One alert with its evidence (the ledger events or unknown-code scans behind it) and its transitions."""
    visible_producer(who, None)
    async with request.app.state.pool.connection() as conn:
        row = await alert_queries.one(conn, alert_id)
        if row is None:
            return unknown_alert(alert_id)
        if not who.may_see_producer(row["producer"]):
            raise Refused("forbidden", f"alert {alert_id} is not about {who.actor_id}'s labels", field="alert_id")
        evidence = await alert_queries.evidence(conn, row)
        transitions = await alert_queries.transitions(conn, alert_id)
    out = alert_json(row)
    out["evidence_events"] = [{**e, "occurred_at": e["occurred_at"].isoformat()} for e in evidence]
    out["transitions"] = [{**t, "occurred_at": t["occurred_at"].isoformat()} for t in transitions]
    return OrjsonResponse(out)


def check_names_alert(event, row: dict) -> None:
    """Refuse a transition event whose producer, kind or serial is not the alert's."""
    p = event.payload
    if p.get("producer") != row["producer"]:
        raise Refused("invalid_field", f"the alert's producer is {row['producer']}, the event names {p.get('producer')}", field="producer")
    if event.kind == "AlertAcknowledged" and (p.get("alert_kind") != row["kind"] or p.get("serial") != row["serial"]):
        raise Refused("invalid_field", f"the alert is {row['kind']} on {row['serial']}, the event names {p.get('alert_kind')} on {p.get('serial')}",
                      field="alert_kind" if p.get("alert_kind") != row["kind"] else "serial")


@router.post("/v1/alerts/{alert_id}/transitions")
async def transition(request: Request, alert_id: uuid.UUID, item: EventIn):
    """Append one signed AlertAcknowledged / AlertResolved event of this alert to the ledger.

    The event's own signature is the authentication; the ledger checks the
    signer's role, the chain and the lifecycle (acknowledge before resolve).
    """
    signed = decode_event(item)
    e = signed.event
    if e.subject_type != "alert" or e.subject != str(alert_id) or e.kind not in TRANSITION_KINDS:
        raise Refused("invalid_field", f"the event must be an AlertAcknowledged or AlertResolved of alert {alert_id}", field="subject")
    async with request.app.state.pool.connection() as conn:
        row = await alert_queries.one(conn, alert_id)
    if row is None:
        return unknown_alert(alert_id)
    check_names_alert(e, row)
    (result,) = await run_in_threadpool(request.app.state.ledger.append, [signed])
    log.info("alert_transition_submitted", alert_id=str(alert_id), event_id=e.event_id, kind=e.kind, actor=e.actor, status=result.status)
    if result.status == "refused":
        err = result.error
        return problem(TRANSITION_STATUS.get(err.code, 400), "transition refused", err.detail, code=err.code, field=err.field)
    return OrjsonResponse({"alert_id": str(alert_id), "result": result.as_dict()})
