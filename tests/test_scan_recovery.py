"""Accepted consumer scans and reports of suspected fakes survive a SIGKILL of
the API: each is signed onto its label's chain exactly once after the restart,
and, relayed and projected, appears exactly once everywhere (:mod:`tests.oracle`)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg

from ledger import gs1, scan_inbox
from ledger.events import decode_signed
from ledger.service import Ledger
from ledger.store import chain_id
from tests.conftest import wait_for, wait_for_api
from tests.helpers import events_body
from tests.oracle import assert_exactly_once
from tests.pipeline import project_all, relay_all


def post(url, signed_events) -> list[str]:
    r = httpx.post(f"{url}/v1/events", json=events_body(signed_events), timeout=60)
    assert r.status_code == 200 and r.json()["refused"] == 0, r.text
    return [s.event.event_id for s in signed_events]


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


def test_accepted_scans_survive_an_api_sigkill(api, tmp_path):
    url, cast, svc = api["url"], api["cast"], api["service"]
    # Small recording batches, so the worker is still busy when the API is killed.
    svc.stop()
    settings = svc.settings = api["settings"].with_(scan_batch=10, log_key=tmp_path / "log.key", checkpoint_seconds=0.5)
    wait_for_api(svc.start(), url)
    accepted = post(url, cast.founding_events())
    serials = [gs1.new_serial() for _ in range(20)]
    accepted += post(url, [cast.issue(s) for s in serials])

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
        answered = list(pool.map(scan_or_report, range(300)))
    assert svc.running(), svc.log_path.read_text()[-2000:]
    svc.kill()
    with psycopg.connect(settings.pg_conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM scan_inbox").fetchone()[0] == 300
    ledger = Ledger(settings)
    try:
        position = ledger.app.recorder.max_tracking_id(scan_inbox.TRACKING_NAME) or 0
    finally:
        ledger.close()
    assert position < 300, "the worker had recorded everything: the kill landed after the work, not during it"
    svc.start()
    wait_for(lambda: len(gateway_events_on_chains(settings)) >= 300, 60, 0.5, "every accepted scan and report to be signed onto its chain")
    on_chain = gateway_events_on_chains(settings)
    assert sorted(on_chain) == sorted(answered), "a scan or report was lost or doubled"
    assert sum(kind == "ReportedFake" for kind, _ in on_chain) == 60
    svc.stop()
    relay_all(settings)
    project_all(settings)
    assert_exactly_once(settings, accepted + [event_id for _, event_id in on_chain], audit_state=tmp_path / "audit.state")
