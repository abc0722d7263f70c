"""One hot GET route served straight from ASGI.

``GET /v1/labels/{serial}`` is what every consumer check costs. Through
FastAPI it pays for routing over every route, dependency solving, several
layers of middleware and response objects — about as much CPU as the
database query itself. :class:`FastGet` sits in front of the app and answers
exactly that path itself: it calls the same handler the FastAPI route calls
(which stays declared, for OpenAPI and ``HEAD``) and sends its JSON bytes.
An exception goes to the app's own exception handlers, so refusals and an
unreachable database answer the same problem+json as on any other route;
anything else passes through untouched.
"""

from __future__ import annotations

import inspect
from typing import Awaitable, Callable, Mapping

from starlette.requests import Request

_JSON_HEADERS = [(b"content-type", b"application/json")]


class FastGet:
    """ASGI middleware answering ``GET {prefix}{segment}`` (one path segment) with ``handler(segment)``.

    ``handler`` returns the response body (JSON bytes, status 200);
    ``exception_handlers`` is the app's mapping (looked up by the exception's
    class hierarchy, like Starlette does); an exception without a handler propagates.
    """

    def __init__(self, app, *, prefix: str, handler: Callable[[str], Awaitable[bytes]],
                 exception_handlers: Mapping[type, Callable]):
        self.app = app
        self.prefix = prefix
        self.handler = handler
        self.exception_handlers = exception_handlers

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "GET":
            path: str = scope["path"]
            if path.startswith(self.prefix) and len(path) > len(self.prefix) and "/" not in path[len(self.prefix):]:
                await self._answer(path[len(self.prefix):], scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _answer(self, segment: str, scope, receive, send) -> None:
        try:
            body = await self.handler(segment)
        except Exception as exc:
            handler = next((self.exception_handlers[c] for c in type(exc).__mro__ if c in self.exception_handlers), None)
            if handler is None:
                raise
            response = handler(Request(scope, receive), exc)
            if inspect.isawaitable(response):
                response = await response
            await response(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode()), *_JSON_HEADERS]})
        await send({"type": "http.response.body", "body": body})
