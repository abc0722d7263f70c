"""The label read's own cost, before and after the re-hash left the read path (issue 21), same run.

    .venv/bin/python -m bench.consumer_path_reads [--labels 3000] [--seconds 5] [--clients 8] [--rounds 2]

Builds a throw-away ledger like :mod:`bench.consumer_path` (labels issued through CLI
+ API and projected), then, in this one process, lets ``--clients`` concurrent
tasks look up uniformly random labels for ``--seconds`` each way, round after round:

- ``rehash``: the statement every read ran before session 7 (the label's read-model
  row and trail joined with its stored rows in the event store, each stored body
  decoded and SHA-256-hashed against the published hash);
- ``flag``: :func:`projections.checked_view.checked_view` now (the integrity sweep's
  flag looked up instead);
- ``batched``: the API's :class:`traceledger.api.view_batch.ViewBatcher` over
  :func:`projections.checked_view.checked_views` (concurrent lookups, one statement).

Prints lookups/s (client and server CPU both count: they share the machine), the
ratio to ``rehash`` in the same round, p50/p99, and the time of one integrity
sweep pass over every label (the window's first term, docs/design/read-path.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import sys
import time

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from bench.consumer_path import ready_world
from bench.run import World, say
from ledger.config import Settings
from ledger.service import Ledger
from ledger.store import chain_id, chain_topic_sql, signed_body_sql
from projections.checked_view import checked_view
from projections.integrity_sweep import sweep
from traceledger.api.view_batch import ViewBatcher

TRAIL = ("seq", "kind", "actor", "region", "occurred_at", "log_index")


def rehash_sql(events_table: str) -> str:
    """The pre-session-7 read statement (parameters: chain uuid twice, serial), as the baseline."""
    trail = ", ".join(f"array_agg(e.{c} ORDER BY e.seq) AS trail_{c}" for c in TRAIL)
    stored_ok = (f"coalesce(bool_and(coalesce((s.topic = {chain_topic_sql('e.seq')}"
                 " AND sha256(st.body) = e.hash) OR (h.seq = e.seq AND h.head = e.hash), false)), true)")
    repeats = ("(SELECT count(*) FROM scan_inbox i WHERE i.serial = l.serial AND i.kind = 'scan' AND NOT i.counted AND EXISTS ("
               "SELECT 1 FROM verification.events e WHERE e.subject_type = 'label' AND e.subject = i.serial AND e.event_id = i.event_id))")
    return (f"SELECT l.*, COALESCE(lots.recalled, false) AS lot_recalled, COALESCE(cardinality(lots.inputs), 0) > 0 AS lot_transformed,"
            f" t.*, {repeats} AS repeat_scans, NOT EXISTS (SELECT 1 FROM \"{events_table}\" WHERE originator_id = %s AND originator_version < 1)"
            f" AND t.stored_ok AS chain_ok FROM verification.labels l LEFT JOIN verification.lots lots ON lots.gtin = l.gtin AND lots.lot = l.lot"
            f" CROSS JOIN LATERAL (SELECT {trail}, {stored_ok} AS stored_ok"
            f"  FROM verification.events e LEFT JOIN \"{events_table}\" s ON s.originator_id = %s AND s.originator_version = e.seq + 1"
            f"  LEFT JOIN LATERAL (SELECT {signed_body_sql('s.state')} AS body) st ON true"
            f"  LEFT JOIN public.label_heads h ON h.serial = e.subject"
            f"  WHERE e.subject_type = 'label' AND e.subject = l.serial) t WHERE l.serial = %s")


async def measure(lookup, serials: list[str], clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    end = time.monotonic() + seconds

    async def client():
        while time.monotonic() < end:
            t = time.perf_counter()
            view = await lookup(random.choice(serials))
            latencies.append(time.perf_counter() - t)
            assert view is not None

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100)
    return {"per_s": len(latencies) / elapsed, "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000}


async def rounds(app, conninfo: str, serials: list[str], args) -> dict:
    sql = rehash_sql(app.recorder.events_table_name)
    out: dict = {"rehash": [], "flag": [], "batched": []}
    async with AsyncConnectionPool(conninfo, min_size=args.clients, max_size=args.clients, kwargs={"autocommit": True}) as pool:
        async def rehash(serial):
            async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                chain = chain_id("label", serial)
                return await (await cur.execute(sql, (chain, chain, serial), prepare=True, binary=True)).fetchone()

        async def flag(serial):
            async with pool.connection() as conn:
                return await checked_view(app, conn, serial)

        batcher = ViewBatcher(app, pool)
        ways = {"rehash": rehash, "flag": flag, "batched": batcher.view}
        for way in ways.values():  # warm-up: prepared statements, pool
            await measure(way, serials, args.clients, 1)
        for r in range(args.rounds):
            for name, way in ways.items():
                out[name].append(await measure(way, serials, args.clients, args.seconds))
                say(f"round {r + 1} {name}: {out[name][-1]['per_s']:,.0f} lookups/s, p99 {out[name][-1]['p99_ms']:.1f} ms")
        out["batch_size"] = batcher.lookups / max(batcher.batches, 1)
        async with pool.connection() as conn:
            out["sweep"] = await sweep(app, conn)
    return out


def report(out: dict, args) -> str:
    rows = [f"label reads in one process, {args.clients} concurrent clients, {args.labels:,} labels uniformly random, "
            f"{args.rounds} rounds of {args.seconds:g} s; load at end {os.getloadavg()[0]:.1f}",
            "| way | lookups/s (median of rounds) | ratio to rehash (per round) | p50 / p99 |", "|---|---|---|---|"]
    for name in ("rehash", "flag", "batched"):
        med = statistics.median(r["per_s"] for r in out[name])
        ratios = ", ".join(f"{r['per_s'] / b['per_s']:.2f}×" for r, b in zip(out[name], out["rehash"]))
        last = out[name][-1]
        rows.append(f"| {name} | {med:,.0f} | {ratios} | {last['p50_ms']:.1f} / {last['p99_ms']:.1f} ms |")
    rows.append(f"batched: {out['batch_size']:.1f} lookups per statement; one integrity sweep pass: {out['sweep']}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up the throw-away database and topics
    w = World(Settings.from_env(), args.labels)
    try:
        serials_file = ready_world(w)
        serials = serials_file.read_text().split()
        ledger = Ledger(w.s)
        try:
            out = asyncio.run(rounds(ledger.app, w.s.pg_conninfo, serials, args))
        finally:
            ledger.close()
    finally:
        w.close()
    print(report(out, args), flush=True)
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
