"""Baseline figures of the foundation, each next to a same-run reference.

    .venv/bin/python -m bench.foundation [--labels 100000] [--seconds 15]

Needs the stack up (bash ops/stack.sh up). Uses its own fresh database and
topic prefix, starts its own API process, and prints/saves (bench/results/):
- labels issued per second through the CLI (sign, POST, verify, chain, store),
  next to the raw Ed25519 sign and verify rates measured in the same run;
- relay events/s (store -> Kafka) and projector events/s (Kafka -> read model);
- GET /v1/labels/{serial}: throughput, median and p99 latency from a separate
  load process, next to the same process doing direct single-row SELECTs.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import multiprocessing as mp
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import psycopg

from bench.loadgen import percentile
from bench.run import ed25519_rates
from ledger.config import REPO_ROOT, Settings
from traceledger import sandbox

RESULTS = REPO_ROOT / "bench" / "results"


def say(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _http_worker(port: int, serials: list[str], seconds: float, out: mp.Queue) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    rng = random.Random(os.getpid())
    lat = []
    errors = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        serial = rng.choice(serials)
        t = time.perf_counter()
        conn.request("GET", f"/v1/labels/{serial}", headers={"Accept": "application/json"})
        resp = conn.getresponse()
        resp.read()
        lat.append(time.perf_counter() - t)
        errors += resp.status != 200
    out.put((lat, errors))


def _sql_worker(conninfo: str, serials: list[str], seconds: float, out: mp.Queue) -> None:
    rng = random.Random(os.getpid())
    lat = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t = time.perf_counter()
            conn.execute("SELECT * FROM verification.labels WHERE serial = %s", (rng.choice(serials),), prepare=True).fetchone()
            lat.append(time.perf_counter() - t)
    out.put((lat, 0))


def load(target, args, workers: int) -> dict:
    q: mp.Queue = mp.Queue()
    procs = [mp.Process(target=target, args=(*args, q)) for _ in range(workers)]
    t = time.perf_counter()
    [p.start() for p in procs]
    results = [q.get() for _ in procs]
    [p.join() for p in procs]
    elapsed = time.perf_counter() - t
    lat = sorted(x for r, _ in results for x in r)
    return {
        "requests": len(lat),
        "errors": sum(e for _, e in results),
        "per_second": len(lat) / args[-1],
        "p50_ms": percentile(lat, 50) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
        "wall_s": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labels", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args()

    base = Settings.from_env()
    run_id = uuid.uuid4().hex[:8]
    db = f"tl_bench_{run_id}"
    sandbox.create_database(base, db)
    port = 8000 + random.randint(100, 800)
    work = Path(tempfile.mkdtemp(prefix="tl-bench-"))
    s = base.with_(pg_db=db, topic_prefix=f"bench-{run_id}.", listen_port=port, api_url=f"http://127.0.0.1:{port}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACELEDGER_")} | s.to_env()
    py = sys.executable
    results: dict = {"date": datetime.now(timezone.utc).isoformat(), "machine": platform.node(), "cpus": os.cpu_count(), "labels": args.labels}
    try:
        results["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        results["commit"] = None

    rates = ed25519_rates()
    sign_rate, verify_rate = rates["sign_per_s"], rates["verify_per_s"]
    results["ed25519_sign_per_s"], results["ed25519_verify_per_s"] = sign_rate, verify_rate
    say(f"baseline: Ed25519 sign {sign_rate:,.0f}/s, verify {verify_rate:,.0f}/s (one core)")

    api = subprocess.Popen([py, "-m", "traceledger.api"], env=env, cwd=REPO_ROOT, stdout=open(work / "api.log", "w"), stderr=subprocess.STDOUT)
    try:
        for _ in range(100):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.3)
        cli = [py, "-m", "traceledger.cli"]
        keys = work / "keys"
        def run(*a):
            return subprocess.run([*cli, *a], env=env, cwd=REPO_ROOT, check=True, capture_output=True, text=True)

        run("keygen", "--out", str(keys / "registrar.key"), "--actor", "registrar")
        run("keygen", "--out", str(keys / "producer.key"), "--actor", "bench-producer")
        run("init", "--key", str(keys / "registrar.key"), "--id", "registrar")
        run("actor", "register", "--key", str(keys / "registrar.key"), "--id", "bench-producer", "--role", "producer",
            "--name", "Bench producer", "--public-key", str(keys / "producer.key.pub"), "--gtin-prefix", "6901234")

        say(f"issuing {args.labels:,} labels through the CLI and API ...")
        t = time.perf_counter()
        run("issue", "--key", str(keys / "producer.key"), "--gtin", "06901234000016", "--lot", "BENCH1",
            "--product", "Bench battery", "--count", str(args.labels), "--out", str(work / "labels.csv"))
        issue_s = time.perf_counter() - t
        results["issue_labels_per_s"] = args.labels / issue_s
        say(f"issued {args.labels:,} in {issue_s:.1f}s: {results['issue_labels_per_s']:,.0f} labels/s "
            f"({results['issue_labels_per_s'] / verify_rate:.2f}x the raw verify rate)")

        t = time.perf_counter()
        subprocess.run([py, "-c", "from consumers.relay import Relay; from ledger.config import Settings; Relay(Settings.from_env()).run(until_idle=True)"],
                       env=env, cwd=REPO_ROOT, check=True, capture_output=True)
        relay_s = time.perf_counter() - t
        results["relay_events_per_s"] = (args.labels + 2) / relay_s
        say(f"relayed {args.labels + 2:,} events in {relay_s:.1f}s: {results['relay_events_per_s']:,.0f} events/s (incl. start-up)")

        t = time.perf_counter()
        subprocess.run([py, "-m", "consumers.projector", "--until-idle"], env=env, cwd=REPO_ROOT, check=True, capture_output=True)
        proj_s = time.perf_counter() - t
        results["projector_events_per_s"] = args.labels / proj_s
        say(f"projected {args.labels:,} events in {proj_s:.1f}s: {results['projector_events_per_s']:,.0f} events/s (incl. start-up)")

        with open(work / "labels.csv") as fh:
            serials = [row["serial"] for row in csv.DictReader(fh)]
        say(f"GET /v1/labels/{{serial}}: {args.connections} keep-alive connections for {args.seconds:.0f}s ...")
        results["get_label"] = load(_http_worker, (port, serials, args.seconds), args.connections)
        results["sql_lookup_baseline"] = load(_sql_worker, (s.pg_conninfo, serials, args.seconds), args.connections)
        g, b = results["get_label"], results["sql_lookup_baseline"]
        say(f"GET label: {g['per_second']:,.0f} req/s, p50 {g['p50_ms']:.2f} ms, p99 {g['p99_ms']:.2f} ms, errors {g['errors']}")
        say(f"baseline single-row SELECT: {b['per_second']:,.0f}/s, p50 {b['p50_ms']:.2f} ms, p99 {b['p99_ms']:.2f} ms "
            f"(API at {g['per_second'] / b['per_second']:.2f}x)")
    finally:
        api.terminate()
        api.wait(10)
        with psycopg.connect(base.pg_conninfo, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"foundation-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(results, indent=2))
    say(f"saved {out.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
