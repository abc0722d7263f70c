"""Admission control: each API worker serves a bounded number of requests and queues a bounded number more.

Without it, a worker offered more than it can serve takes every request into
its event loop; they all share the CPU, so every answer gets slower and the
queue grows without bound (measured: offered 5,000/s, p99 of 11.5 s). Here a
worker serves at most ``max_inflight`` requests at once and lets at most
``max_queue`` more wait, first come first served; any request beyond that is
answered at once — before routing, before reading its body, before any
database work, so nothing is written for it — with ``503`` problem+json and
``Retry-After: 1``. The requests that are served stay about as fast as at
capacity (a served request waits behind at most ``max_queue`` others), the
refused ones learn it in microseconds, memory stays flat, and service is full
again as soon as the load drops.

Health checks (``/healthz``) are always admitted: a supervisor must not read
an overloaded worker as a dead one. Limits are per worker process; with
``W`` workers the server holds at most ``W × (max_inflight + max_queue)``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from ledger.logging_setup import get_logger
from traceledger.api.problems import PROBLEM, problem

log = get_logger("api")

RETRY_AFTER_SECONDS = 1
# Built once by the one problem+json builder, sent as bytes: a refusal costs no rendering.
_BODY = bytes(problem(503, "server busy", "the server is at capacity; retry after the time in Retry-After", code="overloaded").body)
_HEADERS = [(b"content-type", PROBLEM.encode()), (b"content-length", str(len(_BODY)).encode()),
            (b"retry-after", str(RETRY_AFTER_SECONDS).encode())]
ALWAYS_ADMITTED = frozenset({"/healthz"})


class Admission:
    """ASGI middleware: at most ``max_inflight`` HTTP requests in the app and ``max_queue`` waiting; the rest 503."""

    def __init__(self, app, *, max_inflight: int, max_queue: int):
        if max_inflight < 1 or max_queue < 0:
            raise ValueError("admission needs max_inflight >= 1 and max_queue >= 0")
        self.app = app
        self.max_inflight, self.max_queue = max_inflight, max_queue
        self.inflight = 0
        self.waiting: deque[asyncio.Future] = deque()
        self.refused = 0
        self._logged_at = 0.0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in ALWAYS_ADMITTED:
            await self.app(scope, receive, send)
            return
        if self.inflight < self.max_inflight:
            self.inflight += 1
        elif len(self.waiting) < self.max_queue:
            turn = asyncio.get_running_loop().create_future()
            self.waiting.append(turn)
            try:
                await turn  # the finishing request hands its place over (inflight unchanged)
            except BaseException:
                if turn.done() and not turn.cancelled():
                    self._release()  # handed a place just as this request was cancelled: pass it on
                elif turn in self.waiting:
                    self.waiting.remove(turn)
                raise
        else:
            await self._refuse(send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self._release()

    def _release(self) -> None:
        while self.waiting:
            turn = self.waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self.inflight -= 1

    async def _refuse(self, send) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._logged_at >= 1.0:  # one line a second under overload, not one per refusal
            self._logged_at = now
            log.warning("admission_refused", refused_total=self.refused, inflight=self.inflight, waiting=len(self.waiting))
        await send({"type": "http.response.start", "status": 503, "headers": _HEADERS})
        await send({"type": "http.response.body", "body": _BODY})
