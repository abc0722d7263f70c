"""The long-running stream processes: everything that talks to Kafka.

``relay`` (event store -> Kafka, with ``checkpointer`` and ``topics``), ``projector`` and
``detector`` (Kafka -> read models through ``exactly_once``, with ``actor_feed`` and
``broker_wait``), and the regulator's ``auditor`` (with ``decode_pool``); who may do what
on the broker (``broker_access``) and the follower that takes a revoked regulator's
broker login away (``broker_revocations``); the relay's single-writer guard
(``single_writer``) and the restore of an empty database from the topics (``restore``). Each entry point runs as
``python -m consumers.<name>``.
"""

__all__ = [
    "actor_feed", "alert_raiser", "auditor", "broker_access", "broker_revocations", "broker_wait",
    "checkpointer", "decode_pool", "detector", "exactly_once", "projector", "relay", "restore",
    "single_writer", "topics",
]
