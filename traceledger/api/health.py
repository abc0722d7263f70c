"""``GET /healthz`` (liveness: the process answers) and ``GET /readyz`` (readiness: the
database answers, a Kafka broker accepts connections, the verification projectors
trail the log by no more than ``ready_max_lag`` entries, and no record has stayed parked
(waiting for its label's batch event) longer than ``ready_max_parked_seconds``).

Liveness touches nothing outside the process, so an orchestrator never restarts an API
because its database is away; readiness is what a load balancer routes by.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Depends, Request
from psycopg_pool import AsyncConnectionPool

from ledger.health import ping, projector_lag, write_store_answers
from projections.ops_metrics import parked
from traceledger.api.dependencies import pool_of
from traceledger.api.errors import purge_broken_connections
from traceledger.api.problems import problem

router = APIRouter()

# (monotonic time, checks) of the last readiness answer: probes may come often, the lag is a count.
_CACHE_S = 1.0
_last: dict[str, tuple[float, dict]] = {}


@router.get("/healthz")
async def healthz():
    return {"ok": True}


async def _broker_answers(bootstrap: str) -> bool:
    """Any bootstrap broker accepts a TCP connection within a second (the API itself has no Kafka login)."""
    for hostport in bootstrap.split(","):
        host, _, port = hostport.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 1.0)
        except (OSError, asyncio.TimeoutError, ValueError):
            continue
        writer.close()
        return True
    return False


async def _checks(request: Request, pool: AsyncConnectionPool) -> dict:
    settings = request.app.state.settings
    checks: dict = {"database": "ok", "broker": "ok", "projector_lag": None, "parked": None}
    try:
        async with pool.connection(timeout=2) as conn:
            await ping(conn)
            checks["projector_lag"] = await projector_lag(conn, settings.label_topic)
            # The verification projectors' parked records (what the API answers from); the detector's are in the metrics.
            n, age = (await parked(conn, ("verification",))).get("verification", (0, 0.0))
            checks["parked"] = {"records": n, "oldest_seconds": round(age, 1)}
        await asyncio.to_thread(write_store_answers, request.app.state.ledger)
    except Exception as exc:  # noqa: BLE001 -- any failure (the pool timing out too) means not ready, reported
        checks["database"] = f"unavailable: {type(exc).__name__}"
        purge_broken_connections(request)
    if not await _broker_answers(settings.kafka_bootstrap):
        checks["broker"] = "unreachable"
    return checks


@router.get("/readyz")
async def readyz(request: Request, pool: AsyncConnectionPool = Depends(pool_of)):
    now = time.monotonic()
    cached = _last.get("checks")
    if cached and now - cached[0] < _CACHE_S:
        checks = cached[1]
    else:
        checks = await _checks(request, pool)
        _last["checks"] = (now, checks)
    settings = request.app.state.settings
    bound, parked_bound = settings.ready_max_lag, settings.ready_max_parked_seconds
    failing = [name for name in ("database", "broker") if checks[name] != "ok"]
    if checks["projector_lag"] is not None and checks["projector_lag"] > bound:
        failing.append("projector_lag")
    # A label event whose batch never comes parks forever: past the bound someone must look (docs/operations.md).
    if checks["parked"] is not None and checks["parked"]["oldest_seconds"] > parked_bound:
        failing.append("parked")
    if failing:
        return problem(503, "not ready", f"failing: {', '.join(failing)} (projector lag bound {bound}, "
                       f"parked at most {parked_bound:g} s)", code="not_ready", extra={"checks": checks})
    return {"ready": True, "checks": checks, "projector_lag_bound": bound, "parked_seconds_bound": parked_bound}
