"""The 3-broker cluster's cost on issuance and projection against the single broker, same run (issue 18).

One workload, twice: N labels issued and shipped through the ledger (PostgreSQL only:
the control), then relayed to Kafka (acks=all: one replica on the single broker, three
with min.insync.replicas=2 on the cluster) and projected into the verification read
model. Each phase is timed on a fresh database and topic prefix; the report gives
events/s per phase and the cluster's ratio to the single broker.

    PYTHONPATH=$PWD .venv/bin/python -m bench.cluster_overhead --private [--labels 5000]

``--private`` starts a single broker and a 3-broker cluster of its own (ops/kafka.sh on free
ports, data under .run/, both removed at the end), so neither baseline is a broker other
work shares. Or name a running cluster and use the configured broker as the single one:

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
from tests.cluster_stack import ClusterStack
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


def measure(base: Settings, single: Settings, cluster: Settings, labels: int) -> None:
    """Single broker, cluster, single broker again, each on a fresh database; the ratios to the singles' mean."""
    results = {}
    for name, settings in [("single", single), ("cluster", cluster), ("single again", single)]:
        db = f"tl_bench_{uuid.uuid4().hex[:8]}"
        sandbox.create_database(base, db)
        try:
            results[name] = run_once(settings.with_(pg_db=db, topic_prefix=f"{db}.", partitions=4), labels)
        finally:
            # Topics on the configured broker are dropped; a private broker's go with it.
            sandbox.drop(base, [db], [f"{db}."] if settings.kafka_bootstrap == base.kafka_bootstrap else [])
        print(name, {k: round(v) for k, v in results[name].items()}, flush=True)
    mean = {k: (results["single"][k] + results["single again"][k]) / 2 for k in results["single"]}
    for phase in ("append_eps", "relay_eps", "project_eps"):
        print(f"{phase}: single {mean[phase]:.0f}/s (runs {results['single'][phase]:.0f}, {results['single again'][phase]:.0f}), "
              f"cluster {results['cluster'][phase]:.0f}/s, cluster/single {results['cluster'][phase] / mean[phase]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labels", type=int, default=5000)
    parser.add_argument("--private", action="store_true", help="start a private single broker and 3-broker cluster")
    parser.add_argument("--cluster")
    parser.add_argument("--cluster-credentials", type=Path)
    args = parser.parse_args()
    base = Settings.from_env()
    if not args.private:
        if not (args.cluster and args.cluster_credentials):
            parser.error("--cluster and --cluster-credentials, or --private")
        measure(base, base, base.with_(kafka_bootstrap=args.cluster, kafka_credentials=args.cluster_credentials.resolve()), args.labels)
        return
    stacks: list[ClusterStack] = []
    try:
        for brokers in (1, 3):
            stacks.append(ClusterStack(brokers=brokers).start())
            print(f"started a private {brokers}-broker Kafka on {stacks[-1].bootstrap}", flush=True)
        measure(base, stacks[0].on(base), stacks[1].on(base), args.labels)
    finally:
        for stack in stacks:
            stack.remove()


if __name__ == "__main__":
    main()
