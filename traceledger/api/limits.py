"""How much one request may carry, and the middleware refusing more before it is read.

Two guards run ahead of routing: :class:`DeclaredBodyLimit` (size) and
:class:`ControlCharacterGuard` (no control character in a path or query
parameter; PostgreSQL cannot even store a NUL, and no identifier, filter or
date this API takes has a reason to hold one). Routes that answer in a form of
their own are left to validate their input: the consumer's pages answer a
person with a page, the EPCIS query interface with an EPCIS exception.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from traceledger.api.problems import problem

_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")

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


def control_character_in(scope) -> str | None:
    """Which part of the request line ("path" or "query") holds a control character, if any."""
    if _CONTROL.search(scope["path"].encode("utf-8", "surrogatepass")):
        return "path"
    query = scope.get("query_string", b"")
    if query and _CONTROL.search(unquote_to_bytes(query)):
        return "query"
    return None


class ControlCharacterGuard:
    """Refuse a request whose path or query parameters hold a control character, as problem+json (400).

    Paths starting with one of ``exempt`` are passed on untouched.
    """

    def __init__(self, app, exempt: tuple[str, ...] = ()):
        self.app, self.exempt = app, exempt

    async def __call__(self, scope, receive, send):
        if (scope["type"] == "http" and scope["path"] != "/" and not scope["path"].startswith(self.exempt)
                and (where := control_character_in(scope))):
            response = problem(400, "input refused", f"the request's {where} contains control characters",
                               code="invalid_field", field=where)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
