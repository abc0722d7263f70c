"""The API's Prometheus metrics: a request-counting ASGI middleware and ``GET /metrics``.

The middleware is the outermost layer, so it also counts what ``FastGet`` answers
ahead of routing (its path is labelled with the route template it serves). It keeps
per-worker tallies per (route, method, status), folded into the metrics once a
second, so a request costs a clock read, a dictionary lookup and three additions
(measured in bench/metrics_overhead.py). Route labels are templates, never raw paths: a
scanner of random URLs cannot blow up the series count (unmatched paths share one).
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client import multiprocess as prom_multiprocess
from psycopg_pool import AsyncConnectionPool

from ledger import metrics
from projections.ops_metrics import alerts_by_kind, parked, quarantined
from traceledger.api.dependencies import pool_of

router = APIRouter()


# Folded into the Prometheus metrics at most this often (and at each scrape).
FOLD_S = 1.0
_BOUNDS = metrics.LATENCY_BUCKETS
_instances: list["RequestMetrics"] = []


class RequestMetrics:
    """ASGI middleware: requests by route template, method and status; latency by route; 429s by route.

    A request only adds to plain per-worker tallies (an event loop is one thread: no
    lock); :meth:`fold` moves them into the Prometheus metrics once a second and at
    each scrape, so the hot path never takes the metrics' locks (measured: a
    prometheus-client ``inc`` plus ``observe`` per request cost several times more).
    """

    def __init__(self, app, fast_routes: dict[str, str] | None = None):
        self.app = app
        self.fast_routes = fast_routes or {}  # path prefix -> template, for routes answered ahead of routing
        self.pending: dict[tuple[str, str, int], list] = {}  # key -> [count, seconds, per-bucket counts]
        self.folded_at = time.perf_counter()
        _instances.append(self)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            end = time.perf_counter()
            key = (self._route(scope), scope["method"], status)
            tally = self.pending.get(key)
            if tally is None:
                tally = self.pending[key] = [0, 0.0, [0] * (len(_BOUNDS) + 1)]
            tally[0] += 1
            tally[1] += end - start
            tally[2][bisect_left(_BOUNDS, end - start)] += 1
            if end - self.folded_at > FOLD_S:
                self.fold()

    def _route(self, scope) -> str:
        route = scope.get("route")
        if route is not None:
            return getattr(route, "path", "unmatched")
        path = scope["path"]
        for prefix, template in self.fast_routes.items():
            if path.startswith(prefix) and "/" not in path[len(prefix):]:
                return template
        return "unmatched"

    def fold(self) -> None:
        """Move the tallies into the Prometheus metrics."""
        pending, self.pending = self.pending, {}
        self.folded_at = time.perf_counter()
        for (route, method, status), (count, seconds, buckets) in pending.items():
            metrics.REQUESTS.labels(route, method, str(status)).inc(count)
            metrics.observe_many(metrics.LATENCY.labels(route), seconds, buckets)
            if status == 429:
                metrics.REFUSED.labels(route).inc(count)


@router.get("/metrics", include_in_schema=False)
async def scrape(pool: AsyncConnectionPool = Depends(pool_of)):
    for instance in _instances:
        instance.fold()
    try:
        async with pool.connection(timeout=2) as conn:
            for kind, n in (await alerts_by_kind(conn)).items():
                metrics.ALERTS.labels(kind).set(n)
            for schema, n in (await quarantined(conn)).items():
                metrics.QUARANTINE.labels(schema).set(n)
            for schema, (n, age) in (await parked(conn)).items():
                metrics.PARKED.labels(schema).set(n)
                metrics.PARKED_AGE.labels(schema).set(age)
    except Exception:  # noqa: BLE001 -- the process's own metrics are still worth answering without the database
        pass
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
