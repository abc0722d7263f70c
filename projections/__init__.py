"""Read models: functions of the ledger's records, written to PostgreSQL; no Kafka here.

The verification read model (``verification``, ``bulk``, ``containers``, ``lots``,
``alert_chains``, ``verdict``, ``shopper_facts``: what a shopper's page needs beyond the view,
``certificates``: the certificate and product chains (event.v4); ``checked_view`` reads a label's answer, ``integrity`` and
``integrity_sweep`` check the stored chains against the published ones), the detector (``detection`` and ``detection_config``: pure
rules and thresholds; ``alerts`` and ``alert_transitions``: its read model), and the reads
the API needs (``alert_queries``, ``container_queries``, ``label_queries``, ``log_queries``;
``epcis_index``, the EPCIS query index the API builds from the global log as it queries;
``ops_metrics``, the read-model figures of ``GET /metrics``; ``shopper_details``, the page's trust details).
The Kafka loops that feed them are in ``consumers``.
"""

__all__ = [
    "alert_chains", "alert_queries", "alert_transitions", "alerts", "bulk", "certificates", "checked_view", "container_queries",
    "containers", "detection", "detection_config", "epcis_index", "integrity", "integrity_sweep", "label_queries", "log_queries", "lots", "ops_metrics", "shopper_details",
    "shopper_facts", "verdict",
    "verification",
]
