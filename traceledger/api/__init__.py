"""The HTTP API: one router per resource, assembled by :func:`create_app`.

* :mod:`~traceledger.api.app` — ``create_app(settings)``: lifespan, middleware, exception handlers, routers.
* :mod:`~traceledger.api.server` — ``main()``, what ``python -m traceledger.api`` runs (uvicorn).
* Routers: :mod:`~traceledger.api.events` (events, heads), :mod:`~traceledger.api.actors`,
  :mod:`~traceledger.api.labels` (verify view and scans; :mod:`~traceledger.api.fast_path` serves
  ``GET /v1/labels/{serial}`` ahead of routing), :mod:`~traceledger.api.merkle_log`,
  :mod:`~traceledger.api.alerts`, :mod:`~traceledger.api.containers` (containers, lots),
  :mod:`~traceledger.api.epcis` (export, capture), :mod:`~traceledger.api.epcis_capture` (standard
  capture signed client-side, capture jobs), :mod:`~traceledger.api.epcis_query` (the EPCIS 2.0
  query interface under ``/epcis``), :mod:`~traceledger.api.epcis_subscriptions` (named queries, subscriptions), :mod:`~traceledger.api.trail`, :mod:`~traceledger.api.health`,
  and :mod:`~traceledger.api.shopper` (Digital Link resolver and page, PIN, reports, SMS, voice).
* Shared: :mod:`~traceledger.api.problems` (problem+json), :mod:`~traceledger.api.errors`
  (exception handlers), :mod:`~traceledger.api.dependencies` (``app.state``, the signed caller),
  :mod:`~traceledger.api.access` (who reads what: the signed caller's rights),
  :mod:`~traceledger.api.limits`, :mod:`~traceledger.api.responses` (orjson answers).
"""

from traceledger.api.app import create_app
from traceledger.api.server import main

__all__ = ["create_app", "main"]
