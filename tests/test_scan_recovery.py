"""Accepted consumer scans and reports of suspected fakes survive a SIGKILL of
the API: each is signed onto its label's chain exactly once after the restart."""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg

from ledger import gs1
from ledger.events import decode_signed
from ledger.service import Ledger
from ledger.store import chain_id
from tests.conftest import wait_for


def post(url, signed_events):
    body = {"events": [{"body": base64.b64encode(s.body).decode(), "signature": base64.b64encode(s.signature).decode()} for s in signed_events]}
    r = httpx.post(f"{url}/v1/events", json=body, timeout=60)
    assert r.status_code == 200 and r.json()["refused"] == 0, r.text


def gateway_events_on_chains(settings) -> list[tuple[str, str]]:
    """(kind, event id) of every Scanned and ReportedFake event in the write model."""
    ledger = Ledger(settings)
    try:
        with psycopg.connect(settings.pg_conninfo) as conn:
            serials = [r[0] for r in conn.execute("SELECT DISTINCT serial FROM scan_inbox").fetchall()]
        out = []
        for chain in ledger.app.load_chains(chain_id("label", s) for s in serials).values():
            for stored in ledger.app.events.get(chain.id):
                e = decode_signed(stored.body, stored.signature).event
                if e.kind in ("Scanned", "ReportedFake"):
                    out.append((e.kind, e.event_id))
        return out
    finally:
        ledger.close()


def test_accepted_scans_survive_an_api_sigkill(api):
    url, cast, settings, svc = api["url"], api["cast"], api["settings"], api["service"]
    post(url, cast.founding_events())
    serials = [gs1.new_serial() for _ in range(20)]
    post(url, [cast.issue(s) for s in serials])

    def scan_or_report(i):
        serial = serials[i % len(serials)]
        consumer = {"x-forwarded-for": f"198.18.{i // 250}.{i % 250 + 1}"}  # 300 consumers, each within its limits
        if i % 5 == 0:  # every fifth: a consumer reports a suspected fake
            r = httpx.post(f"{url}/v1/labels/{serial}/reports", json={"note": f"report {i}"}, headers=consumer, timeout=30)
            assert r.status_code == 201 and r.json()["on_ledger"] is True
            return "ReportedFake", r.json()["event_id"]
        r = httpx.post(f"{url}/v1/labels/{serial}/scans", json={"channel": "web", "region": "440305"}, headers=consumer, timeout=30)
        assert r.status_code == 200
        return "Scanned", r.json()["scan_id"]

    with ThreadPoolExecutor(8) as pool:
        accepted = list(pool.map(scan_or_report, range(300)))
    svc.kill()  # the gateway worker is mid-way through signing them, or has not started
    with psycopg.connect(settings.pg_conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM scan_inbox").fetchone()[0] == 300
    svc.start()
    wait_for(lambda: len(gateway_events_on_chains(settings)) >= 300, 60, 0.5, "every accepted scan and report to be signed onto its chain")
    on_chain = gateway_events_on_chains(settings)
    assert sorted(on_chain) == sorted(accepted), "a scan or report was lost or doubled"
    assert sum(kind == "ReportedFake" for kind, _ in on_chain) == 60
