"""Time to recall an input lot whose impact is N finished units (default 100,000).

    .venv/bin/python -m bench.recall_impact [--units 100000] [--sample 200]

Needs the stack up. Uses its own database, topic prefix and API, relay and
projector processes. A supplier commissions a cell lot; the producer records
that its battery lot was made from it and issues N labels in the battery lot;
once the read model holds them all, ``traceledger recall --input-lot`` (which
shows the impact first, then signs ONE lot event) is run and timed, and the
clock runs until a random sample of the units all answer ``recalled`` through
``GET /v1/labels/{serial}``. Saves bench/results/recall-impact-*.json.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import httpx
import psycopg

from ledger.config import REPO_ROOT, Settings
from tests.conftest import wait_for
from tests.helpers import Cast, gtin
from tests.test_aggregation import CELLS
from traceledger import sandbox

RESULTS = REPO_ROOT / "bench" / "results"


def say(msg: str) -> None:
    print(f"[bench.recall_impact] {msg}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=200, help="units checked to answer recalled")
    parser.add_argument("--keep", action="store_true", help="keep the database and topics")
    args = parser.parse_args()
    base = Settings.from_env()
    run_id = uuid.uuid4().hex[:8]
    db, prefix = f"tl_bench_recall_{run_id}", f"bench-{run_id}."
    sandbox.create_database(base, db)
    work = Path(tempfile.mkdtemp(prefix="tl-bench-recall-"))
    cast = Cast()
    for actor, key in cast.keys.items():
        key.save(work / f"{actor}.key")
    port = 8000 + random.randint(100, 800)
    s = base.with_(pg_db=db, topic_prefix=prefix, listen_port=port, api_url=f"http://127.0.0.1:{port}", gateway_key=work / "gateway.key")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACELEDGER_")} | s.to_env()
    py = sys.executable
    tl = str(Path(py).parent / "traceledger")
    procs = [subprocess.Popen([py, "-m", module], env=env, cwd=REPO_ROOT, stdout=open(work / f"{module}.log", "w"), stderr=subprocess.STDOUT)
             for module in ("traceledger.api", "consumers.relay", "consumers.projector")]
    results: dict = {"units": args.units, "sample": args.sample, "database": db, "cpus": os.cpu_count(),
                     "at": datetime.now(timezone.utc).isoformat()}

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run([tl, *cmd], env=env, cwd=REPO_ROOT, check=True, capture_output=True, text=True)

    try:
        wait_for(lambda: _healthy(s.api_url), 60, what="the API")
        founding = cast.founding_events()
        body = {"events": [{"body": base64.b64encode(e.body).decode(), "signature": base64.b64encode(e.signature).decode()} for e in founding]}
        assert httpx.post(f"{s.api_url}/v1/events", json=body).json()["refused"] == 0
        cell_gtin, cell_lot = CELLS.split("/")
        run("lot", "commission", "--key", str(work / "other-producer.key"), "--gtin", cell_gtin, "--lot", cell_lot,
            "--product", "18650 cells", "--certificate", "CCC 2024011606123456")
        run("lot", "transform", "--key", str(work / "acme.key"), "--gtin", gtin("00002"), "--lot", "PACK-1", "--input", CELLS)
        t = time.perf_counter()
        run("issue", "--key", str(work / "acme.key"), "--gtin", gtin("00002"), "--lot", "PACK-1", "--product", "Battery 48V",
            "--count", str(args.units), "--out", str(work / "labels.csv"))
        results["issue_s"] = round(time.perf_counter() - t, 1)
        say(f"issued {args.units:,} labels in {results['issue_s']}s")
        wait_for(lambda: _projected(s) >= args.units, 1800, interval=2, what="the read model to hold every label")
        results["issued_to_projected_s"] = round(time.perf_counter() - t, 1)
        serials = [row["serial"] for row in csv.DictReader(open(work / "labels.csv"))]
        sample = random.sample(serials, min(args.sample, len(serials)))
        assert all(_verdict(s.api_url, x) == "genuine" for x in sample[:10])

        t0 = time.perf_counter()
        out = run("--json", "recall", "--key", str(work / "regulator.key"), "--input-lot", CELLS, "--reason", "cells overheat", "--yes")
        results["recall_command_s"] = round(time.perf_counter() - t0, 3)
        answer = json.loads(out.stdout)
        results["impact_units"] = answer["impact"]["units"]
        results["impact_lots"] = [x["lot"] for x in answer["impact"]["affected_lots"]]
        # The recall is one lot row that every view checks, so it shows on all units at once:
        # wait for one probe unit, then confirm the whole sample (one request each).
        while _verdict(s.api_url, sample[0]) != "recalled":
            if time.perf_counter() - t0 > 300:
                raise SystemExit("the probe unit still does not answer recalled after 300 s")
            time.sleep(0.05)
        results["recall_to_first_unit_recalled_s"] = round(time.perf_counter() - t0, 3)
        late = [x for x in sample if _verdict(s.api_url, x) != "recalled"]
        results["recall_to_sample_recalled_s"] = round(time.perf_counter() - t0, 3)
        results["sample_not_recalled"] = len(late)
        assert not late, f"{len(late)} sampled units do not answer recalled"
        t = time.perf_counter()
        _verdict(s.api_url, sample[0])
        results["one_view_ms"] = round((time.perf_counter() - t) * 1000, 1)
        say(json.dumps(results))
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"recall-impact-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S')}.json"
        path.write_text(json.dumps(results, indent=2) + "\n")
        say(f"saved {path}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        if not args.keep:
            sandbox.drop(base, [db], [prefix])


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _projected(s: Settings) -> int:
    try:
        with psycopg.connect(s.pg_conninfo) as conn:
            return conn.execute("SELECT count(*) FROM verification.labels").fetchone()[0]
    except psycopg.Error:
        return 0


def _verdict(url: str, serial: str) -> str:
    return httpx.get(f"{url}/v1/labels/{serial}", timeout=10).json()["verdict"]


if __name__ == "__main__":
    main()
