"""Kafka topics of traceledger and their creation (idempotent)."""

from __future__ import annotations

import time

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from ledger.config import Settings
from ledger.logging_setup import get_logger

log = get_logger("topics")

# A ledger topic is the public record: never delete by age or size.
_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}


def topic_specs(settings: Settings) -> dict[str, int]:
    """Topic name -> partition count. Actor events stay in one partition so
    every reader sees registrations, rotations and revocations in order; so do
    signed checkpoints of the global log (one partition: they are in log order)."""
    return {settings.label_topic: settings.partitions, settings.actor_topic: 1, settings.checkpoint_topic: 1}


def ensure_topics(settings: Settings) -> dict[str, int]:
    """Create missing topics; return the partition count of each."""
    admin = KafkaAdminClient(**settings.kafka_client_config(), client_id="traceledger-admin")
    try:
        specs = topic_specs(settings)
        existing = set(admin.list_topics())
        missing = [
            # -1: the broker's default.replication.factor (1 on the dev broker, 3 on a cluster: ops/kafka.sh)
            NewTopic(name, num_partitions=n, replication_factor=-1, topic_configs=_FOREVER)
            for name, n in specs.items()
            if name not in existing
        ]
        if missing:
            try:
                admin.create_topics(missing)
                log.info("topics_created", topics=[t.name for t in missing])
            except TopicAlreadyExistsError:
                pass
        return _partition_counts(admin, list(specs))
    finally:
        admin.close()


def _partition_counts(admin: KafkaAdminClient, topics: list[str], timeout_s: float = 30.0) -> dict[str, int]:
    """Each topic's partition count, once the broker's metadata shows every topic with partitions.

    Right after ``create_topics`` a busy broker can describe a new topic with no
    partitions yet; a count of 0 would then reach the relay's partitioner (a
    division by zero). Wait for the metadata instead, and fail loudly if it never comes.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        counts = {(meta.get("name") or meta.get("topic")): len(meta["partitions"]) for meta in admin.describe_topics(topics)}
        if all(counts.get(topic, 0) > 0 for topic in topics):
            return counts
        if time.monotonic() > deadline:
            raise RuntimeError(f"Kafka shows no partitions for {sorted(t for t in topics if not counts.get(t))} after {timeout_s:.0f} s")
        time.sleep(0.2)


# What Kafka allows per record batch when a topic does not say otherwise
# (the broker's message.max.bytes default).
DEFAULT_MAX_MESSAGE_BYTES = 1048588


def max_message_bytes(settings: Settings, topics: list[str]) -> dict[str, int]:
    """Each topic's effective ``max.message.bytes`` (the largest record batch it takes)."""
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(**settings.kafka_client_config(), client_id="traceledger-admin")
    try:
        found = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t, configs=["max.message.bytes"]) for t in topics], config_filter="all"
        )
        out = {}
        for topic in topics:
            value = found.get("topic", {}).get(topic, {}).get("max.message.bytes", {}).get("value")
            out[topic] = int(value) if value else DEFAULT_MAX_MESSAGE_BYTES
        return out
    finally:
        admin.close()
