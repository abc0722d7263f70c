"""The HTTP API (FastAPI): write events, verify labels, record consumer scans.

Run with ``python -m traceledger.api`` (uvicorn). OpenAPI at /openapi.json.
Errors are RFC 9457 problem+json; an unknown serial is a normal ``unknown``
verdict, not a 404.
"""

from __future__ import annotations

import base64
import binascii
import threading
from contextlib import asynccontextmanager
from typing import Literal

import psycopg
import uvicorn
from eventsourcing import persistence as es_persistence
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from psycopg_pool import AsyncConnectionPool
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger import gs1, scan_inbox
from ledger.transparency import log as global_log
from ledger.errors import Refused
from ledger.events import SignedEvent, decode_signed, validate_actor_id, validate_channel, validate_region
from ledger.keys import KeyPair
from ledger.service import Ledger
from projections import verification
from traceledger import api_aggregation, api_alerts, api_epcis, auth
from projections.checked_view import checked_view
from traceledger.api_log import log_router
from traceledger.api_consumer import build_router as build_consumer_router
from traceledger.api_trail import trail_router
from ledger.config import Settings
from ledger.logging_setup import configure, get_logger
from traceledger.fast_path import FastGet
from traceledger.responses import OrjsonResponse, json_bytes
from traceledger.supervisor_death import end_with_supervisor

log = get_logger("api")

MAX_EVENTS_PER_REQUEST = 5000
MAX_BODY_BYTES = 16 * 1024 * 1024
PROBLEM = "application/problem+json"


# ------------------------------------------------------------------ models


class EventIn(BaseModel):
    body: str = Field(description="base64 of the event's canonical Avro bytes")
    signature: str = Field(description="base64 of the Ed25519 signature of body")


class EventsIn(BaseModel):
    events: list[EventIn]
    atomic: bool = Field(default=False, description="all or nothing: one refusal and no event is written (always so for pack/unpack batches)")


class SubjectRef(BaseModel):
    type: Literal["label", "lot", "actor", "alert", "container"]
    subject: str


class HeadsIn(BaseModel):
    subjects: list[SubjectRef]


class ScanIn(BaseModel):
    channel: str = "web"
    region: str | None = None
    lat: float | None = None
    lon: float | None = None
    session: str | None = Field(default=None, max_length=128)


# ------------------------------------------------------------------ helpers


class Problem(BaseModel):
    """An RFC 9457 problem: how every error is answered."""

    type: str
    title: str
    status: int
    detail: str
    code: str | None = None
    field: str | None = None


# Documented on every operation (OpenAPI), so clients and schema checkers know the
# error shape; it replaces FastAPI's default 422 body, which this API never sends.
PROBLEM_RESPONSES = {
    status: {"description": text, "content": {PROBLEM: {"schema": Problem.model_json_schema()}}}
    for status, text in [(400, "input refused"), (401, "not authenticated"), (403, "forbidden"), (404, "not found"),
                         (413, "request too large"), (422, "invalid request"), (429, "too many attempts"),
                         (503, "database unavailable or out of space")]
}


def problem(status: int, title: str, detail: str, *, code: str | None = None, field: str | None = None) -> JSONResponse:
    body = {"type": f"https://traceledger.example/problems/{code or 'error'}", "title": title, "status": status, "detail": detail}
    if code:
        body["code"] = code
    if field:
        body["field"] = field
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


def decode_item(item: EventIn) -> SignedEvent | Refused:
    try:
        body = base64.b64decode(item.body, validate=True)
        signature = base64.b64decode(item.signature, validate=True)
    except (binascii.Error, ValueError):
        return Refused("malformed_encoding", "body and signature must be base64", field="body")
    try:
        return decode_signed(body, signature)
    except Refused as refusal:
        return refusal


class DeclaredBodyLimit:
    """Refuse a request whose Content-Length is over the limit, as problem+json.

    A plain ASGI middleware (no per-request task group); FastAPI's
    ``max_body_size`` still guards bodies sent without a length.
    """

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                    response = problem(413, "request too large", f"at most {self.limit} bytes per request", code="too_large")
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


# Any fixed number: the advisory lock that lets one API worker process at a time record scans.
_RECORDER_LOCK = 0x7363616E73


def _record_scans(recorder: scan_inbox.ScanRecorder, settings: Settings) -> None:
    """Run the scan recorder; with several worker processes, only in the one holding the lock.

    Two recorders would stay correct (a batch's tracking record is unique) but
    would keep losing races to each other. The lock is a session lock: if its
    holder dies, another worker's thread takes over.
    """
    if settings.api_workers <= 1:
        recorder.run()
        return
    while not recorder.stop.is_set():
        try:
            with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
                conn.execute("SELECT pg_advisory_lock(%s)", (_RECORDER_LOCK,))
                log.info("scan_recorder_active")
                recorder.run()
        except psycopg.OperationalError as exc:
            log.warning("scan_recorder_lock_lost", error=str(exc))
            recorder.stop.wait(2.0)


# ------------------------------------------------------------------ app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    state: dict = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        configure()
        if settings.api_workers > 1:
            end_with_supervisor()
        state["ledger"] = Ledger(settings)
        state["pool"] = AsyncConnectionPool(settings.pg_conninfo, min_size=4, max_size=16, kwargs={"autocommit": True}, open=False,
                                            timeout=10)  # with the database down: 503 after 10 s, not 30
        await state["pool"].open()
        with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
            scan_inbox.ensure_schema(conn)
            global_log.ensure_schema(conn)
            verification.ensure_schema(conn)
        recorder = None
        if settings.gateway_key:
            recorder = scan_inbox.ScanRecorder(state["ledger"], KeyPair.load(settings.gateway_key), settings.pg_conninfo, batch=settings.scan_batch)
            threading.Thread(target=_record_scans, args=(recorder, settings), name="scan-recorder", daemon=True).start()
        else:
            log.warning("no_gateway_key", detail="scans are accepted into the inbox but not recorded until TRACELEDGER_GATEWAY_KEY is set")
        log.info("api_started", pg_db=settings.pg_db, gateway=recorder.gateway.actor if recorder else None)
        yield
        if recorder:
            recorder.stop.set()
        await state["pool"].close()

    app = FastAPI(title="traceledger", version="0.1.0", lifespan=lifespan, max_body_size=2 * MAX_BODY_BYTES, responses=PROBLEM_RESPONSES,
                  description="Tamper-evident traceability ledger for anti-counterfeit labels")

    app.add_middleware(DeclaredBodyLimit, limit=MAX_BODY_BYTES)
    # Routers take ``Depends(state["caller"])`` for who signed the request (None if nobody did).
    state["caller"] = auth.caller_dependency(lambda: state["ledger"].actor)
    app.include_router(api_alerts.router(lambda: state["pool"], state["caller"], lambda: state["ledger"]))  # /v1/alerts...
    app.include_router(log_router(settings))  # /v1/log/*, /v1/labels/{serial}/proof
    app.include_router(build_consumer_router(settings, state))  # /, /01/{gtin}/21/{serial}, PINs, SMS, voice
    app.include_router(trail_router(state))  # /v1/labels/{serial}/trail (signed: producer or regulator)
    app.include_router(api_aggregation.router(settings, state))  # /v1/containers/{sscc}, /v1/lots/{gtin}/{lot}/impact
    app.include_router(api_epcis.router(settings, state))  # /v1/epcis/events, /v1/epcis/capture

    @app.exception_handler(Refused)
    async def refused_handler(request: Request, exc: Refused):
        if exc.code == "unauthenticated":
            response = problem(401, "not authenticated", exc.detail, code=exc.code, field=exc.field)
            response.headers["WWW-Authenticate"] = auth.SCHEME
            return response
        if exc.code == "forbidden":
            return problem(403, "forbidden", exc.detail, code=exc.code, field=exc.field)
        return problem(400, "input refused", exc.detail, code=exc.code, field=exc.field)

    @app.exception_handler(RequestValidationError)
    async def validation_handler(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(x) for x in first.get("loc", ()) if x != "body") or None
        return problem(422, "invalid request", first.get("msg", "invalid request"), code="invalid_request", field=field)

    @app.exception_handler(StarletteHTTPException)
    async def http_handler(request: Request, exc: StarletteHTTPException):
        return problem(exc.status_code, "error", str(exc.detail), code="http_error")

    @app.exception_handler(psycopg.OperationalError)
    async def db_down_handler(request: Request, exc: psycopg.OperationalError):
        # The event store wraps psycopg's error: look at the cause for the real one.
        if isinstance(exc, psycopg.errors.DiskFull) or isinstance(exc.__cause__, psycopg.errors.DiskFull):
            log.error("database_disk_full", error=str(exc))
            return problem(503, "database out of space", "the ledger database has no disk space left; nothing was written", code="disk_full")
        log.error("database_unavailable", error=str(exc))
        return problem(503, "database unavailable", "the ledger database cannot be reached; nothing was written", code="unavailable")

    # The event store (eventsourcing) re-raises psycopg's connection errors as its own.
    for store_error in (es_persistence.OperationalError, es_persistence.InterfaceError):
        app.add_exception_handler(store_error, db_down_handler)

    @app.get("/healthz")
    async def healthz():
        async with state["pool"].connection() as conn:
            await conn.execute("SELECT 1")
        return {"ok": True}

    @app.post("/v1/events")
    def post_events(payload: EventsIn):
        """Append a batch of client-signed events; each gets its own result."""
        if len(payload.events) > MAX_EVENTS_PER_REQUEST:
            raise Refused("too_many_events", f"at most {MAX_EVENTS_PER_REQUEST} events per request", field="events")
        batch = [decode_item(item) for item in payload.events]
        results = [r.as_dict() for r in state["ledger"].append(batch, atomic=payload.atomic)]
        accepted = sum(r["status"] in ("accepted", "duplicate") for r in results)
        log.info("events_appended", submitted=len(results), accepted=accepted, refused=len(results) - accepted)
        # Plain dicts of str/int/None: orjson directly, not FastAPI's per-field jsonable_encoder walk.
        return OrjsonResponse({"results": results, "accepted": accepted, "refused": len(results) - accepted})

    @app.post("/v1/heads")
    def post_heads(payload: HeadsIn):
        """The write model's current head of each subject (null if none)."""
        if len(payload.subjects) > MAX_EVENTS_PER_REQUEST:
            raise Refused("too_many_subjects", f"at most {MAX_EVENTS_PER_REQUEST} subjects per request", field="subjects")
        return {"heads": state["ledger"].heads([(s.type, s.subject) for s in payload.subjects])}

    @app.get("/v1/actors/{actor_id}")
    def get_actor(actor_id: str):
        validate_actor_id(actor_id, "actor_id")
        actor = state["ledger"].actor(actor_id)
        if actor is None:
            return problem(404, "not found", f"actor {actor_id} is not registered", code="unknown_actor", field="actor_id")
        return {
            "actor_id": actor.actor_id, "role": actor.role, "name": actor.name, "key_id": actor.key_id,
            "public_key": actor.public_key.hex(), "gtin_prefixes": list(actor.gtin_prefixes), "revoked": actor.revoked,
        }

    def with_uri(out: dict, serial: str) -> dict:
        if out.get("gtin"):
            out["uri"] = gs1.digital_link_uri(out["gtin"], serial, settings.resolver_host)
        return out

    async def label_json(serial: str) -> bytes:
        gs1.validate_serial(serial)
        async with state["pool"].connection() as conn:
            # One round trip; never "genuine" when the ledger's stored chain no longer matches what it published.
            out = with_uri(await checked_view(state["ledger"].app, conn, serial), serial)
        return json_bytes(await state["public_view"](out))

    # Read endpoints are async on an async pool: no thread hop per request.
    @app.get("/v1/labels/{serial}")
    async def get_label(serial: str):
        """The public verification view of a label: what a consumer needs, nothing private
        (the full trail is ``GET /v1/labels/{serial}/trail``, signed by its producer or a regulator)."""
        return Response(await label_json(serial), media_type="application/json")

    # The hottest route: answered by the same function, ahead of routing and most of the middleware.
    app.add_middleware(FastGet, prefix="/v1/labels/", handler=label_json, exception_handlers=app.exception_handlers)

    @app.post("/v1/labels/{serial}/scans")
    async def post_scan(serial: str, scan: ScanIn | None = None):
        """A consumer's scan: answered now, recorded on the ledger by the gateway worker."""
        gs1.validate_serial(serial)
        scan = scan or ScanIn()
        validate_channel(scan.channel)
        validate_region(scan.region, required=False)
        lat = round(scan.lat, 2) if scan.lat is not None else None
        lon = round(scan.lon, 2) if scan.lon is not None else None
        if (lat is not None and abs(lat) > 90) or (lon is not None and abs(lon) > 180):
            raise Refused("invalid_field", "lat/lon out of range", field="lat")
        async with state["pool"].connection() as conn:
            accepted = await scan_inbox.accept_async(conn, serial, channel=scan.channel, region=scan.region, lat=lat, lon=lon, session=scan.session)
            out = with_uri(await checked_view(state["ledger"].app, conn, serial, with_inbox=True), serial)
            if out["verdict"] != "unknown":
                out["scan_count"] += out["unprojected"]
                out["first_scanned_at"] = out["first_scanned_at"] or accepted.occurred_at.isoformat()
        log.info("scan_accepted", serial=serial, event_id=accepted.event_id, verdict=out["verdict"], channel=scan.channel)
        return OrjsonResponse(await state["public_view"](out) | {"scan_id": accepted.event_id})

    return app


app = create_app()


def main() -> None:
    settings = Settings.from_env()
    configure()
    uvicorn.run("traceledger.api:app", host=settings.listen_host, port=settings.listen_port, log_level="warning",
                workers=settings.api_workers)


if __name__ == "__main__":
    main()
