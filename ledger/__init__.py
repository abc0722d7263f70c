"""The ledger: the domain and its storage — the lowest layer, importing nothing of the others.

Events and their canonical bytes (``encoding``, ``envelope``, ``events``, ``routing``,
``record_headers``), keys and signatures (``keys``, ``sigcheck``, ``preverify``), the rules
of a subject's life (``lifecycle``, ``pairing``, ``registry``, ``replay``), identifiers
(``gs1``, ``pins``, ``shortcode``, ``regions``, ``epcis``, ``epcis_capture``, ``epcis_query``), the write model and its service
(``store``, ``service``, ``scan_inbox``, ``inbox_group``, ``scan_recording``), state kept for the interfaces
(``channel_state``, ``capture_jobs``, ``epcis_subscriptions``, ``health``), the schema (``migrate`` and the SQL files in
``migrations/``), configuration, logging and metrics (``config``, ``logging_setup``, ``metrics``), refusals
(``errors``), the transparency log (``transparency``), and deliberate crash points for the
recovery tests (``crash_points``).

Above it: ``projections`` (read models), ``consumers`` (Kafka processes), ``traceledger``
(interfaces); the order is checked by import-linter (``pyproject.toml``).
"""

__all__ = [
    "capture_jobs", "channel_state", "config", "crash_points", "encoding", "envelope", "epcis", "epcis_capture", "epcis_query",
    "epcis_subscriptions", "errors",
    "events", "gs1", "health", "inbox_group", "keys", "lifecycle", "logging_setup", "metrics", "migrate", "pairing", "pins", "preverify",
    "record_headers", "regions", "registry", "replay", "routing", "scan_inbox", "scan_recording", "service",
    "shortcode", "sigcheck", "store", "transparency",
]
