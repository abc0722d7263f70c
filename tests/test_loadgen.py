"""bench.loadgen: the open-loop load keeps its schedule and counts a slow server as latency."""

from __future__ import annotations

import asyncio
import math
import socket
import threading

from bench.loadgen import percentile, run_open_loop


def _serve(delay: float) -> tuple[int, threading.Event]:
    """A keep-alive HTTP/1.1 server answering every request after ``delay`` s, one at a time per connection."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    stop = threading.Event()

    async def handle(reader, writer):
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await asyncio.sleep(delay)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, sock=sock)
        async with server:
            while not stop.is_set():
                await asyncio.sleep(0.05)

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    return port, stop


def _get(worker: int, k: int) -> bytes:
    return f"GET /{worker}/{k} HTTP/1.1\r\nHost: t\r\n\r\n".encode()


def test_every_scheduled_request_is_sent_and_answered():
    port, stop = _serve(0.0)
    try:
        r = run_open_loop(port, _get, rate=200, seconds=1.0, processes=2, connections=4)
    finally:
        stop.set()
    assert r["offered"] == 200 and r["completed"] == 200 and r["ok"] == 200
    assert r["errors"] == 0 and r["timeouts"] == 0
    assert r["statuses"] == {"200": 200}
    assert 0 < r["p50_ms"] <= r["p99_ms"] <= r["p999_ms"] <= r["max_ms"]


def test_a_server_slower_than_the_offered_rate_shows_as_queueing_latency():
    # One connection, 20 ms per answer = at most 50/s; offering 100/s for 1 s makes
    # the last requests wait about half a second past their due time.
    port, stop = _serve(0.02)
    try:
        r = run_open_loop(port, _get, rate=100, seconds=1.0, processes=1, connections=1)
    finally:
        stop.set()
    assert r["completed"] == 100
    assert r["max_ms"] > 600  # a closed-loop client would report about 20 ms
    assert r["p50_ms"] > 100


def test_percentile_is_nearest_rank():
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 99.9) == 100.0
    assert math.isnan(percentile([], 50))  # no samples: no percentile, and not a number that looks like one
