"""Keeps an :class:`ActorRegistry` up to date from the actor topic.

The relay produces each actor event synchronously before anything later, so
"read the actor topic to its end" is enough to know every signer of any
record already on Kafka.
"""

from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition

from ledger.config import Settings
from ledger.errors import Refused
from ledger.events import SignedEvent
from ledger.logging_setup import get_logger
from ledger.record_headers import header
from ledger.registry import ActorRegistry

log = get_logger("actor_feed")


class ActorFeed:
    def __init__(self, settings: Settings, registry: ActorRegistry | None = None):
        self.settings = settings
        self.registry = registry or ActorRegistry()
        self.tp = TopicPartition(settings.actor_topic, 0)
        self.consumer = KafkaConsumer(
            **settings.kafka_client_config(),
            enable_auto_commit=False,
            client_id="traceledger-actor-feed",
        )
        self.consumer.assign([self.tp])
        self.consumer.seek_to_beginning(self.tp)
        self.rejected: list[tuple[int, Refused]] = []

    def catch_up(self) -> int:
        """Read the actor topic to its current end; return events applied."""
        end = self.consumer.end_offsets([self.tp])[self.tp]
        applied = 0
        while self.consumer.position(self.tp) < end:
            for rec in self.consumer.poll(timeout_ms=1000, max_records=1000).get(self.tp, []):
                raw_index = header(rec, "log_index")
                try:
                    if raw_index is None:
                        raise Refused("missing_log_index", "actor record has no log_index header")
                    self.registry.apply(SignedEvent.from_envelope(rec.value), int(raw_index))
                    applied += 1
                except Refused as refusal:
                    if refusal.code == "duplicate":
                        continue
                    self.rejected.append((rec.offset, refusal))
                    log.warning("actor_record_rejected", topic=rec.topic, partition=rec.partition, offset=rec.offset, code=refusal.code, detail=refusal.detail)
        return applied

    def close(self) -> None:
        self.consumer.close()
