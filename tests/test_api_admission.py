"""Admission control (traceledger/api/admission.py): beyond a worker's capacity, 503 with
Retry-After at once, and nothing written for the refused request. Functional, not timed:
requests are held inside the app on purpose, so capacity is full by construction."""

from __future__ import annotations

import asyncio
import json

import psycopg

from traceledger.api import create_app
from traceledger.api.admission import Admission

SERIAL = "ADMISSIONTEST0000001"


def _http(method: str, path: str, headers: list | None = None) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "path": path, "raw_path": path.encode(),
            "root_path": "", "scheme": "http", "query_string": b"", "headers": headers or [], "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80)}


async def _call(app, scope, body: bytes = b"", gate: asyncio.Event | None = None) -> dict:
    """Run one request through ``app``; its body is only delivered once ``gate`` is set. Returns status, headers, body."""
    sent: list = []

    async def receive():
        if gate is not None:
            await gate.wait()
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return {"status": start["status"], "headers": {k.decode().lower(): v.decode() for k, v in start["headers"]},
            "body": b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")}


def test_queue_then_refuse_then_full_service_again():
    """One place and one queue slot: the third request is refused at once with problem+json and
    Retry-After; /healthz still passes; the queued one is served when the first ends, in order."""
    gates = {name: asyncio.Event() for name in ("a", "b")}
    order: list[str] = []

    async def held(scope, receive, send):
        name = scope["path"].strip("/")
        if name in gates:
            await gates[name].wait()
        order.append(name)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def scenario():
        adm = Admission(held, max_inflight=1, max_queue=1)
        a = asyncio.create_task(_call(adm, _http("GET", "/a")))
        b = asyncio.create_task(_call(adm, _http("GET", "/b")))
        await asyncio.sleep(0.01)
        assert adm.inflight == 1 and len(adm.waiting) == 1
        refused = await _call(adm, _http("GET", "/c"))
        assert refused["status"] == 503 and refused["headers"]["retry-after"] == "1"
        assert refused["headers"]["content-type"] == "application/problem+json"
        assert json.loads(refused["body"])["code"] == "overloaded"
        assert (await _call(adm, _http("GET", "/healthz")))["status"] == 200  # never refused
        gates["b"].set()  # b may go on only when it gets the place a holds
        await asyncio.sleep(0.01)
        assert order == ["healthz"]
        gates["a"].set()
        assert (await a)["status"] == 200 and (await b)["status"] == 200
        assert order == ["healthz", "a", "b"]
        assert adm.inflight == 0 and not adm.waiting
        assert (await _call(adm, _http("GET", "/d")))["status"] == 200  # full service again at once
        assert adm.refused == 1

    asyncio.run(scenario())


def test_a_cancelled_waiter_gives_its_place_back():
    """A client that goes away while queued (or just as it is handed a place) leaves no place taken."""

    async def quick(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def scenario():
        gate = asyncio.Event()

        async def slow(scope, receive, send):
            await gate.wait()
            await quick(scope, receive, send)

        adm = Admission(slow, max_inflight=1, max_queue=2)
        first = asyncio.create_task(_call(adm, _http("GET", "/a")))
        queued = [asyncio.create_task(_call(adm, _http("GET", f"/q{i}"))) for i in range(2)]
        await asyncio.sleep(0.01)
        queued[0].cancel()
        gate.set()
        await first
        await queued[1]
        assert adm.inflight == 0 and not adm.waiting

    asyncio.run(scenario())


def test_over_capacity_scan_is_refused_and_not_recorded(settings):
    """The real app with one place per worker and no queue: a scan POST held while its body is on
    the way fills it; a second scan gets 503 + Retry-After and nothing reaches the scan inbox;
    the first, once its body arrives, is accepted and recorded."""
    s = settings.with_(api_max_inflight=1, api_max_queue=0)
    app = create_app(s)
    body = b'{"channel": "web"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]

    def inbox() -> int:
        with psycopg.connect(s.pg_conninfo) as conn:
            return conn.execute("SELECT count(*) FROM scan_inbox WHERE serial = %s", (SERIAL,)).fetchone()[0]

    async def scenario():
        async with app.router.lifespan_context(app):
            gate = asyncio.Event()
            held = asyncio.create_task(_call(app, _http("POST", f"/v1/labels/{SERIAL}/scans", headers), body, gate))
            await asyncio.sleep(0.05)
            refused = await _call(app, _http("POST", f"/v1/labels/{SERIAL}/scans", headers), body)
            assert refused["status"] == 503, refused
            assert refused["headers"]["retry-after"] == "1"
            assert json.loads(refused["body"])["status"] == 503
            assert await asyncio.to_thread(inbox) == 0
            gate.set()
            served = await held
            assert served["status"] == 200, served
            assert "scan_id" in json.loads(served["body"])
            assert await asyncio.to_thread(inbox) == 1

    asyncio.run(scenario())
