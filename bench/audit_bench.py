"""Audit throughput and CPU per event vs raw Ed25519 verify, and proof sizes/latencies.

    .venv/bin/python -m bench.audit_bench --events 30000 [--runs 3] [--profile DIR]
    .venv/bin/python -m bench.audit_bench --events 30000 --keep          # leave the world, print its file
    .venv/bin/python -m bench.audit_bench --world /tmp/tl-audit-x/world.json [--drop]

Builds a throw-away ledger (database and topic prefix from ``traceledger.sandbox``)
of ``--events`` issued labels through ``Ledger.append`` and the relay, then runs
``traceledger --json audit run`` as a separate process ``--runs`` times, each from
a fresh state file, exactly as ``make bench`` does (``bench.run.audit``). It reports
events/s and the audit process's CPU µs per event (user + system, all threads), next
to the raw one-core Ed25519 verify rate measured in the same run. ``--keep`` leaves
the world in place so the audit can be measured again after a change (``--world``);
``--drop`` removes it afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from bench.run import children_cpu, ed25519_rates
from ledger.config import REPO_ROOT, Settings
from ledger.logging_setup import configure
from traceledger import sandbox

PY = sys.executable


def build_world(base: Settings, events: int) -> tuple[Settings, Path, str, str]:
    """A fresh database and topic prefix holding ``events`` issued labels, relayed to Kafka."""
    from consumers.relay import Relay
    from ledger.service import Ledger
    from tests.helpers import Cast

    run = uuid.uuid4().hex[:8]
    db, prefix = f"tl_bench_{run}", f"bench-{run}."
    sandbox.create_database(base, db)
    work = Path(tempfile.mkdtemp(prefix="tl-audit-"))
    s = base.with_(pg_db=db, topic_prefix=prefix, log_key=work / "log.key")
    ledger, cast = Ledger(s), Cast()
    try:
        ledger.append(cast.founding_events())
        t = time.monotonic()
        for i in range(0, events, 1000):
            ledger.append([cast.issue() for _ in range(min(1000, events - i))])
        print(f"ledger append: {events / (time.monotonic() - t):.0f} events/s", flush=True)
    finally:
        ledger.close()
    t = time.monotonic()
    n = Relay(s).run(until_idle=True)
    print(f"relay (sequence + tree + Kafka + checkpoints): {n / (time.monotonic() - t):.0f} events/s", flush=True)
    return s, work, db, prefix


def run_audit(s: Settings, work: Path, profile: Path | None, tag: str, processes: str | None = None) -> dict:
    """One ``traceledger --json audit run`` from an empty state; wall time and the CPU of the
    audit process and its decoding workers. ``processes``: ``TRACELEDGER_AUDIT_PROCESSES``."""
    state = work / f"audit-{uuid.uuid4().hex[:6]}.state"
    args = [str(Path(PY).parent / "traceledger"), "--json", "audit", "run", "--state", str(state)]
    if profile:
        profile.mkdir(parents=True, exist_ok=True)
        args = [shutil.which("py-spy") or str(Path(PY).parent / "py-spy"), "record", "--subprocesses", "-r", "97", "-f", "raw",
                "-o", str(profile / f"audit-{tag}.txt"), "--", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACELEDGER_")} | s.to_env()
    if processes is not None:
        env["TRACELEDGER_AUDIT_PROCESSES"] = processes
    t, cpu = time.perf_counter(), children_cpu()
    p = subprocess.run(args, env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    elapsed, cpu = time.perf_counter() - t, children_cpu() - cpu  # the audit process (all threads) and its worker processes
    state.unlink(missing_ok=True)
    if p.returncode != 0:
        raise SystemExit(f"audit failed ({p.returncode}): {p.stderr[-2000:]}")
    out = p.stdout
    report = json.loads(next(line for line in out.splitlines() if line.startswith("{")))
    n = max(1, report["new_events"])
    return {"events": report["new_events"], "ok": report["ok"], "checkpoints": report["checkpoints"],
            "events_per_s": report["new_events"] / elapsed, "cpu_us_per_event": cpu / n * 1e6}


def proof_figures(s: Settings) -> str:
    from ledger.transparency import proofs, tree

    with psycopg.connect(s.pg_conninfo) as conn:
        size = tree.stored_size(conn)
        lat, sizes = [], []
        for i in range(0, size, max(1, size // 200)):
            t = time.perf_counter()
            p = proofs.inclusion_proof(i, size, tree.reader_for(conn))
            lat.append(time.perf_counter() - t)
            sizes.append(len(p))
        t = time.perf_counter()
        c = proofs.consistency_proof(size // 3, size, tree.reader_for(conn))
        cl = time.perf_counter() - t
    return (f"tree size {size}: inclusion proof {min(sizes)}-{max(sizes)} hashes, median {statistics.median(lat)*1000:.2f} ms; "
            f"consistency proof {len(c)} hashes, {cl*1000:.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=20000, help="issued labels of a new world")
    ap.add_argument("--runs", type=int, default=1, help="audits of the same topics, each from a fresh state")
    ap.add_argument("--processes", default="",
                    help="comma-separated TRACELEDGER_AUDIT_PROCESSES settings to compare, alternating in each run (e.g. 0,2); default: the auditor's own")
    ap.add_argument("--world", type=Path, help="reuse the world file a --keep run printed")
    ap.add_argument("--keep", action="store_true", help="leave the world in place for later --world runs")
    ap.add_argument("--drop", action="store_true", help="with --world: remove the world afterwards")
    ap.add_argument("--profile", type=Path, help="run the audits under py-spy; collapsed stacks go to this directory")
    args = ap.parse_args()
    configure("WARNING")
    base = Settings.from_env()
    if args.world:
        w = json.loads(args.world.read_text())
        s, work, db, prefix = Settings.from_env(w["env"]), Path(w["work"]), w["db"], w["prefix"]
        keep = not args.drop
    else:
        s, work, db, prefix = build_world(base, args.events)
        keep = args.keep
    try:
        settings = args.processes.split(",") if args.processes else [None]
        runs: dict = {p: [] for p in settings}
        for i in range(args.runs):
            for p in settings:
                # The baseline right before each audit: on a shared machine the load moves.
                verify = ed25519_rates(3000)["verify_per_s"]
                r = run_audit(s, work, args.profile, f"{i}-{p}", p) | {"verify_per_s": verify}
                if not r["ok"]:
                    raise SystemExit(f"the audit found failures in a clean ledger: {r}")
                runs[p].append(r)
                print(f"audit (processes {p or 'default'}): {r['events']} events, {r['events_per_s']:,.0f} events/s, "
                      f"CPU {r['cpu_us_per_event']:,.0f} µs/event; verify {verify:,.0f}/s ({1e6 / verify:,.0f} µs); "
                      f"ratio {r['events_per_s'] / verify:.2f}×, checkpoints {r['checkpoints']}", flush=True)
        print("| figure | value | baseline | ratio | target | met? |\n|---|---|---|---|---|---|")
        for p, rs in runs.items():
            if not rs:  # --runs 0 (e.g. only --drop a kept world): nothing measured
                continue
            rate, verify = statistics.median(r["events_per_s"] for r in rs), statistics.median(r["verify_per_s"] for r in rs)
            ratio = statistics.median(r["events_per_s"] / r["verify_per_s"] for r in rs)
            cpu = statistics.median(r["cpu_us_per_event"] for r in rs)
            cpu_ratio = statistics.median(1e6 / r["verify_per_s"] / r["cpu_us_per_event"] for r in rs)
            label = f"audit, {rs[0]['events']:,} events (processes {p or 'default'}, median of {len(rs)})"
            print(f"| {label} | {rate:,.0f} events/s | Ed25519 verify {verify:,.0f}/s | {ratio:.2f}× | ≥ 0.5× | {'yes' if ratio >= 0.5 else 'no'} |\n"
                  f"| audit CPU per event (processes {p or 'default'}) | {cpu:,.0f} µs | verify {1e6 / verify:,.0f} µs | {cpu_ratio:.2f}× |  |  |")
        if not args.world:
            print(proof_figures(s))
    finally:
        if keep:
            world = work / "world.json"
            world.write_text(json.dumps({"env": s.to_env(), "work": str(work), "db": db, "prefix": prefix}))
            print(f"world kept: --world {world}")
        else:
            sandbox.drop(base, [db], [prefix])
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
