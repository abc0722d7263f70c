"""The consumer's path at the server's ceiling (issue 21): wrk against the API next to a "hello".

    .venv/bin/python -m bench.consumer_path [--labels 5000] [--api-workers 2] [--seconds 10] [--profile DIR]
                                            [--kinds get,page,scan]

Builds a throw-away ledger (:class:`bench.run.World`: database, topics, API,
``--labels`` issued through CLI + API and projected), then runs wrk (2 threads,
8 connections, ``--seconds``) against, in this order: a FastAPI "hello"
(:mod:`bench.hello_app`) under the same server with the same worker count,
``GET /v1/labels/{serial}``, the QR page ``GET /01/{gtin}/21/{serial}`` (HTML,
the query recorded), ``POST /v1/labels/{serial}/scans``, then "hello" again.
Every request names a uniformly random label and carries a random
``X-Forwarded-For`` (the API trusts loopback as a proxy), so per-client limits
apply as in production without refusing the benchmark (``bench/wrk_random.lua``).
Prints req/s, the ratio to the mean of the two hello runs, p50/p99 and the
non-2xx count; with ``--profile``, the API runs under py-spy and a summary of
where its CPU went is printed (:mod:`bench.profile_summary`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.run import GTIN, World, issuance, projection, say, serials
from ledger.config import REPO_ROOT, Settings

LUA = REPO_ROOT / "bench" / "wrk_random.lua"
WRK_ARGS = ("-t2", "-c8")
TARGETS = {"get": "GET /v1/labels/{serial}", "page": "QR page GET /01/{gtin}/21/{serial}", "scan": "POST /v1/labels/{serial}/scans"}


def wrk(port: int, kind: str, seconds: float, serials_file: Path | None = None) -> dict:
    """One wrk run of ``kind`` (hello|get|page|scan); its figures (req/s counts every answer, ok_per_s only 2xx/3xx)."""
    exe = shutil.which("wrk")
    if exe is None:
        raise SystemExit("wrk is not installed: run bench/install_wrk.sh (make bench does)")
    env = os.environ | {"KIND": kind, "GTIN": GTIN, "SERIALS_FILE": str(serials_file or "")}
    out = subprocess.run([exe, *WRK_ARGS, f"-d{int(seconds)}s", "-s", str(LUA), f"http://127.0.0.1:{port}"],
                         env=env, capture_output=True, text=True, check=True).stdout
    res = json.loads(next(line for line in out.splitlines() if line.startswith("WRKJSON "))[8:])
    res["per_s"] = res["requests"] / res["seconds"]
    res["ok_per_s"] = (res["requests"] - res["status_errors"]) / res["seconds"]
    return res


class Hello:
    """The hello app served like the API (:func:`traceledger.api.server.serve`, same workers)."""

    def __init__(self, w: World):
        self.port = w.port + 1
        self.proc = w.spawn("hello", "-m", "bench.hello_app", str(self.port), str(w.api_workers))
        deadline = time.monotonic() + 120  # slow to import on a loaded machine
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/hello", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("the hello app did not start")


def line(name: str, r: dict, hello: float) -> str:
    return (f"| {name} | {r['per_s']:,.0f} req/s (2xx {r['ok_per_s']:,.0f}) | {r['per_s'] / hello:.2f}× | "
            f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} ms | {r['status_errors']} |")


def ready_world(w: World) -> Path:
    """Start ``w``'s API, issue and project its labels; the file of their serials (one a line)."""
    w.start_api()
    w.members()
    say(f"issuing {w.labels:,} labels and projecting them ...")
    issuance(w)
    projection(w, 1)
    serials_file = w.work / "serials.txt"
    serials_file.write_text("\n".join(serials(w)) + "\n")
    return serials_file


def run(args) -> dict:
    w = World(Settings.from_env(), args.labels, profile=args.profile, api_workers=args.api_workers)
    out: dict = {"labels": args.labels, "api_workers": args.api_workers, "wrk": " ".join(WRK_ARGS) + f" -d{int(args.seconds)}s"}
    try:
        serials_file = ready_world(w)
        hello = Hello(w)
        wrk(hello.port, "hello", 2)  # warm-up
        for kind in args.kinds:
            wrk(w.port, kind, 2, serials_file)
        out["hello_before"] = wrk(hello.port, "hello", args.seconds)
        for kind in args.kinds:
            out[kind] = wrk(w.port, kind, args.seconds, serials_file)
            say(f"{kind}: {out[kind]['per_s']:,.0f} req/s, p50 {out[kind]['p50_ms']:.1f} p99 {out[kind]['p99_ms']:.1f} ms, non-2xx {out[kind]['status_errors']}")
        out["hello_after"] = wrk(hello.port, "hello", args.seconds)
        w.stop(hello.proc)
    finally:
        w.close()
    return out


def report(out: dict) -> str:
    hello = (out["hello_before"]["per_s"] + out["hello_after"]["per_s"]) / 2
    rows = [f"consumer path: wrk {out['wrk']}, {out['labels']:,} labels uniformly random, random X-Forwarded-For, "
            f"{out['api_workers']} workers; load at end {os.getloadavg()[0]:.1f}",
            "| figure | rate | ratio to hello | p50 / p99 | non-2xx |", "|---|---|---|---|---|",
            line("FastAPI hello, same server and workers (before)", out["hello_before"], hello)]
    rows += [line(TARGETS[k], out[k], hello) for k in TARGETS if k in out]
    rows.append(line("FastAPI hello (after)", out["hello_after"], hello))
    if "overload" in out:
        from bench.overload import report as overload_report

        rows += ["", overload_report(out["overload"])]
    return "\n".join(rows)


def overload_run(labels: int, api_workers: int) -> dict:
    """``bench.overload`` of the GET at 3× its wrk capacity for 30 s (what ``make bench`` adds to the table)."""
    from bench import overload

    return overload.run(argparse.Namespace(labels=labels, kind="get", factor=3.0, seconds=30, api_workers=api_workers))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", type=int, default=5000)
    ap.add_argument("--api-workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--kinds", default="get,page,scan")
    ap.add_argument("--profile", type=Path, help="run the API under py-spy; collapsed stacks and a summary here")
    args = ap.parse_args(argv)
    args.kinds = [k for k in args.kinds.split(",") if k]
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the throw-away database and topics
    out = run(args)
    print(report(out), flush=True)
    if args.profile:
        from bench.profile_summary import summarize

        for f in sorted(args.profile.glob(f"api-{args.labels}.txt")):
            print(summarize(f, 30))
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
