"""Detector figures on simulated traffic: precision/recall per kind and events/s.

    .venv/bin/python -m bench.alerts [--labels 100000] [--seed 2026]

Needs the stack up. Uses its own database, topic prefix and API process; runs
``traceledger simulate`` through that API, relays everything to Kafka, then
times the detector alone over the whole topic (``--until-idle``) and scores
its alerts with ``traceledger alerts report``. Saves bench/results/alerts-*.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg

from ledger.config import REPO_ROOT, Settings
from ledger.keys import KeyPair
from tests.conftest import wait_for
from tests.test_alerts_api import inbox_recorded
from traceledger import sandbox

RESULTS = REPO_ROOT / "bench" / "results"


def say(msg: str) -> None:
    print(f"[bench.alerts] {msg}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labels", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    args = parser.parse_args()
    base = Settings.from_env()
    run_id = uuid.uuid4().hex[:8]
    db = f"tl_bench_alerts_{run_id}"
    sandbox.create_database(base, db)
    work = Path(tempfile.mkdtemp(prefix="tl-bench-alerts-"))
    KeyPair.generate("gateway").save(work / "gateway.key")
    port = 8000 + random.randint(100, 800)
    s = base.with_(pg_db=db, topic_prefix=f"bench-{run_id}.", listen_port=port, api_url=f"http://127.0.0.1:{port}", gateway_key=work / "gateway.key")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACELEDGER_")} | s.to_env()
    py = sys.executable
    TL = str(Path(py).parent / "traceledger")  # the console script (python -m traceledger.cli trips on cli_audit's import cycle)
    results: dict = {"labels": args.labels, "seed": args.seed, "database": db, "cpus": os.cpu_count()}
    started = [subprocess.Popen([py, "-m", "traceledger.api"], env=env, cwd=REPO_ROOT, stdout=open(work / "api.log", "w"), stderr=subprocess.STDOUT)]

    def timed(what: str, cmd: list[str], log: str) -> float:
        t = time.perf_counter()
        subprocess.run(cmd, env=env, cwd=REPO_ROOT, check=True, stdout=open(work / log, "w"), stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - t
        say(f"{what}: {seconds:.1f}s")
        return seconds

    try:
        wait_for(lambda: _healthy(s.api_url), 60, what="the API")
        sim_out = work / "sim"
        results["simulate_s"] = timed(f"simulate {args.labels:,} labels (seed {args.seed})",
                                      [TL, "simulate", "--seed", str(args.seed), "--labels", str(args.labels),
                                       "--out", str(sim_out), "--demo-dir", str(work / "demo")], "simulate.log")
        run = json.loads((sim_out / "run.json").read_text())
        results["events"] = run["events"]
        results["behaviours"] = run["behaviours"]
        wait_for(lambda: inbox_recorded(s), 300, interval=1, what="API scans recorded")
        results["relay_s"] = timed("relay", [py, "-c", "from consumers.relay import Relay; from ledger.config import Settings; Relay(Settings.from_env()).run(until_idle=True)"], "relay.log")
        results["detector_s"] = timed("detector over the whole topic", [py, "-m", "consumers.detector", "--until-idle"], "detector.log")
        stopped = [json.loads(line) for line in open(work / "detector.log") if '"detector_stopped"' in line][-1]
        results["detector_events"] = stopped["applied"]
        results["detector_events_per_s_in_loop"] = stopped["events_per_second"]
        results["detector_events_per_s_with_startup"] = round(stopped["applied"] / results["detector_s"], 1)
        say(f"detector: {stopped['applied']:,} events, {stopped['events_per_second']:,.0f} events/s in its loop, "
            f"{results['detector_events_per_s_with_startup']:,.0f}/s including start-up")
        # Scored as a regulator: the only role that sees every alert (unknown codes have no producer).
        regulator = ["--key", str(work / "demo" / "keys" / "regulator.key")]
        report = subprocess.run([TL, "alerts", "report", "--truth", str(sim_out / "truth.jsonl")] + regulator,
                                env=env, cwd=REPO_ROOT, check=True, capture_output=True, text=True)
        print(report.stdout, flush=True)
        results["report"] = json.loads(subprocess.run([TL, "--json", "alerts", "report", "--truth", str(sim_out / "truth.jsonl")] + regulator,
                                                      env=env, cwd=REPO_ROOT, check=True, capture_output=True, text=True).stdout)["scores"]
    finally:
        for p in started:
            p.terminate()
            p.wait(15)
        if not args.keep:
            with psycopg.connect(base.pg_conninfo, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"alerts-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    say(f"saved {out.relative_to(REPO_ROOT)} (work files in {work})")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
