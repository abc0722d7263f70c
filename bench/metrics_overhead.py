"""What the API's request-metrics middleware costs per request (issue 18).

A minimal ASGI app (answers 200 with a few bytes, as the fast label path does) is
called in-process, without a server, N times bare and N times wrapped in
:class:`traceledger.api.metrics.RequestMetrics`; the difference per request is the
middleware's cost. Medians of 5 rounds, same run.

    PYTHONPATH=$PWD .venv/bin/python -m bench.metrics_overhead [N]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from traceledger.api.metrics import RequestMetrics

BODY = b'{"serial":"x","status":"genuine"}'


async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": BODY})


async def _receive():
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message):
    pass


async def _round(asgi, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        scope = {"type": "http", "method": "GET", "path": "/v1/labels/ABCDEFGH1234", "headers": []}
        await asgi(scope, _receive, _send)
    return (time.perf_counter() - start) / n


def main(n: int = 100_000) -> None:
    wrapped = RequestMetrics(app, fast_routes={"/v1/labels/": "/v1/labels/{serial}"})
    bare, with_metrics = [], []
    for _ in range(5):
        bare.append(asyncio.run(_round(app, n)))
        with_metrics.append(asyncio.run(_round(wrapped, n)))
    b, w = statistics.median(bare), statistics.median(with_metrics)
    print(f"bare {b * 1e6:.2f} µs/request, with RequestMetrics {w * 1e6:.2f} µs/request: +{(w - b) * 1e6:.2f} µs ({w / b:.2f}x of the bare call)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
