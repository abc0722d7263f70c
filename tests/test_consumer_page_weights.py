"""Page weights and answer times of the consumer page, per state.

Every state's page stays light for a phone on a poor network (at most ``MAX_PAGE_BYTES``
of HTML, no script): asserted. Answer times are measured and written down, never a
pass/fail threshold. ``make test`` asks each state 3 times; for figures worth quoting::

    TRACELEDGER_CONSUMER_TIMING=200 PYTHONPATH=$PWD .venv/bin/python -m pytest -q -s tests/test_consumer_page_weights.py

Writes test-artifacts/consumer/weights.json (bytes of HTML per state, gzip too) and
prints median and p99 answer times of sequential requests (one client at a time:
the time a person waits, not throughput; bench/ measures throughput). Each state
is asked by fresh clients (X-Forwarded-For through the trusted loopback proxy), so
the timings include recording the query.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import statistics
import time

import httpx
import psycopg

from tests.conftest import ARTIFACTS
from tests.consumer_world import V4_CONSUMER, world  # noqa: F401  (world: the module-scoped fixture)
from traceledger.shopper import pages

N = max(1, int(os.environ.get("TRACELEDGER_CONSUMER_TIMING", "3")))
MAX_PAGE_BYTES = 8 * 1024  # today's pages weigh 3.1-4.3 KB (1.6-2.1 KB gzipped)
BROWSER = {"accept": "text/html", "accept-language": "zh-CN"}


def test_page_weights_and_answer_times(world):
    states = {
        "genuine": ("GET", world.labels["genuine0"], ""), "pin_needed": ("GET", world.labels["pin0"], ""),
        "recalled": ("GET", world.labels["recalled"], ""), "counterfeit": ("GET", world.labels["counterfeit"], ""),
        "unknown_scanned": ("GET", "ZZZZZZZZZZZZZZZZZZZZ", ""), "certified": ("GET", world.labels["certified"], ""),
        "report_form": ("GET", world.labels["counterfeit"], "&report=1"),
        "recalled_own": ("GET", world.labels["recalled_own"], ""), "decommissioned": ("GET", world.labels["decommissioned"], ""),
        "pin_post": ("POST", world.labels["pin1"], ""),
    }
    if V4_CONSUMER:  # the signed trust details (certificates, names, quality, sellers, remedy): the heaviest pages
        states |= {"v4_certified": ("GET", world.labels["v4_certified"], ""), "v4_revoked": ("GET", world.labels["v4_revoked"], ""),
                   "v4_recalled": ("GET", world.labels["v4_recalled"], "")}
    out = {}
    with httpx.Client(headers=BROWSER, timeout=30) as client:
        for name, (method, serial, extra) in states.items():
            product = world.gtin_v4 if name.startswith("v4_") else world.gtin
            url = f"{world.url}/01/{product}/21/{serial}?lang=zh{extra}"
            times, size = [], 0
            for i in range(N):
                headers = {"x-forwarded-for": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"}
                t = time.perf_counter()
                if method == "GET":
                    r = client.get(url, headers=headers)
                else:
                    r = client.post(url, data={"action": "pin", "pin": "00000000", "lang": "zh"}, headers=headers)
                times.append((time.perf_counter() - t) * 1000)
                assert r.status_code in (200, 303)
                size = len(r.content)
            times.sort()
            body = client.get(url, headers={"x-forwarded-for": "192.0.2.1"}).content if method == "GET" else b""
            out[name] = {"bytes": len(body) or size, "gzip_bytes": len(gzip.compress(body)) if body else None,
                         "median_ms": round(statistics.median(times), 2), "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
                         "requests": N}
            print(name, out[name])
            if body:
                assert len(body) <= MAX_PAGE_BYTES and b"<script" not in body.lower(), (name, len(body))
                assert b"locate-link" in body or name not in ("genuine", "certified", "counterfeit", "v4_certified"), name  # the way to the script page
    (ARTIFACTS / "consumer").mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "consumer" / "weights.json").write_text(json.dumps(out, indent=2))


def test_only_the_consent_page_has_a_script_and_only_its_own(world):
    """"Check with my location" is the one page with a script: a constant one, allowed by its hash, nothing else."""
    serial = world.labels["fresh5"]
    r = httpx.get(f"{world.url}/01/{world.gtin}/21/{serial}?lang=en&locate=1", headers=BROWSER)
    assert r.status_code == 200 and len(r.content) <= MAX_PAGE_BYTES
    assert r.text.count("<script>") == 1 and f"<script>{pages.LOCATE_SCRIPT}</script>" in r.text
    csp = r.headers["content-security-policy"]
    digest = base64.b64encode(hashlib.sha256(pages.LOCATE_SCRIPT.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp and "unsafe-inline'; form-action" in csp
    assert "geolocation=(self)" in r.headers["permissions-policy"]
    # The consent page asks the ledger nothing and counts no query.
    with psycopg.connect(world.settings.pg_conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM scan_inbox WHERE serial = %s", (serial,)).fetchone()[0] == 0
