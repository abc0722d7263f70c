"""How the API is served (traceledger/api/server.py): the served process decides client identity
only as traceledger/api/client_identity.py says, not as the ASGI server would on its own."""

from __future__ import annotations

import httpx

from tests.conftest import free_port, wait_for_api

SERIAL = "SERVERTEST0000000001"


def test_untrusted_loopback_cannot_choose_its_client_address(settings, services):
    """With no trusted proxies, a loopback peer's X-Forwarded-For is ignored: two scans claiming two
    addresses are one client, so a limit of one scan refuses the second (uvicorn's own proxy-header
    handling would have believed the header and let both through)."""
    port = free_port()
    s = settings.with_(listen_port=port, api_url=f"http://127.0.0.1:{port}", trusted_proxies=(), limit_scans=1)
    svc = services("traceledger.api", s)
    wait_for_api(svc, s.api_url)
    with httpx.Client(base_url=s.api_url, timeout=30) as c:
        first = c.post(f"/v1/labels/{SERIAL}/scans", json={"channel": "web"}, headers={"x-forwarded-for": "198.51.100.1"})
        second = c.post(f"/v1/labels/{SERIAL}/scans", json={"channel": "web"}, headers={"x-forwarded-for": "198.51.100.2"})
    assert first.status_code == 200, first.text
    assert second.status_code == 429 and "retry-after" in second.headers, second.text
