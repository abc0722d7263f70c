"""Serving the API: uvicorn with ``TRACELEDGER_API_WORKERS`` worker processes.

Each worker builds its own app (:func:`traceledger.api.app.create_app`, called
by uvicorn as a factory); with several workers, each ends with its supervisor
(:mod:`traceledger.api.supervisor_death`). :func:`serve` is also what the
benchmarks' "hello" ceiling runs under (``bench/hello_app.py``), so the two
are served alike.
"""

from __future__ import annotations

import uvicorn

from ledger.config import Settings
from ledger.logging_setup import configure


def serve(target: str, *, host: str, port: int, workers: int, factory: bool = False) -> None:
    """Serve the ASGI app at import path ``target`` with ``workers`` processes (uvloop, httptools).

    uvicorn's own ``X-Forwarded-For`` handling is off: it would rewrite the client address for
    loopback peers whatever ``TRACELEDGER_TRUSTED_PROXIES`` says, and cost a middleware layer on
    every request; :mod:`traceledger.api.client_identity` alone decides who the client is."""
    uvicorn.run(target, factory=factory, host=host, port=port, log_level="warning", workers=workers,
                access_log=False, proxy_headers=False)


def main() -> None:
    settings = Settings.from_env()
    configure()
    serve("traceledger.api.app:create_app", factory=True, host=settings.listen_host, port=settings.listen_port,
          workers=settings.api_workers)
