"""Accepted consumer scans and reports of suspected fakes survive a SIGKILL of
the API: each is signed onto its label's chain exactly once after the restart,
and, relayed and projected, appears exactly once everywhere (:mod:`tests.oracle`)."""

from __future__ import annotations

import os
import threading
import time
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


def test_no_answered_scan_is_lost_when_the_api_is_killed_under_load(api, tmp_path):
    """SIGKILL of the API while scans are in flight (group commit, ledger/inbox_group.py): every scan
    answered 200 is in the inbox, and after the restart on its chain; unanswered ones may be either."""
    url, cast, svc = api["url"], api["cast"], api["service"]
    settings = api["settings"]
    post(url, cast.founding_events())
    serials = [gs1.new_serial() for _ in range(20)]
    post(url, [cast.issue(s) for s in serials])
    before_kill = int(os.environ.get("SCAN_KILL_ANSWERED", "150"))  # answers collected before the kill
    answered: list[str] = []
    stop = threading.Event()

    def scanner(worker: int) -> int:
        sent = 0
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                sent += 1
                consumer = {"x-forwarded-for": f"198.19.{worker}.{sent % 250 + 1}"}
                try:
                    r = client.post(f"{url}/v1/labels/{serials[sent % len(serials)]}/scans", json={"channel": "web"}, headers=consumer)
                except httpx.HTTPError:
                    continue  # the API is down: what was not answered may or may not be recorded
                if r.status_code == 200:
                    answered.append(r.json()["scan_id"])
        return sent

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(scanner, w) for w in range(8)]
        wait_for(lambda: len(answered) >= before_kill, 120, 0.01, f"{before_kill} scans answered")
        svc.kill()  # while eight clients still have requests in flight
        killed_at = len(answered)
        time.sleep(0.5)
        stop.set()
        sent = sum(f.result() for f in futures)
    assert sent > len(answered), "every request was answered: the kill landed after the load, not during it"
    with psycopg.connect(settings.pg_conninfo) as conn:
        inbox = {r[0] for r in conn.execute("SELECT event_id FROM scan_inbox").fetchall()}
    lost = set(answered) - inbox
    assert not lost, f"{len(lost)} of {len(answered)} answered scans are not in the inbox after the kill"
    assert killed_at >= before_kill
    wait_for_api(svc.start(), url)
    wait_for(lambda: set(answered) <= {e for _, e in gateway_events_on_chains(settings)}, 90, 0.5,
             "every answered scan to be signed onto its chain after the restart")
