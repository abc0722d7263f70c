"""The HTTP API over real HTTP, on real PostgreSQL and Kafka."""

from __future__ import annotations

import base64

import httpx
import psycopg
import pytest

from ledger import gs1
from tests.conftest import wait_for
from tests.helpers import Cast, shipped_payload
from tests.pipeline import project_all, relay_all
from traceledger.auth import authorization_header


def post_events(url, signed_events):
    payload = {"events": [{"body": base64.b64encode(s.body).decode(), "signature": base64.b64encode(s.signature).decode()} for s in signed_events]}
    return httpx.post(f"{url}/v1/events", json=payload, timeout=30)


@pytest.fixture
def live(api):
    cast: Cast = api["cast"]
    r = post_events(api["url"], cast.founding_events())
    assert r.status_code == 200 and r.json()["refused"] == 0, r.text
    return api


def test_write_verify_and_scan_through_http(live):
    url, cast, settings = live["url"], live["cast"], live["settings"]
    serial = gs1.new_serial()
    r = post_events(url, [cast.issue(serial), cast.event("acme", "label", serial, "Shipped", shipped_payload("distributor"))])
    body = r.json()
    assert body["accepted"] == 2 and [x["status"] for x in body["results"]] == ["accepted", "accepted"]
    heads = httpx.post(f"{url}/v1/heads", json={"subjects": [{"type": "label", "subject": serial}, {"type": "label", "subject": "NOPE1"}]}).json()["heads"]
    assert heads[serial]["seq"] == 1 and heads["NOPE1"] is None
    relay_all(settings)
    project_all(settings)
    v = httpx.get(f"{url}/v1/labels/{serial}").json()
    assert v["verdict"] == "genuine" and v["uri"].endswith(f"/21/{serial}") and v["producer"] == "Acme"
    assert "custodian" not in v and "status" not in v  # the public view: places and dates, no business details

    # Consumer scans: answered at once with the scan counted...
    # (from an address the local stack's table places in Shenzhen: the server's place, not the claimed region, is signed)
    s1 = httpx.post(f"{url}/v1/labels/{serial}/scans", json={"channel": "web", "region": "110105", "lat": 22.5431, "lon": 114.0579},
                    headers={"x-forwarded-for": "10.44.3.20"})
    assert s1.status_code == 200 and s1.json()["scan_count"] == 1 and s1.json()["first_scanned_at"]
    # Another consumer (through the trusted loopback proxy): one client's repeats would count once.
    s2 = httpx.post(f"{url}/v1/labels/{serial}/scans", json={"channel": "sms"}, headers={"x-forwarded-for": "198.51.100.9"})
    assert s2.json()["scan_count"] >= 2
    # ...and recorded on the ledger by the gateway once it is registered (it already is).
    def scans_on_chain():
        h = httpx.post(f"{url}/v1/heads", json={"subjects": [{"type": "label", "subject": serial}]}).json()["heads"][serial]
        return h["seq"] == 3
    wait_for(scans_on_chain, 30, what="scans to be signed onto the chain")
    relay_all(settings)
    project_all(settings)
    v = httpx.get(f"{url}/v1/labels/{serial}").json()
    assert v["scan_count"] == 2
    path = f"/v1/labels/{serial}/trail"  # the full trail: a regulator's signed request
    full = httpx.get(url + path, headers={"authorization": authorization_header(cast.keys["regulator"], "GET", path)}).json()
    assert [t["kind"] for t in full["trail"]][-2:] == ["Scanned", "Scanned"] and full["trail"][-1]["actor"] == "gateway"
    assert full["trail"][-2]["details"]["region"] == "4403" and full["trail"][-2]["details"]["lat"] == 22.54
    with psycopg.connect(settings.pg_conninfo) as conn:
        lat = conn.execute("SELECT lat FROM scan_inbox WHERE serial = %s AND channel = 'web'", (serial,)).fetchone()[0]
    assert lat == 22.54  # coarsened before it is stored or signed


def test_unknown_serial_is_a_verdict_not_a_404(live):
    r = httpx.get(f"{live['url']}/v1/labels/NEVERISSUED")
    assert r.status_code == 200 and r.json()["verdict"] == "unknown"
    r = httpx.post(f"{live['url']}/v1/labels/NEVERISSUED/scans", json={})
    assert r.status_code == 200 and r.json()["verdict"] == "unknown"


@pytest.mark.parametrize(
    "method, path, kwargs, field",
    [
        ("get", "/v1/labels/" + "A" * 21, {}, "serial"),
        ("get", "/v1/labels/%F0%9F%99%82", {}, "serial"),
        ("get", "/v1/labels/x';DROP TABLE labels;--", {}, "serial"),
        ("post", "/v1/labels/ABC/scans", {"json": {"channel": "Not A Channel"}}, "channel"),
        ("post", "/v1/labels/ABC/scans", {"json": {"region": "Guangdong"}}, "region"),
        ("post", "/v1/labels/ABC/scans", {"json": {"lat": 123.0}}, "lat"),
        ("post", "/v1/events", {"json": {"events": [{"body": "!!notbase64", "signature": ""}]}}, None),
        ("post", "/v1/events", {"content": b"\xff\xfe not json", "headers": {"content-type": "application/json"}}, None),
        ("post", "/v1/heads", {"json": {"subjects": [{"type": "planet", "subject": "x"}]}}, "subjects.0.type"),
        ("get", "/v1/actors/NOT%20AN%20ID", {}, "actor_id"),
    ],
)
def test_bad_requests_get_problem_json(live, method, path, kwargs, field):
    r = getattr(httpx, method)(live["url"] + path, timeout=10, **kwargs)
    if path == "/v1/events" and "json" in kwargs:
        # A batch answers 200 with the item refused in place.
        assert r.status_code == 200 and r.json()["results"][0]["code"] == "malformed_encoding"
        return
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["status"] == r.status_code and problem["detail"]
    if field:
        assert problem.get("field") == field


def test_oversized_request_is_refused_with_413(live):
    from traceledger.api.limits import MAX_BODY_BYTES

    r = httpx.post(f"{live['url']}/v1/events", content=b"{" + b" " * (MAX_BODY_BYTES + 10) + b"}",
                   headers={"content-type": "application/json"}, timeout=60)
    assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem+json")


def test_refused_events_write_nothing_through_http(live):
    url, cast, settings = live["url"], live["cast"], live["settings"]
    with psycopg.connect(settings.pg_conninfo) as conn:
        before = conn.execute("SELECT count(*) FROM ledger_events").fetchone()[0]
    good = cast.issue("HTTP1")
    forged = {"body": base64.b64encode(good.body).decode(), "signature": base64.b64encode(bytes(64)).decode()}
    wrong_role = cast.issue("HTTP2", producer="retailer")
    r = httpx.post(f"{url}/v1/events", json={"events": [forged, {"body": base64.b64encode(wrong_role.body).decode(), "signature": base64.b64encode(wrong_role.signature).decode()}]})
    codes = [x["code"] for x in r.json()["results"]]
    assert codes == ["bad_signature", "not_authorized"]
    with psycopg.connect(settings.pg_conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM ledger_events").fetchone()[0] == before


def test_openapi_document_is_served(live):
    doc = httpx.get(f"{live['url']}/openapi.json").json()
    assert {"/v1/events", "/v1/labels/{serial}", "/v1/labels/{serial}/scans", "/v1/heads"} <= set(doc["paths"])
