"""Alert endpoints: list, show, summary (JSON and SVG), transitions (an APIRouter included by traceledger.api).

Reads the detector's ``alerts`` schema on the API's async pool. Every read
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

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Literal

import psycopg
from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, Response
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from consumers.exactly_once import offsets_sql
from ledger import regions
from ledger.errors import Refused
from ledger.events import ALERT_KINDS as TRANSITION_KINDS, decode_signed
from projections import alerts as model
from projections.detection_config import ALERT_KINDS
from traceledger import alerts_chart, auth
from traceledger.auth import Caller
from ledger.logging_setup import get_logger
from traceledger.responses import OrjsonResponse

log = get_logger("api")

MAX_PAGE = 1000
_COLUMNS = (
    "id AS position, alert_id AS id, dedupe_key, kind, severity, serial, producer, gtin, region, province, lat, lon, gateway, "
    "evidence, sightings, first_seen, last_seen, state, resolution, detail, created_at, updated_at"
)
# A refused transition's HTTP status by the ledger's code (anything else is 400).
_TRANSITION_STATUS = {"not_authorized": 403, "revoked": 403, "revoked_key": 403, "invalid_transition": 409,
                      "unknown_subject": 409, "stale_head": 409, "chain_gap": 409, "prev_hash_mismatch": 409}


class SignedEventIn(BaseModel):
    body: str = Field(description="base64 of the event's canonical Avro bytes")
    signature: str = Field(description="base64 of the Ed25519 signature of body")


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


def _filters(kind, serial, producer, region, state, since, until) -> tuple[list[str], list]:
    where, args = [], []
    if kind is not None:
        if kind not in ALERT_KINDS:
            raise Refused("invalid_field", f"kind must be one of {', '.join(ALERT_KINDS)}", field="kind")
        where.append("kind = %s"); args.append(kind)
    if serial is not None:
        where.append("serial = %s"); args.append(serial)
    if producer is not None:
        where.append("producer = %s"); args.append(producer)
    if region is not None:
        code = regions.normalize(region)
        if code is None:
            raise Refused("invalid_field", "region must be a GB/T 2260 code or prefix of 2-12 digits", field="region")
        where.append("region LIKE %s"); args.append(code + "%")
    if state is not None:
        where.append("state = %s"); args.append(state)
    if since is not None:
        where.append("last_seen >= %s"); args.append(since)
    if until is not None:
        where.append("first_seen < %s"); args.append(until)
    return where, args


def router(
    get_pool: Callable[[], AsyncConnectionPool],
    caller: Callable,
    get_ledger: Callable,
    schema: str = model.DEFAULT_SCHEMA,
) -> APIRouter:
    """The alert routes on the pool and ledger the callables return once the app runs.

    ``caller`` is the app's FastAPI dependency yielding the request's
    :class:`traceledger.auth.Caller` (None when unsigned).
    """
    api = APIRouter(tags=["alerts"])
    s = schema
    ready = {"schema": False}

    async def connection():
        # The detector creates its schema; an API started first creates it too
        # (empty), so that reads answer "no alerts" rather than failing.
        pool = get_pool()
        if not ready["schema"]:
            async with pool.connection() as conn:
                try:
                    async with conn.transaction():
                        await conn.execute(offsets_sql(s) + model.schema_sql(s))
                except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):
                    pass
            ready["schema"] = True
        return pool.connection()

    async def fetch_alert(cur, alert_id: uuid.UUID) -> dict | None:
        return await (await cur.execute(f"SELECT {_COLUMNS} FROM {s}.alerts WHERE alert_id = %s", (alert_id,))).fetchone()

    @api.get("/v1/alerts")
    async def list_alerts(
        kind: str | None = None,
        serial: str | None = None,
        producer: str | None = None,
        region: str | None = Query(None, description="GB/T 2260 code or prefix: 31 = Shanghai, 4403 = Shenzhen"),
        state: Literal["open", "acknowledged", "resolved"] | None = None,
        since: datetime | None = Query(None, description="alerts last seen at or after"),
        until: datetime | None = Query(None, description="alerts first seen before"),
        limit: int = Query(100, ge=1, le=MAX_PAGE),
        cursor: int | None = Query(None, description="next_cursor of the previous page"),
        who: Caller | None = Depends(caller),
    ):
        """Alerts the caller may see, newest first, filtered; page with ``cursor``."""
        where, args = _filters(kind, serial, visible_producer(who, producer), region, state, since, until)
        if cursor is not None:
            where.append("id < %s"); args.append(cursor)
        sql = f"SELECT {_COLUMNS} FROM {s}.alerts" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY position DESC LIMIT %s"
        async with await connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = await (await cur.execute(sql, args + [limit])).fetchall()
        return OrjsonResponse({
            "alerts": [alert_json(r) for r in rows],
            "next_cursor": rows[-1]["position"] if len(rows) == limit else None,
        })

    async def summarize(since, until, bucket, level, producer) -> dict:
        where, args = _filters(None, None, producer, None, None, since, until)
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        place = "province" if level == "province" else "left(region, 4)"
        async with await connection() as conn, conn.cursor() as cur:
            by_kind = await (await cur.execute(f"SELECT kind, count(*) FROM {s}.alerts{cond} GROUP BY kind ORDER BY 2 DESC, 1", args)).fetchall()
            by_state = await (await cur.execute(f"SELECT state, count(*) FROM {s}.alerts{cond} GROUP BY state", args)).fetchall()
            by_region = await (await cur.execute(
                f"SELECT {place} AS r, kind, count(*) FROM {s}.alerts{cond} GROUP BY r, kind ORDER BY r NULLS LAST, kind", args)).fetchall()
            series = await (await cur.execute(
                f"SELECT date_trunc('{bucket}', first_seen) AS b, kind, count(*) FROM {s}.alerts{cond} GROUP BY b, kind ORDER BY b, kind", args)).fetchall()
        regions_out: dict[str | None, dict] = {}
        for r, kind, n in by_region:
            entry = regions_out.setdefault(r, {"region": r, "name": regions.name(r), "total": 0, "by_kind": {}})
            entry["total"] += n
            entry["by_kind"][kind] = n
        return {
            "total": sum(n for _, n in by_kind),
            "by_kind": dict(by_kind),
            "by_state": dict(by_state),
            "by_region": sorted(regions_out.values(), key=lambda e: -e["total"]),
            "series": [{"bucket": b.isoformat(), "kind": k, "count": n} for b, k, n in series],
            "bucket": bucket,
            "level": level,
        }

    @api.get("/v1/alerts/summary")
    async def summary(q: SummaryQuery = Depends(), who: Caller | None = Depends(caller)):
        """Counts by kind, by region and over time: the regulator's first view."""
        return OrjsonResponse(await summarize(q.since, q.until, q.bucket, q.level, visible_producer(who, q.producer)))

    @api.get("/v1/alerts/summary.svg", response_class=Response, responses={200: {"content": {"image/svg+xml": {}}}})
    async def summary_chart(q: SummaryQuery = Depends(), who: Caller | None = Depends(caller)):
        """The summary as a self-contained SVG chart: alerts by kind over time, and by region."""
        mine = visible_producer(who, q.producer)
        data = await summarize(q.since, q.until, q.bucket, q.level, mine)
        title = f"Alerts of {mine}" if mine else "Alerts"
        return Response(alerts_chart.render(data, title=title), media_type="image/svg+xml")

    @api.get("/v1/alerts/{alert_id}")
    async def show(alert_id: uuid.UUID, who: Caller | None = Depends(caller)):
        """One alert with its evidence (the ledger events or unknown-code scans behind it) and its transitions."""
        visible_producer(who, None)
        async with await connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            row = await fetch_alert(cur, alert_id)
            if row is None:
                return _not_found(alert_id)
            if not who.may_see_producer(row["producer"]):
                raise Refused("forbidden", f"alert {alert_id} is not about {who.actor_id}'s labels", field="alert_id")
            if row["serial"]:
                evidence = await (await cur.execute(
                    f"SELECT event_id, seq, kind, actor, region, occurred_at, log_index FROM {s}.events "
                    "WHERE subject_type = 'label' AND subject = %s AND event_id = ANY(%s) ORDER BY seq",
                    (row["serial"], row["evidence"]))).fetchall()
            else:
                evidence = await (await cur.execute(
                    f"SELECT event_id, serial, channel, region, occurred_at FROM {s}.unknown_scans WHERE event_id = ANY(%s) ORDER BY inbox_id",
                    (row["evidence"],))).fetchall()
            transitions = await (await cur.execute(
                f"SELECT seq, event_id, kind, actor, resolution, note, occurred_at, log_index, status, reason "
                f"FROM {s}.alert_transitions WHERE alert_id = %s ORDER BY seq", (alert_id,))).fetchall()
        out = alert_json(row)
        out["evidence_events"] = [{**e, "occurred_at": e["occurred_at"].isoformat()} for e in evidence]
        out["transitions"] = [{**t, "occurred_at": t["occurred_at"].isoformat()} for t in transitions]
        return OrjsonResponse(out)

    @api.post("/v1/alerts/{alert_id}/transitions")
    async def transition(alert_id: uuid.UUID, item: SignedEventIn):
        """Append one signed AlertAcknowledged / AlertResolved event of this alert to the ledger.

        The event's own signature is the authentication; the ledger checks the
        signer's role, the chain and the lifecycle (acknowledge before resolve).
        """
        signed = _decode(item)
        e, p = signed.event, signed.event.payload
        if e.subject_type != "alert" or e.subject != str(alert_id) or e.kind not in TRANSITION_KINDS:
            raise Refused("invalid_field", f"the event must be an AlertAcknowledged or AlertResolved of alert {alert_id}", field="subject")
        async with await connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            row = await fetch_alert(cur, alert_id)
        if row is None:
            return _not_found(alert_id)
        if p.get("producer") != row["producer"]:
            raise Refused("invalid_field", f"the alert's producer is {row['producer']}, the event names {p.get('producer')}", field="producer")
        if e.kind == "AlertAcknowledged" and (p.get("alert_kind") != row["kind"] or p.get("serial") != row["serial"]):
            raise Refused("invalid_field", f"the alert is {row['kind']} on {row['serial']}, the event names {p.get('alert_kind')} on {p.get('serial')}",
                          field="alert_kind" if p.get("alert_kind") != row["kind"] else "serial")
        (result,) = await run_in_threadpool(get_ledger().append, [signed])
        log.info("alert_transition_submitted", alert_id=str(alert_id), event_id=e.event_id, kind=e.kind, actor=e.actor, status=result.status)
        if result.status == "refused":
            err = result.error
            status = _TRANSITION_STATUS.get(err.code, 400)
            return _problem(status, err.code, err.detail, err.field)
        return OrjsonResponse({"alert_id": str(alert_id), "result": result.as_dict()})

    return api


def _decode(item: SignedEventIn):
    try:
        body = base64.b64decode(item.body, validate=True)
        signature = base64.b64decode(item.signature, validate=True)
    except (binascii.Error, ValueError):
        raise Refused("malformed_encoding", "body and signature must be base64", field="body") from None
    return decode_signed(body, signature)


def _problem(status: int, code: str, detail: str, field: str | None, title: str = "transition refused") -> JSONResponse:
    body = {"type": f"https://traceledger.example/problems/{code}", "title": title, "status": status,
            "detail": detail, "code": code}
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def _not_found(alert_id) -> JSONResponse:
    return _problem(404, "unknown_alert", f"there is no alert {alert_id}", "alert_id", "not found")
