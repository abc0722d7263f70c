"""``/healthz`` is liveness only; ``/readyz`` checks the database, a broker and the projectors' lag (issue 18)."""

from __future__ import annotations

import time

import httpx

from ledger.service import Ledger
from tests.conftest import free_port, wait_for_api
from tests.helpers import Cast, append_accepted
from tests.pipeline import project_all, relay_all


def start_api(services, settings, name="api"):
    port = free_port()
    s = settings.with_(listen_port=port, api_url=f"http://127.0.0.1:{port}")
    wait_for_api(services("traceledger.api", s, name=name), s.api_url)
    return s.api_url


def test_readyz_follows_the_projectors_lag_and_healthz_does_not(settings, services):
    settings = settings.with_(ready_max_lag=10)
    url = start_api(services, settings)
    assert httpx.get(f"{url}/healthz").json() == {"ok": True}
    ready = httpx.get(f"{url}/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "projector_lag": 0}

    cast = Cast()
    ledger = Ledger(settings)
    try:
        append_accepted(ledger, cast.founding_events())
        append_accepted(ledger, [cast.issue() for _ in range(50)])
    finally:
        ledger.close()
    relay_all(settings)  # on Kafka, not yet projected
    time.sleep(1.1)  # past the readiness cache
    behind = httpx.get(f"{url}/readyz")
    assert behind.status_code == 503 and behind.headers["content-type"].startswith("application/problem+json")
    assert behind.json()["code"] == "not_ready" and behind.json()["checks"]["projector_lag"] == 50
    assert httpx.get(f"{url}/healthz").status_code == 200

    project_all(settings)
    time.sleep(1.1)
    caught_up = httpx.get(f"{url}/readyz")
    assert caught_up.status_code == 200 and caught_up.json()["checks"]["projector_lag"] == 0


def test_readyz_fails_without_a_broker_while_healthz_stays_up(settings, services):
    url = start_api(services, settings.with_(kafka_bootstrap=f"127.0.0.1:{free_port()}"))
    r = httpx.get(f"{url}/readyz")
    assert r.status_code == 503 and r.json()["checks"]["broker"] == "unreachable", r.text
    assert httpx.get(f"{url}/healthz").status_code == 200
