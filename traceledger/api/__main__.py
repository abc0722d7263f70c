"""``python -m traceledger.api``: serve the HTTP API."""

from traceledger.api.server import main

main()
