"""An open-loop HTTP load generator: requests leave on a fixed schedule.

A closed-loop client (send, wait, send again) slows down when the server does
and so hides queueing ("coordinated omission"). Here request ``k`` of a worker
is *due* at ``start + k / rate`` and goes out then on an idle keep-alive
connection, or waits in the generator for the next free one; its latency is
measured from the due time, so a slow server shows up as latency, not as
fewer requests. The load runs in ``processes`` separate processes (one asyncio loop
each), started by the caller's process and synchronised on one start time.

    results = run_open_loop(port, requests_fn, rate=2000, seconds=10)

``requests_fn(worker, k) -> bytes`` builds the raw HTTP/1.1 request ``k`` of
``worker``; the response must carry a Content-Length (every response of the
API does).
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing as mp
import re
import time
from collections import deque
from typing import Callable

# A request not answered this long after the end of the run is counted as timed out.
GRACE_SECONDS = 5.0
# uvloop's loop.time() ticks in whole milliseconds: too coarse for a p50 of one or two.
clock = time.perf_counter
TICK = 0.001


def percentile(sorted_values: list[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of an ascending list; nan when empty."""
    if not sorted_values:
        return float("nan")
    rank = math.ceil(p / 100 * len(sorted_values))
    return sorted_values[min(len(sorted_values), max(rank, 1)) - 1]


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


class _Dispatcher:
    """Sends each due request on an idle keep-alive connection; when none is idle the
    request waits here, in order, for the next one to free up (never pipelined, so the
    server never holds more than ``connections`` requests of a worker at a time).

    No task, stream reader or future per request: the generator's own CPU per
    request stays well below the server's, so it is not what limits the rate.
    """

    def __init__(self, port: int, record: Callable[[float, int], None]):
        self.port, self.record = port, record
        self.idle: list[_Connection] = []
        self.waiting: deque[tuple[bytes, float]] = deque()
        self.busy: set[_Connection] = set()
        self.errors = 0

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: _Connection(self), "127.0.0.1", self.port)
        self.free(conn)

    def submit(self, request: bytes, due: float) -> None:
        if self.idle:
            self.idle.pop().send(request, due)
        else:
            self.waiting.append((request, due))

    def free(self, conn: "_Connection") -> None:
        if self.waiting:
            conn.send(*self.waiting.popleft())
        else:
            self.busy.discard(conn)
            self.idle.append(conn)

    def dropped(self, conn: "_Connection", unanswered: bool) -> None:
        self.errors += unanswered
        self.busy.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        asyncio.get_running_loop().create_task(self.connect())  # keep the connection count

    def outstanding(self) -> int:
        return len(self.waiting) + len(self.busy)


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight, timed from its due time."""

    def __init__(self, dispatcher: _Dispatcher):
        self.dispatcher = dispatcher
        self.buf = bytearray()
        self.due: float | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def send(self, request: bytes, due: float) -> None:
        self.due = due
        self.dispatcher.busy.add(self)
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        found = _CONTENT_LENGTH.search(self.buf, 0, end + 2)
        total = end + 4 + (int(found.group(1)) if found else 0)
        if len(self.buf) < total:
            return
        status = int(self.buf[9:12])
        del self.buf[:total]
        if self.due is not None:
            self.dispatcher.record(clock() - self.due, status)
            self.due = None
            self.dispatcher.free(self)

    def connection_lost(self, exc) -> None:
        unanswered, self.due, self.transport = self.due is not None, None, None
        self.dispatcher.dropped(self, unanswered)


async def _worker_async(port: int, build: Callable[[int, int], bytes], worker: int, rate: float, seconds: float, ready, connections: int) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    by_status: dict[int, list[float]] = {}

    def record(latency: float, status: int) -> None:
        latencies.append(latency)
        statuses[status] = statuses.get(status, 0) + 1
        by_status.setdefault(status, []).append(latency)

    dispatcher = _Dispatcher(port, record)
    for _ in range(connections):
        await dispatcher.connect()
    total = int(rate * seconds)
    requests = [build(worker, k) for k in range(total)]  # built before the clock starts
    ready.wait()  # every worker connected: start together, so no schedule begins already late
    t0 = clock() + 0.05
    k = 0
    while k < total:
        now = clock()
        while k < total and t0 + k / rate <= now:
            dispatcher.submit(requests[k], t0 + k / rate)
            k += 1
        # The loop's timers tick in milliseconds: a shorter sleep would spin. A request
        # sent up to a tick late still counts its lateness as latency (due time above).
        await asyncio.sleep(max(TICK, t0 + k / rate - clock()))
    deadline = clock() + GRACE_SECONDS
    while dispatcher.outstanding() and clock() < deadline:
        await asyncio.sleep(0.01)
    finished = clock() - t0
    pending = dispatcher.outstanding()
    for conn in dispatcher.idle + list(dispatcher.busy):
        conn.transport.close()
    return {"latencies": latencies, "statuses": statuses, "by_status": by_status, "errors": dispatcher.errors, "timeouts": pending, "offered": total, "wall_s": finished}


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
    by_status: dict[str, dict] = {}
    for s in statuses:
        got = sorted(x for part in parts for x in part["by_status"].get(s, []))
        by_status[str(s)] = {"count": len(got), "p50_ms": percentile(got, 50) * 1000, "p99_ms": percentile(got, 99) * 1000,
                             "max_ms": got[-1] * 1000}
    wall = max(part["wall_s"] for part in parts)
    return {
        "offered_per_s": rate,
        "seconds": seconds,
        "offered": sum(part["offered"] for part in parts),
        "completed": len(lat),
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "by_status": by_status,
        "errors": sum(part["errors"] for part in parts),
        "timeouts": sum(part["timeouts"] for part in parts),
        "achieved_per_s": ok / max(wall, seconds),
        "p50_ms": percentile(lat, 50) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
        "p999_ms": percentile(lat, 99.9) * 1000,
        "max_ms": (lat[-1] * 1000) if lat else float("nan"),
    }
