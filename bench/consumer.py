"""Latency of the consumer answers: the resolver's JSON and HTML, under a small local load.

    .venv/bin/python -m bench.consumer [--requests 2000] [--concurrency 8]

Builds its own world (fresh database and topics, an API subprocess, labels of
every kind: tests/consumer_world.py), then sends GETs of /01/{gtin}/21/{serial}
from ``concurrency`` client threads over keep-alive connections, spread over
the genuine labels. Every request is a real query: it is accepted into the
scan inbox (one durable insert) and the gateway signs it onto the ledger in
the background, as in production. Prints median and p99 per kind and the page's
weight in bytes; drops the database at the end.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

from ledger.config import Settings
from tests.consumer_world import build_world


class _Tmp:
    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="bench-consumer-"))

    def mktemp(self, name):
        p = self.root / name
        p.mkdir()
        return p


def run(kind: str, w, serials: list[str], n: int, concurrency: int) -> list[float]:
    headers = {"accept": "application/json"} if kind == "json" else {"accept": "text/html", "accept-language": "zh-CN"}
    times: list[float] = []
    lock = threading.Lock()
    per = n // concurrency

    def worker(k: int):
        mine = []
        with httpx.Client(headers=headers, timeout=30) as c:
            for i in range(per):
                url = f"{w.url}/01/{w.gtin}/21/{serials[(k + i) % len(serials)]}"
                shopper = {"x-forwarded-for": f"10.{k % 250}.{i // 250 % 250}.{i % 250 + 1}"}  # each query its own client (limits)
                t = time.perf_counter()
                r = c.get(url, headers=shopper)
                mine.append(time.perf_counter() - t)
                assert r.status_code == 200
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    base = Settings.from_env()
    created = {"dbs": [], "prefixes": []}
    w = build_world(base, created, _Tmp(), pin_labels=1, genuine_labels=50)
    try:
        serials = [w.labels[f"genuine{i}"] for i in range(50)]
        page = httpx.get(f"{w.url}/01/{w.gtin}/21/{serials[0]}", headers={"accept": "text/html"}).content
        pin_page = httpx.get(f"{w.url}/01/{w.gtin}/21/{w.labels['pin0']}", headers={"accept": "text/html"}).content
        print(f"page weight: {len(page)} bytes ({len(gzip.compress(page))} gzipped); with PIN box {len(pin_page)} bytes")
        for kind in ("json", "html"):
            run(kind, w, serials, 200, args.concurrency)  # warm-up
            t0 = time.perf_counter()
            times = sorted(run(kind, w, serials, args.requests, args.concurrency))
            wall = time.perf_counter() - t0
            p99 = times[int(len(times) * 0.99) - 1]
            print(f"{kind}: n={len(times)} c={args.concurrency} median {statistics.median(times) * 1000:.1f} ms, "
                  f"p99 {p99 * 1000:.1f} ms, {len(times) / wall:.0f} req/s")
    finally:
        w.service.stop()
        from traceledger import sandbox

        sandbox.drop(base, created["dbs"], created["prefixes"])


if __name__ == "__main__":
    main()
