"""The HTTP API (FastAPI): write events, verify labels, record consumer scans.

Run with ``python -m traceledger.api`` (uvicorn, see :mod:`traceledger.api.server`).
OpenAPI at /openapi.json. Errors are RFC 9457 problem+json
(:mod:`traceledger.api.problems`); an unknown serial is a normal ``unknown``
verdict, not a 404.

:func:`create_app` only assembles: the lifespan opens the ledger and the
database pool into ``app.state`` (read by :mod:`traceledger.api.dependencies`),
then come the middleware, the exception handlers and one router per resource.
"""

from __future__ import annotations

import asyncio
import functools
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from ledger import channel_state, migrate
from ledger.config import Settings
from ledger.inbox_group import GroupCommit
from ledger.logging_setup import configure, get_logger
from ledger.scan_recording import start_recorder
from ledger.service import Ledger
from projections.integrity_sweep import run_sweeper
from traceledger.api import (
    actors,
    alerts,
    batches,
    containers,
    epcis,
    epcis_capture,
    epcis_query,
    epcis_subscriptions,
    epcis_webhooks,
    errors,
    events,
    health,
    labels,
    merkle_log,
    shopper,
    trail,
)
from traceledger.api.admission import Admission
from traceledger.api.fast_path import FastGet
from traceledger.api.limits import MAX_BODY_BYTES, ControlCharacterGuard, DeclaredBodyLimit
from traceledger.api.metrics import RequestMetrics
from traceledger.api.metrics import router as metrics_router
from traceledger.api.problems import PROBLEM_RESPONSES
from traceledger.api.supervisor_death import end_with_supervisor
from traceledger.api.view_batch import ViewBatcher

log = get_logger("api")

# In the order they were mounted before the split (route matching is first come, first served).
ROUTERS = (alerts.router, merkle_log.router, *shopper.ROUTERS, trail.router, containers.router, epcis.router, epcis_capture.router,
           epcis_query.router, epcis_subscriptions.router, health.router, events.router, batches.router, actors.router, labels.router)


def prepare_database(settings: Settings) -> bytes:
    """Apply pending migrations (``ledger.migrate``: serialized, idempotent), return the shopper channels' secret."""
    migrate.upgrade(settings.pg_conninfo)
    with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
        return channel_state.channel_secret(conn)


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings: Settings = app.state.settings
    configure()
    if settings.api_workers > 1:
        end_with_supervisor()
    state = app.state
    state.ledger = Ledger(settings)
    state.pool = AsyncConnectionPool(settings.pg_conninfo, min_size=4, max_size=16, kwargs={"autocommit": True}, open=False,
                                     timeout=10)  # with the database down: 503 after 10 s, not 30
    await state.pool.open()
    state.inbox = GroupCommit(state.pool)  # the consumer path's durable writes, many requests per commit
    state.views = ViewBatcher(state.ledger.app, state.pool)  # concurrent label lookups, many per statement
    state.scan_views = ViewBatcher(state.ledger.app, state.pool, with_inbox=True)  # the same, for scans' answers
    state.channel_secret = prepare_database(settings)
    state.producer_names, state.sync_pool = {}, None
    recorder = start_recorder(state.ledger, settings)
    log.info("api_started", pg_db=settings.pg_db, gateway=recorder.gateway.actor if recorder else None)
    webhooks = epcis_webhooks.start(state)
    # Re-hashes stored chains off the read path; one worker per database sweeps (projections/integrity_sweep.py).
    sweeper = asyncio.create_task(run_sweeper(state.ledger.app, settings.pg_conninfo, settings.integrity_sweep_seconds))
    yield
    sweeper.cancel()
    webhooks.cancel()
    if recorder:
        recorder.stop.set()
    if state.sync_pool is not None:
        state.sync_pool.close()
    await state.pool.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API app over ``settings`` (default: from the environment)."""
    app = FastAPI(title="traceledger", version="0.1.0", lifespan=lifespan, max_body_size=2 * MAX_BODY_BYTES, responses=PROBLEM_RESPONSES,
                  description="Tamper-evident traceability ledger for anti-counterfeit labels")
    app.state.settings = settings or Settings.from_env()
    app.add_middleware(DeclaredBodyLimit, limit=MAX_BODY_BYTES)
    app.add_middleware(ControlCharacterGuard, exempt=("/01/", "/epcis/", "/v1/epcis/events"))
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(metrics_router)  # GET /metrics (Prometheus), not in the OpenAPI document
    # The hottest route: answered by the same function as its FastAPI route, ahead of routing and most of the middleware.
    app.add_middleware(FastGet, prefix="/v1/labels/", handler=functools.partial(labels.label_json, app.state),
                       exception_handlers=app.exception_handlers)
    # Beyond a worker's capacity, 503 at once, before any other work (and nothing written).
    app.add_middleware(Admission, max_inflight=app.state.settings.api_max_inflight, max_queue=app.state.settings.api_max_queue)
    # Outermost: counts every request, the fast path's and the refused ones too (traceledger/api/metrics.py).
    app.add_middleware(RequestMetrics, fast_routes={"/v1/labels/": "/v1/labels/{serial}"})
    return app
