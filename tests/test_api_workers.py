"""The API with several worker processes (TRACELEDGER_API_WORKERS): both serve, and only one
of them records the accepted scans on the ledger, each exactly once; the workers end with
their supervisor."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import psycopg
import pytest

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


def _children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid`` and that multiprocessing spawned."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z" and b"spawn_main" in cmdline:
            out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_workers_end_when_the_supervisor_is_killed(settings, services, tmp_path):
    """A SIGKILLed supervisor cannot stop its workers: the kernel's parent-death signal does,
    so no orphan keeps serving old code on the port."""
    port = free_port()
    s = settings.with_(listen_port=port, api_url=f"http://127.0.0.1:{port}", api_workers=2)
    svc = services("traceledger.api", s)
    wait_for_api(svc, s.api_url)
    workers = wait_for(lambda: (w := _children(svc.proc.pid)) and len(w) == 2 and w, timeout=30, what="two workers")
    svc.kill()
    wait_for(lambda: not any(_alive(w) for w in workers), timeout=30, what="the workers to end after their supervisor")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{s.api_url}/healthz", timeout=2)
