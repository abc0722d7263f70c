"""Graceful overload (issue 21): offered 3× capacity, the served stay fast and the rest are refused at once.

    .venv/bin/python -m bench.overload [--labels 3000] [--kind get] [--factor 3] [--seconds 30] [--api-workers 2]

Builds a throw-away ledger like :mod:`bench.consumer_path`, measures capacity
(wrk -t2 -c8, 10 s, on the same route, random labels and client addresses),
then offers ``--factor`` × that rate for ``--seconds`` with the open-loop
generator (:mod:`bench.loadgen`: latency from each request's due time, so
queueing is not hidden). Reports, per status, count and p50/p99/max latency
(served 2xx against the target p99 ≤ 50 ms, 503 refusals against ≤ 5 ms), the
API's resident memory (all its processes) before, at peak and after, and how
long after the load stops until ten requests in a row are served.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import signal
import sys
import threading
import time
from pathlib import Path

from bench.consumer_path import ready_world, wrk
from bench.loadgen import run_open_loop
from bench.run import GTIN, World, say
from ledger.config import Settings


def tree_rss_mb(root: int) -> float:
    """Resident memory (MB) of ``root`` and its descendants."""
    kids: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            pages = int((d / "statm").read_text().split()[1])
        except OSError:
            continue
        kids.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(d.name))
        rss[int(d.name)] = pages
    todo, total = [root], 0
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += kids.get(pid, [])
    return total * 4096 / 1e6


def requests_for(kind: str, all_serials: list[str]):
    """Builder of raw request ``k`` of a load worker: a random label from a random client address."""
    body = b'{"channel": "web", "region": "440300"}'

    def build(worker: int, k: int) -> bytes:
        rnd = random.Random(worker * 1_000_003 + k)
        serial = rnd.choice(all_serials)
        xff = f"10.{rnd.randrange(256)}.{rnd.randrange(256)}.{rnd.randrange(1, 255)}"
        if kind == "page":
            return (f"GET /01/{GTIN}/21/{serial} HTTP/1.1\r\nHost: bench\r\nAccept: text/html\r\nX-Forwarded-For: {xff}\r\n\r\n").encode()
        if kind == "scan":
            return (f"POST /v1/labels/{serial}/scans HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                    f"X-Forwarded-For: {xff}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
        return f"GET /v1/labels/{serial} HTTP/1.1\r\nHost: bench\r\nX-Forwarded-For: {xff}\r\n\r\n".encode()
    return build


def recovery_seconds(port: int, serial: str, in_a_row: int = 10, limit: float = 30) -> float:
    """Seconds from now until ``in_a_row`` consecutive GETs of ``serial`` are answered 200."""
    t0 = time.perf_counter()
    ok = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    while ok < in_a_row and time.perf_counter() - t0 < limit:
        conn.request("GET", f"/v1/labels/{serial}")
        r = conn.getresponse()
        r.read()
        ok = ok + 1 if r.status == 200 else 0
    conn.close()
    return time.perf_counter() - t0


def run(args) -> dict:
    w = World(Settings.from_env(), args.labels, api_workers=args.api_workers)
    try:
        serials_file = ready_world(w)
        all_serials = serials_file.read_text().split()
        wrk(w.port, args.kind, 2, serials_file)  # warm-up
        capacity = wrk(w.port, args.kind, 10, serials_file)
        say(f"capacity ({args.kind}, wrk -t2 -c8 10 s): {capacity['per_s']:,.0f} req/s, p99 {capacity['p99_ms']:.1f} ms")
        rss = {"before": tree_rss_mb(w.api.pid), "peak": 0.0}
        stop = threading.Event()

        def sample():
            while not stop.wait(0.5):
                rss["peak"] = max(rss["peak"], tree_rss_mb(w.api.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        rate = args.factor * capacity["per_s"]
        load = run_open_loop(w.port, requests_for(args.kind, all_serials), rate=rate, seconds=args.seconds, processes=2, connections=64)
        after = recovery_seconds(w.port, all_serials[0])
        stop.set()
        sampler.join()
        rss["after"] = tree_rss_mb(w.api.pid)
        return {"kind": args.kind, "api_workers": args.api_workers, "capacity": capacity, "offered_per_s": rate, "load": load,
                "rss_mb": rss, "recovery_s": after}
    finally:
        w.close()


def report(out: dict) -> str:
    load, cap = out["load"], out["capacity"]
    lines = [f"overload ({out['kind']}, {out['api_workers']} workers): capacity {cap['per_s']:,.0f} req/s by wrk -t2 -c8 "
             f"(p99 {cap['p99_ms']:.1f} ms); offered {out['offered_per_s']:,.0f}/s open-loop for {load['seconds']:.0f} s "
             f"from 2 processes × 64 connections",
             "| status | count | p50 / p99 / max | target |", "|---|---|---|---|"]
    for status, s in load["by_status"].items():
        target = "p99 ≤ 50 ms" if status.startswith("2") else ("≤ 5 ms" if status in ("503", "429") else "")
        lines.append(f"| {status} | {s['count']:,} | {s['p50_ms']:.1f} / {s['p99_ms']:.1f} / {s['max_ms']:.1f} ms | {target} |")
    lines.append(f"served {load['achieved_per_s']:,.0f}/s ({load['achieved_per_s'] / cap['per_s']:.2f}× capacity); "
                 f"connection errors {load['errors']}, unanswered {load['timeouts']}; API memory "
                 f"{out['rss_mb']['before']:.0f} MB before, {out['rss_mb']['peak']:.0f} MB peak, {out['rss_mb']['after']:.0f} MB after; "
                 f"ten GETs in a row served {out['recovery_s'] * 1000:.0f} ms after the load stopped (target ≤ 1 s)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", type=int, default=3000)
    ap.add_argument("--kind", choices=("get", "page", "scan"), default="get")
    ap.add_argument("--factor", type=float, default=3.0)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--api-workers", type=int, default=2)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the throw-away database and topics
    out = run(ap.parse_args(argv))
    print(report(out), flush=True)
    print(json.dumps({k: v for k, v in out.items()}, default=str))


if __name__ == "__main__":
    main()
