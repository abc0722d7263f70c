"""Serving the API: uvicorn with ``TRACELEDGER_API_WORKERS`` worker processes.

Each worker builds its own app (:func:`traceledger.api.app.create_app`, called
by uvicorn as a factory); with several workers, each ends with its supervisor
(:mod:`traceledger.api.supervisor_death`).
"""

from __future__ import annotations

import uvicorn

from ledger.config import Settings
from ledger.logging_setup import configure


def main() -> None:
    settings = Settings.from_env()
    configure()
    uvicorn.run("traceledger.api.app:create_app", factory=True, host=settings.listen_host, port=settings.listen_port,
                log_level="warning", workers=settings.api_workers)
