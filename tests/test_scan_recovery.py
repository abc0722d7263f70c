"""Accepted consumer scans survive a SIGKILL of the API: each is signed onto
its label's chain exactly once after the restart."""

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


def scanned_on_chains(settings) -> list[tuple[str, str]]:
    """(serial, event id) of every Scanned event in the write model."""
    ledger = Ledger(settings)
    try:
        with psycopg.connect(settings.pg_conninfo) as conn:
            serials = [r[0] for r in conn.execute("SELECT DISTINCT serial FROM scan_inbox").fetchall()]
        out = []
        for chain in ledger.app.load_chains(chain_id("label", s) for s in serials).values():
            for stored in ledger.app.events.get(chain.id):
                e = decode_signed(stored.body, stored.signature).event
                if e.kind == "Scanned":
                    out.append((e.subject, e.event_id))
        return out
    finally:
        ledger.close()


def test_accepted_scans_survive_an_api_sigkill(api):
    url, cast, settings, svc = api["url"], api["cast"], api["settings"], api["service"]
    post(url, cast.founding_events())
    serials = [gs1.new_serial() for _ in range(20)]
    post(url, [cast.issue(s) for s in serials])

    def scan(i):
        r = httpx.post(f"{url}/v1/labels/{serials[i % len(serials)]}/scans", json={"channel": "web", "region": "440305"}, timeout=30)
        assert r.status_code == 200
        return r.json()["scan_id"]

    with ThreadPoolExecutor(8) as pool:
        accepted = list(pool.map(scan, range(300)))
    svc.kill()  # the gateway worker is mid-way through signing them, or has not started
    with psycopg.connect(settings.pg_conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM scan_inbox").fetchone()[0] == 300
    svc.start()
    wait_for(lambda: len(scanned_on_chains(settings)) >= 300, 60, 0.5, "every accepted scan to be signed onto its chain")
    on_chain = scanned_on_chains(settings)
    assert sorted(e for _, e in on_chain) == sorted(accepted), "a scan was lost or doubled"
