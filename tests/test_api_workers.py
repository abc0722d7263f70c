"""The API with several worker processes (TRACELEDGER_API_WORKERS): both serve, and only one
of them records the accepted scans on the ledger, each exactly once."""

from __future__ import annotations

import base64

import httpx
import psycopg

from tests.conftest import free_port, wait_for, wait_for_api
from tests.helpers import Cast


def _wire(events) -> dict:
    return {"events": [{"body": base64.b64encode(s.body).decode(), "signature": base64.b64encode(s.signature).decode()} for s in events]}


def test_two_workers_record_every_scan_once(settings, services, tmp_path):
    cast = Cast()
    key_path = tmp_path / "gateway.key"
    cast.keys["gateway"].save(key_path)
    port = free_port()
    s = settings.with_(listen_port=port, api_url=f"http://127.0.0.1:{port}", gateway_key=key_path, api_workers=2)
    svc = services("traceledger.api", s)
    wait_for_api(svc, s.api_url)

    labels = [cast.issue() for _ in range(10)]
    r = httpx.post(f"{s.api_url}/v1/events", json=_wire(cast.founding_events() + labels), timeout=60)
    assert r.status_code == 200 and r.json()["refused"] == 0
    serials = [e.event.subject for e in labels]
    with httpx.Client(timeout=30) as client:  # a few connections: requests reach both workers
        for i in range(30):
            assert client.post(f"{s.api_url}/v1/labels/{serials[i % 10]}/scans", json={"channel": "web"}).status_code == 200

    def recorded() -> int:
        with psycopg.connect(s.pg_conninfo) as conn:
            return conn.execute("SELECT count(*) FROM ledger_events WHERE topic LIKE %s", ("%Appended%",)).fetchone()[0]

    wait_for(lambda: recorded() >= 30, timeout=60, what="30 scans on the ledger")
    assert recorded() == 30
    log = svc.log_path.read_text()
    assert log.count('"scan_recorder_active"') == 1  # the other worker's recorder waits for the lock
    assert "scan_batch_conflict_retrying" not in log
