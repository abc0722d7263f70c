"""The interfaces: how people and programs use the ledger — the top layer.

``api`` (the HTTP API, one router per resource), ``shopper`` (what the person checking a
label sees and hears), ``cli`` (the ``traceledger`` command), ``client`` (the HTTP client
the CLI and demo use), ``auth`` (signed requests, shared by client and API), ``commands``
and ``packing`` (building and signing events client-side), ``demo`` and ``simulate``
(scenarios), ``labels_print`` and ``alerts_chart`` (documents), ``sandbox`` (throw-away
databases and topics for tests and benchmarks).
"""

__all__ = [
    "alerts_chart", "api", "auth", "cli", "client", "commands", "demo", "labels_print", "packing", "sandbox",
    "shopper", "simulate",
]
