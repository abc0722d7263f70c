"""How much one request may carry, and the middleware refusing more before it is read."""

from __future__ import annotations

from traceledger.api.problems import problem

MAX_EVENTS_PER_REQUEST = 5000
MAX_BODY_BYTES = 16 * 1024 * 1024


class DeclaredBodyLimit:
    """Refuse a request whose Content-Length is over the limit, as problem+json.

    A plain ASGI middleware (no per-request task group); FastAPI's
    ``max_body_size`` still guards bodies sent without a length.
    """

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                    response = problem(413, "request too large", f"at most {self.limit} bytes per request", code="too_large")
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
