"""What the per-client limits cost the consumer path (issue 15): req/s with and without, same run.

    .venv/bin/python -m bench.limits_cost [--labels 3000] [--api-workers 2] [--seconds 10] [--rounds 2]
                                          [--kinds get,page,scan]

Reuses :mod:`bench.consumer_path` (owned by the consumer-path harness; not changed
here): one throw-away ledger with ``--labels`` labels, wrk with a uniformly random
label and a random ``X-Forwarded-For`` per request, so every request is a new
client and the limits never refuse: what is measured is their bookkeeping (one
``INSERT … ON CONFLICT`` per limited request, a bounded prune now and then,
:mod:`ledger.client_limits`). The API is restarted between the two settings:
``on`` is the defaults, ``off`` sets every limit to 0 (:class:`ledger.client_limits.Limit`:
0 means unlimited, and then no statement is sent). Rounds alternate the order
(on/off, off/on, ...) so drift on a shared machine falls on both. ``GET
/v1/labels/{serial}`` spends no limit: its on/off ratio is the run's noise.
Prints, per kind, the median req/s with limits on and off, on/off, and p50/p99.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys

from bench.consumer_path import TARGETS, Hello, ready_world, wrk
from bench.run import World, say
from ledger.config import Settings

LIMIT_ENV = ("TRACELEDGER_LIMIT_SCANS", "TRACELEDGER_LIMIT_PIN_CHECKS", "TRACELEDGER_LIMIT_REPORTS",
             "TRACELEDGER_LIMIT_SMS", "TRACELEDGER_LIMIT_CALLS")


def restart_api(w: World, limits_on: bool, defaults: dict[str, str]) -> None:
    """The API again, with the configured limits (``on``) or none (``off``)."""
    w.stop(w.api)
    w.procs.remove(w.api)
    w.env = w.env | (defaults if limits_on else dict.fromkeys(LIMIT_ENV, "0"))
    w.start_api()


def run(args) -> dict:
    w = World(Settings.from_env(), args.labels, api_workers=args.api_workers)
    out: dict = {"labels": args.labels, "api_workers": args.api_workers, "seconds": args.seconds, "rounds": []}
    defaults = {k: w.env[k] for k in LIMIT_ENV}
    try:
        serials_file = ready_world(w)
        hello = Hello(w)
        wrk(hello.port, "hello", 2)  # warm-up
        out["hello_before"] = wrk(hello.port, "hello", args.seconds)
        for r in range(args.rounds):
            order = (True, False) if r % 2 == 0 else (False, True)
            for limits_on in order:
                restart_api(w, limits_on, defaults)
                for kind in args.kinds:
                    wrk(w.port, kind, 2, serials_file)  # warm-up: connections, prepared statements
                mode = "on" if limits_on else "off"
                for kind in args.kinds:
                    res = wrk(w.port, kind, args.seconds, serials_file)
                    out["rounds"].append({"round": r, "limits": mode, "kind": kind, **res})
                    say(f"round {r} limits {mode} {kind}: {res['per_s']:,.0f} req/s, p50 {res['p50_ms']:.1f} p99 {res['p99_ms']:.1f} ms, "
                        f"non-2xx {res['status_errors']}")
        out["hello_after"] = wrk(hello.port, "hello", args.seconds)
        w.stop(hello.proc)
    finally:
        w.close()
    return out


def summary(out: dict) -> dict[str, dict]:
    """Per kind: median req/s, p50 and p99 with limits on and off, and on/off."""
    rows: dict[str, dict] = {}
    for kind in dict.fromkeys(r["kind"] for r in out["rounds"]):
        row = {}
        for mode in ("on", "off"):
            runs = [r for r in out["rounds"] if r["kind"] == kind and r["limits"] == mode]
            row[mode] = {"per_s": statistics.median(r["per_s"] for r in runs), "all": [round(r["per_s"]) for r in runs],
                         "p50_ms": statistics.median(r["p50_ms"] for r in runs), "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                         "non_2xx": sum(r["status_errors"] for r in runs)}
        row["on_over_off"] = row["on"]["per_s"] / row["off"]["per_s"]
        rows[kind] = row
    return rows


def report(out: dict) -> str:
    hello = (out["hello_before"]["per_s"] + out["hello_after"]["per_s"]) / 2
    lines = [f"limits cost: wrk -t2 -c8 -d{int(out['seconds'])}s x {len(out['rounds']) // max(1, 2 * len(summary(out)))} rounds per setting, "
             f"{out['labels']:,} labels, a new client per request, {out['api_workers']} workers; hello {hello:,.0f} req/s; "
             f"load at end {os.getloadavg()[0]:.1f}",
             "| figure | limits on req/s | limits off req/s | on/off | p50/p99 on (ms) | p50/p99 off (ms) | non-2xx on/off |",
             "|---|---|---|---|---|---|---|"]
    for kind, row in summary(out).items():
        on, off = row["on"], row["off"]
        lines.append(f"| {TARGETS[kind]}{' (no limit: noise)' if kind == 'get' else ''} | {on['per_s']:,.0f} {on['all']} | "
                     f"{off['per_s']:,.0f} {off['all']} | {row['on_over_off']:.2f} | {on['p50_ms']:.1f}/{on['p99_ms']:.1f} | "
                     f"{off['p50_ms']:.1f}/{off['p99_ms']:.1f} | {on['non_2xx']}/{off['non_2xx']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", type=int, default=3000)
    ap.add_argument("--api-workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--kinds", default="get,page,scan")
    args = ap.parse_args(argv)
    args.kinds = [k for k in args.kinds.split(",") if k]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the throw-away database and topics
    out = run(args)
    print(report(out), flush=True)
    print(json.dumps({"summary": summary(out), **out}, default=str))


if __name__ == "__main__":
    main()
