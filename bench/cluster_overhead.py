"""The 3-broker cluster's cost on issuance and projection against the single broker, same run (issue 18).

One workload, twice: N labels issued and shipped through the ledger (PostgreSQL only:
the control), then relayed to Kafka (acks=all: one replica on the single broker, three
with min.insync.replicas=2 on the cluster) and projected into the verification read
model. Each phase is timed on a fresh database and topic prefix; the report gives
events/s per phase and the cluster's ratio to the single broker.

    KAFKA_BROKERS=3 KAFKA_PORT=19092 ... ops/kafka.sh start      # the cluster, beside the dev broker
    PYTHONPATH=$PWD .venv/bin/python -m bench.cluster_overhead \\
        --cluster 127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094 --cluster-credentials .run/cluster/kafka/credentials [--labels 5000]
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

from consumers.topics import ensure_topics
from ledger.config import Settings
from ledger.service import Ledger
from tests.helpers import Cast, shipped_payload
from tests.pipeline import project_all, relay_all
from traceledger import sandbox


def run_once(settings: Settings, labels: int) -> dict[str, float]:
    cast = Cast()
    ledger = Ledger(settings)
    try:
        ledger.append(cast.founding_events())
        t0 = time.perf_counter()
        for start in range(0, labels, 1000):
            issued = [cast.issue() for _ in range(min(1000, labels - start))]
            ledger.append(issued)
            ledger.append([cast.event("acme", "label", s.event.subject, "Shipped", shipped_payload("distributor")) for s in issued])
        appended = time.perf_counter() - t0
    finally:
        ledger.close()
    ensure_topics(settings)
    t0 = time.perf_counter()
    relayed = relay_all(settings)
    relay_s = time.perf_counter() - t0 - 0.5  # relay_all idles 0.5 s before it returns
    t0 = time.perf_counter()
    project_all(settings)
    project_s = time.perf_counter() - t0
    events = 2 * labels
    return {"events": events, "relayed": relayed, "append_eps": events / appended, "relay_eps": events / relay_s, "project_eps": events / project_s}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labels", type=int, default=5000)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--cluster-credentials", type=Path, required=True)
    args = parser.parse_args()
    base = Settings.from_env()
    results = {}
    for name, settings in [("single", base), ("cluster", base.with_(kafka_bootstrap=args.cluster, kafka_credentials=args.cluster_credentials.resolve())),
                           ("single again", base)]:
        db = f"tl_bench_{uuid.uuid4().hex[:8]}"
        sandbox.create_database(base, db)
        try:
            results[name] = run_once(settings.with_(pg_db=db, topic_prefix=f"{db}.", partitions=4), args.labels)
        finally:
            sandbox.drop(base, [db], [f"{db}."])
        print(name, {k: round(v) for k, v in results[name].items()}, flush=True)
    single = {k: (results["single"][k] + results["single again"][k]) / 2 for k in results["single"]}
    for phase in ("append_eps", "relay_eps", "project_eps"):
        print(f"{phase}: single {single[phase]:.0f}/s, cluster {results['cluster'][phase]:.0f}/s, cluster/single {results['cluster'][phase] / single[phase]:.2f}")


if __name__ == "__main__":
    main()
