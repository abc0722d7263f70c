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
    "alert_owners", "batches", "capture_jobs", "channel_state", "client_limits", "commitments", "config",
    "crash_points", "declarations", "division_names", "encoding", "envelope", "epcis", "epcis_capture", "epcis_query",
    "epcis_subscriptions", "epcis_webhooks", "errors", "events", "gs1", "health", "inbox_group", "ip2region",
    "key_compromise", "keys", "lifecycle", "logging_setup", "metrics", "migrate", "pairing", "pins", "places",
    "platform_secrets", "prefix_claims", "preverify", "record_headers", "regions", "registry", "replay",
    "report_photos", "request_nonces", "routing", "scan_inbox", "scan_recording", "service",
    "shopper_records", "shortcode", "sigcheck", "store", "transparency",
]
