"""The ceiling of the consumer-path benchmarks: a FastAPI "hello" app.

Served by :func:`traceledger.api.server.serve` exactly as the API is (same
server, same worker count), so the ratio of a route's rate to this one's says
how much of the server's ceiling the route's own work leaves.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.responses import Response

app = FastAPI()


@app.get("/hello")
async def hello() -> Response:
    return Response(b'{"hello":"world"}', media_type="application/json")


def main() -> None:
    """``python -m bench.hello_app PORT WORKERS``: serve it as the API is served."""
    import sys

    from traceledger.api.server import serve

    serve("bench.hello_app:app", host="127.0.0.1", port=int(sys.argv[1]), workers=int(sys.argv[2]))


if __name__ == "__main__":
    main()
