"""An open-loop HTTP load generator: requests leave on a fixed schedule.

A closed-loop client (send, wait, send again) slows down when the server does
and so hides queueing ("coordinated omission"). Here request ``k`` of a worker
is *due* at ``start + k / rate``; it waits for a free keep-alive connection
and its latency is measured from the due time, so a slow server shows up as
latency, not as fewer requests. The load runs in ``processes`` separate
processes (one asyncio loop each), started by the caller's process and
synchronised on one start time.

    results = run_open_loop(port, requests_fn, rate=2000, seconds=10)

``requests_fn(worker, k) -> bytes`` builds the raw HTTP/1.1 request ``k`` of
``worker``; the response must carry a Content-Length (every response of the
API does).
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing as mp
from typing import Callable

# A request not answered this long after the end of the run is counted as timed out.
GRACE_SECONDS = 5.0


def percentile(sorted_values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of an ascending list; nan when empty."""
    if not sorted_values:
        return float("nan")
    rank = math.ceil(p / 100 * len(sorted_values))
    return sorted_values[min(len(sorted_values), max(rank, 1)) - 1]


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            break
    if length:
        await reader.readexactly(length)
    return status


async def _worker_async(port: int, build: Callable[[int, int], bytes], worker: int, rate: float, seconds: float, ready, connections: int) -> dict:
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    loop = asyncio.get_running_loop()
    ready.wait()  # every worker connected: start together, so no schedule begins already late
    t0 = loop.time() + 0.05
    total = int(rate * seconds)

    async def one(k: int, due: float) -> None:
        nonlocal errors
        conn = await pool.get()
        try:
            conn[1].write(build(worker, k))
            status = await _read_response(conn[0])
            latencies.append(loop.time() - due)
            statuses[status] = statuses.get(status, 0) + 1
            pool.put_nowait(conn)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            conn[1].close()
            pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))

    tasks = []
    for k in range(total):
        due = t0 + k / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(k, due)))
    done, pending = await asyncio.wait(tasks, timeout=GRACE_SECONDS) if tasks else (set(), set())
    for t in pending:
        t.cancel()
    finished = loop.time() - t0
    while not pool.empty():
        pool.get_nowait()[1].close()
    return {"latencies": latencies, "statuses": statuses, "errors": errors, "timeouts": len(pending), "offered": total, "wall_s": finished}


def _worker(port, build, worker, rate, seconds, ready, connections, out) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # plain asyncio is fine, a little slower
        pass
    out.put(asyncio.run(_worker_async(port, build, worker, rate, seconds, ready, connections)))


def run_open_loop(
    port: int,
    build: Callable[[int, int], bytes],
    *,
    rate: float,
    seconds: float,
    processes: int = 2,
    connections: int = 32,
) -> dict:
    """Offer ``rate`` requests/s for ``seconds`` from ``processes`` processes; summary dict.

    Returns offered and achieved rate, status counts, errors and timeouts, and
    p50/p99/p99.9/max latency in ms (from each request's due time).
    """
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    ready = ctx.Barrier(processes)
    procs = [
        ctx.Process(target=_worker, args=(port, build, w, rate / processes, seconds, ready, connections, q))
        for w in range(processes)
    ]
    for p in procs:
        p.start()
    parts = [q.get() for _ in procs]
    for p in procs:
        p.join()
    lat = sorted(x for part in parts for x in part["latencies"])
    statuses: dict[int, int] = {}
    for part in parts:
        for s, n in part["statuses"].items():
            statuses[s] = statuses.get(s, 0) + n
    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
    wall = max(part["wall_s"] for part in parts)
    return {
        "offered_per_s": rate,
        "seconds": seconds,
        "offered": sum(part["offered"] for part in parts),
        "completed": len(lat),
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": sum(part["errors"] for part in parts),
        "timeouts": sum(part["timeouts"] for part in parts),
        "achieved_per_s": ok / max(wall, seconds),
        "p50_ms": percentile(lat, 50) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
        "p999_ms": percentile(lat, 99.9) * 1000,
        "max_ms": (lat[-1] * 1000) if lat else float("nan"),
    }
