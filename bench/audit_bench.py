"""Audit throughput vs raw Ed25519 verify, and proof sizes/latencies, on a fresh database.

    .venv/bin/python -m bench.audit_bench --events 20000
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from consumers.auditor import Auditor
from consumers.checkpointer import load_or_create_log_key
from consumers.relay import Relay
from ledger import proofs, tree
from ledger.keys import KeyPair, verify_signature
from ledger.service import Ledger
from tests.helpers import Cast
from traceledger import sandbox
from traceledger.config import Settings
from traceledger.logs import configure


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20000)
    args = ap.parse_args()
    configure("WARNING")
    base = Settings.from_env()
    run = uuid.uuid4().hex[:8]
    db = f"tl_bench_{run}"
    sandbox.create_database(base, db)
    tmp = Path(tempfile.mkdtemp())
    s = base.with_(pg_db=db, topic_prefix=f"bench-{run}.", log_key=tmp / "log.key")
    ledger, cast = Ledger(s), Cast()
    ledger.append(cast.founding_events())
    t = time.monotonic()
    for i in range(0, args.events, 1000):
        ledger.append([cast.issue() for _ in range(min(1000, args.events - i))])
    print(f"ledger append: {args.events / (time.monotonic() - t):.0f} events/s")
    t = time.monotonic()
    n = Relay(s).run(until_idle=True)
    print(f"relay (sequence + tree + Kafka + checkpoints): {n / (time.monotonic() - t):.0f} events/s")
    key = load_or_create_log_key(s.log_key)
    t = time.monotonic()
    report = Auditor(s, key.public_key, state_path=tmp / "audit.state").run()
    dt = time.monotonic() - t
    print(f"audit: {report.new_events} events in {dt:.2f}s = {report.new_events / dt:.0f} events/s, ok={report.ok}, checkpoints={report.state.checkpoints}")
    k = KeyPair.generate()
    msg, sig = b"x" * 300, k.sign(b"x" * 300)
    t = time.monotonic()
    for _ in range(20000):
        verify_signature(k.public_key, msg, sig)
    print(f"raw Ed25519 verify (PyNaCl, same process): {20000 / (time.monotonic() - t):.0f} /s")
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
    print(f"tree size {size}: inclusion proof {min(sizes)}-{max(sizes)} hashes, median {statistics.median(lat)*1000:.2f} ms; "
          f"consistency proof {len(c)} hashes, {cl*1000:.2f} ms")
    ledger.close()
    with psycopg.connect(base.pg_conninfo, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


if __name__ == "__main__":
    main()
