"""Prometheus metrics of every traceledger process (issue 18), and their endpoint.

One set of metric objects per process (prometheus-client's default registry):
events relayed (``rate()`` gives events/s), records applied and quarantined and the
consumer lag per partition of each consumer group (projectors, detector), and
the API's requests by route, method and status with a latency histogram, and
its rate-limit refusals (429s). Alerts by kind, the quarantine backlog and the parked
records (count and oldest age) are read
from the read models when the API is scraped (``traceledger/api/metrics.py``).

:func:`serve` starts the endpoint of a stream process on ``settings.metrics_port``
(0, the default: none). The API serves ``GET /metrics`` on its own port instead;
with several API workers set ``PROMETHEUS_MULTIPROC_DIR`` (ops/services.sh does)
so a scrape sums them all.
"""

from __future__ import annotations

import threading

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from ledger.config import Settings
from ledger.logging_setup import get_logger

log = get_logger("metrics")

RELAYED = Counter("traceledger_relayed_events", "Log entries the relay put on Kafka")
APPLIED = Counter("traceledger_consumed_records", "Records applied to a read model, by consumer group", ["group"])
QUARANTINED = Counter("traceledger_quarantined_records", "Records quarantined by a consumer group", ["group"])
LAG = Gauge("traceledger_consumer_lag", "Records on Kafka not yet applied, by group and partition (high watermark minus next offset)",
            ["group", "topic", "partition"], multiprocess_mode="max")
REQUESTS = Counter("traceledger_http_requests", "HTTP requests answered, by route template, method and status", ["route", "method", "status"])
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
LATENCY = Histogram("traceledger_http_request_seconds", "HTTP request latency by route template", ["route"], buckets=LATENCY_BUCKETS)
REFUSED = Counter("traceledger_rate_limit_refusals", "Requests refused by a per-client limit (HTTP 429), by route", ["route"])
ALERTS = Gauge("traceledger_alerts", "Alerts in the read model, by kind (read at scrape time)", ["kind"], multiprocess_mode="max")
QUARANTINE = Gauge("traceledger_quarantine_records", "Records in a read model's quarantine (read at scrape time)", ["schema"],
                   multiprocess_mode="max")
PARKED = Gauge("traceledger_parked_records", "Records parked in a read model's pending table, waiting for their label's batch "
               "(read at scrape time)", ["schema"], multiprocess_mode="max")
PARKED_AGE = Gauge("traceledger_parked_oldest_seconds", "Age of the oldest parked record of a read model, 0 when none "
                   "(read at scrape time)", ["schema"], multiprocess_mode="max")

_served = threading.Lock()
_port: list[int] = []


def serve(settings: Settings) -> None:
    """Start this process's metrics endpoint once, if ``settings.metrics_port`` asks for one."""
    if not settings.metrics_port:
        return
    with _served:
        if _port:
            return
        start_http_server(settings.metrics_port, addr=settings.listen_host)
        _port.append(settings.metrics_port)
    log.info("metrics_serving", port=settings.metrics_port)


def observe_many(histogram, seconds: float, buckets: list[int]) -> None:
    """Add many observations to a histogram child at once: their total ``seconds`` and a count per
    bucket (``buckets[i]``: observations in bucket i, the last one +Inf). prometheus-client has no
    bulk ``observe``; this writes the same per-bucket values its ``observe`` does (checked by
    tests/test_metrics.py against ``observe``, so a client upgrade that changes them fails there)."""
    histogram._sum.inc(seconds)
    for i, n in enumerate(buckets):
        if n:
            histogram._buckets[i].inc(n)


def record_batch(group: str, applied: int, quarantined: int, lags: dict[tuple[str, int], int]) -> None:
    """A consumer group's batch: records applied and quarantined, and each partition's lag after it."""
    if applied:
        APPLIED.labels(group).inc(applied)
    if quarantined:
        QUARANTINED.labels(group).inc(quarantined)
    for (topic, partition), lag in lags.items():
        LAG.labels(group, topic, str(partition)).set(lag)
