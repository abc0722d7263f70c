"""How the consumer path's durable writes commit (issue 21): per request, grouped, or by PostgreSQL's commit_delay.

    .venv/bin/python -m bench.consumer_path_commit [--seconds 5] [--clients 16] [--pg-port 55433]

Starts a throw-away PostgreSQL (initdb under a temporary directory, its own port,
``fsync`` and ``synchronous_commit`` on as in production; the shared stack's server
cannot take ``commit_delay`` from a non-superuser), applies the ledger's migrations,
then runs ``--clients`` concurrent asyncio clients for ``--seconds`` per mode, each
request writing what a recorded query writes (one limit hit, one first-query mark,
one inbox row), all in one process, modes back to back:

- ``two commits``: :func:`ledger.client_limits.spend` then :func:`ledger.scan_inbox.accept_async`
  (what the API did before: two WAL flushes per request);
- ``one statement``: :class:`ledger.inbox_group.GroupCommit` with ``max_rows=1`` and a writer per client
  (the statement of the group commit, one request each: one flush per request);
- ``group commit, N writers``: :class:`ledger.inbox_group.GroupCommit` with N statements in flight (one flush per batch);
- the first two again with ``commit_delay = 1000`` µs, ``commit_siblings = 2`` (PostgreSQL's own grouping of
  concurrent flushes, set with ALTER SYSTEM and a reload).

Prints requests/s, p50/p99 latency, commits per request (``pg_stat_database.xact_commit``) and WAL
flushes per request (``pg_stat_wal.wal_sync``): the last is what the machine's load does not change.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg_pool import AsyncConnectionPool

from ledger import client_limits, migrate, scan_inbox
from ledger.inbox_group import WRITERS, GroupCommit

PG_BIN = Path("/usr/lib/postgresql/15/bin")
LIMIT = client_limits.Limit(1_000_000, 3600)


class PrivatePostgres:
    """A PostgreSQL of its own in a temporary directory (stopped and removed by :meth:`close`)."""

    def __init__(self, port: int):
        self.dir = Path(tempfile.mkdtemp(prefix="tl-commit-bench-"))
        self.port = port
        # PostgreSQL refuses to run as root: as the system's postgres user then.
        self.user = {"user": "postgres"} if os.geteuid() == 0 else {}
        if self.user:
            shutil.chown(self.dir, "postgres")
        subprocess.run([PG_BIN / "initdb", "-D", self.dir / "data", "-U", "bench", "--auth=trust", "-E", "UTF8"], check=True,
                       capture_output=True, **self.user)
        subprocess.run([PG_BIN / "pg_ctl", "-D", self.dir / "data", "-w", "-l", self.dir / "log", "-o",
                        f"-p {port} -k {self.dir} -c listen_addresses='' -c max_connections=60 -c shared_buffers=64MB", "start"],
                       check=True, capture_output=True, **self.user)
        self.conninfo = f"host={self.dir} port={port} user=bench dbname=postgres"

    def set(self, **conf) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            for k, v in conf.items():
                conn.execute(f"ALTER SYSTEM SET {k} = {v}")
            conn.execute("SELECT pg_reload_conf()")

    def counters(self) -> tuple[int, int]:
        """(transactions committed, WAL flushes) so far: flushes are what a request waits for."""
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            return conn.execute("SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),"
                                " (SELECT wal_sync FROM pg_stat_wal)").fetchone()

    def close(self) -> None:
        subprocess.run([PG_BIN / "pg_ctl", "-D", self.dir / "data", "-m", "immediate", "stop"], capture_output=True, **self.user)
        shutil.rmtree(self.dir, ignore_errors=True)


async def run_mode(conninfo: str, mode: str, clients: int, seconds: float) -> dict:
    pool = AsyncConnectionPool(conninfo, min_size=clients + 2, max_size=clients + 2, kwargs={"autocommit": True}, open=False)
    await pool.open()
    group = GroupCommit(pool, max_rows=1, writers=clients) if mode == "one statement" else \
        GroupCommit(pool, writers=int(mode.split()[-2]) if mode.endswith("writers") else WRITERS)
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def one(i: int, n: int) -> None:
        serial, client = f"S{(i * 7919 + n) % 5000:015d}", f"c{i}-{n % 50}"
        if mode == "two commits":
            async with pool.connection() as conn:
                await client_limits.spend(conn, "scan", client, LIMIT)
                await scan_inbox.accept_async(conn, serial, channel="web", client=client, count_window=3600)
        else:
            await group.accept(serial, channel="web", client=client, scope="scan", limit=LIMIT, count_window=3600)

    async def loop(i: int) -> None:
        n = 0
        while time.monotonic() < stop:
            t = time.perf_counter()
            await one(i, n)
            latencies.append(time.perf_counter() - t)
            n += 1

    t0 = time.monotonic()
    await asyncio.gather(*(loop(i) for i in range(clients)))
    elapsed = time.monotonic() - t0
    await pool.close()
    latencies.sort()
    return {"mode": mode, "requests": len(latencies), "per_s": len(latencies) / elapsed,
            "p50_ms": latencies[len(latencies) // 2] * 1000, "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
            "batches": group.batches}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--pg-port", type=int, default=55433)
    args = ap.parse_args(argv)
    pg = PrivatePostgres(args.pg_port)
    try:
        migrate.upgrade(pg.conninfo)
        plan = [("two commits", {}), ("one statement", {}), ("group commit, 1 writers", {}), ("group commit, 2 writers", {}),
                ("group commit, 4 writers", {}),
                ("two commits", {"commit_delay": 1000, "commit_siblings": 2}),
                ("one statement", {"commit_delay": 1000, "commit_siblings": 2})]
        print(f"consumer path commits: {args.clients} clients, {args.seconds:.0f} s per mode, load {os.getloadavg()[0]:.1f}")
        print("| mode | postgres | req/s | p50 / p99 | commits per request | WAL flushes per request |\n|---|---|---|---|---|---|")
        base = None
        for mode, conf in plan:
            pg.set(**({"commit_delay": 0, "commit_siblings": 5} | conf))
            before = pg.counters()
            r = asyncio.run(run_mode(pg.conninfo, mode, args.clients, args.seconds))
            commits, syncs = (after - b for after, b in zip(pg.counters(), before))
            base = base or r["per_s"]
            n = max(1, r["requests"])
            print(f"| {mode} | {', '.join(f'{k}={v}' for k, v in conf.items()) or 'default'} | {r['per_s']:,.0f} ({r['per_s'] / base:.2f}×) | "
                  f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} ms | {commits / n:.2f} | {syncs / n:.2f} |", flush=True)
    finally:
        pg.close()


if __name__ == "__main__":
    main()
