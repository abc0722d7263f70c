"""Every process's Prometheus endpoint, scraped before and after real work: the numbers move (issue 18)."""

from __future__ import annotations

import httpx
from prometheus_client import Histogram
from prometheus_client.parser import text_string_to_metric_families

from ledger import metrics
from ledger.service import Ledger
from tests.conftest import free_port, wait_for, wait_for_api
from tests.helpers import Cast, append_accepted


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value of every sample the endpoint serves."""
    text = httpx.get(url, timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for fam in text_string_to_metric_families(text) for s in fam.samples}


def value(samples, name: str, **labels) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def test_relay_projector_and_api_metrics_move(settings, services):
    relay_port, projector_port, api_port = free_port(), free_port(), free_port()
    cast = Cast()
    key = settings.run_dir / "gateway.key"
    cast.keys["gateway"].save(key)
    ledger = Ledger(settings)
    try:
        append_accepted(ledger, cast.founding_events())
        issued = [cast.issue() for _ in range(120)]
        append_accepted(ledger, issued)
        serials = [s.event.subject for s in issued]
    finally:
        ledger.close()
    services("consumers.relay", settings.with_(metrics_port=relay_port), name="relay")
    services("consumers.projector", settings.with_(metrics_port=projector_port), name="projector")
    api = settings.with_(listen_port=api_port, api_url=f"http://127.0.0.1:{api_port}", gateway_key=key, limit_scans=2)
    wait_for_api(services("traceledger.api", api, name="api"), api.api_url)

    relay_url, projector_url = f"http://127.0.0.1:{relay_port}/metrics", f"http://127.0.0.1:{projector_port}/metrics"

    def moved():
        try:
            relay, projector = scrape(relay_url), scrape(projector_url)
        except httpx.HTTPError:
            return False
        return value(relay, "traceledger_relayed_events_total") == 127 and value(projector, "traceledger_consumed_records_total") == 120

    wait_for(moved, 120, 0.5, "the relay's and projector's counters to reach the events written")
    projector = scrape(projector_url)
    lags = {dict(ls)["partition"]: v for (n, ls), v in projector.items() if n == "traceledger_consumer_lag"}
    assert lags and all(v == 0 for v in lags.values()), lags
    assert value(projector, "traceledger_quarantined_records_total") == 0

    before = scrape(f"{api.api_url}/metrics")
    for serial in serials[:5]:
        assert httpx.get(f"{api.api_url}/v1/labels/{serial}").status_code == 200
    statuses = [httpx.post(f"{api.api_url}/v1/labels/{serials[0]}/scans", json={"channel": "web", "region": "440305"}).status_code
                for _ in range(4)]
    assert statuses.count(429) >= 1, statuses  # limit_scans=2 per client
    after = scrape(f"{api.api_url}/metrics")
    route = "/v1/labels/{serial}"
    assert value(after, "traceledger_http_requests_total", route=route, status="200") - value(before, "traceledger_http_requests_total", route=route, status="200") == 5
    assert value(after, "traceledger_http_request_seconds_count", route=route) - value(before, "traceledger_http_request_seconds_count", route=route) == 5
    assert value(after, "traceledger_rate_limit_refusals_total") - value(before, "traceledger_rate_limit_refusals_total") == statuses.count(429)
    assert value(after, "traceledger_http_requests_total", route="/v1/labels/{serial}/scans", status="429") == statuses.count(429)
    assert value(after, "traceledger_quarantine_records", schema="verification") == 0


def test_bulk_observations_equal_one_by_one():
    one = Histogram("t_one_seconds", "x", buckets=metrics.LATENCY_BUCKETS, registry=None)
    bulk = Histogram("t_bulk_seconds", "x", buckets=metrics.LATENCY_BUCKETS, registry=None)
    values = [0.0005, 0.001, 0.003, 0.2, 0.2, 20.0]
    for v in values:
        one.observe(v)
    from bisect import bisect_left

    buckets = [0] * (len(metrics.LATENCY_BUCKETS) + 1)
    for v in values:
        buckets[bisect_left(metrics.LATENCY_BUCKETS, v)] += 1
    metrics.observe_many(bulk, sum(values), buckets)
    strip = lambda fam: [(s.name.replace("t_bulk", "t_one"), s.labels, s.value) for s in fam.samples if not s.name.endswith("_created")]  # noqa: E731
    assert strip(next(iter(one.collect()))) == strip(next(iter(bulk.collect())))
