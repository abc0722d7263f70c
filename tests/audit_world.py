"""A small ledger on real PostgreSQL + Kafka for the audit tests, and helpers to tamper with it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaProducer

from consumers.auditor import Auditor, Report
from consumers.checkpointer import load_or_create_log_key
from ledger import gs1
from ledger.config import Settings
from ledger.keys import KeyPair
from ledger.service import Ledger
from tests.helpers import Cast, shipped_payload
from tests.pipeline import relay_all, topic_records


@dataclass
class World:
    settings: Settings
    ledger: Ledger
    cast: Cast
    log_key: KeyPair
    state_path: Path
    serials: list[str]
    auditor_options: dict = field(default_factory=dict)  # e.g. PROCESSES: decode in worker processes

    def audit(self, api_url: str | None = None) -> Report:
        return Auditor(self.settings, self.log_key.public_key, state_path=self.state_path, api_url=api_url, **self.auditor_options).run()

    def relay(self) -> int:
        return relay_all(self.settings)

    def produce(self, topic: str, key: bytes | None, value: bytes, headers: list | None = None):
        """Produce one record as an outsider would (no relay); returns its metadata."""
        producer = KafkaProducer(**self.settings.kafka_client_config(), acks="all")
        try:
            return producer.send(topic, key=key, value=value, headers=headers or []).get(timeout=30)
        finally:
            producer.close()

    def records(self, topic: str | None = None):
        return topic_records(self.settings, topic or self.settings.label_topic)


def make_world(fresh_settings, tmp_path: Path, labels: int = 40, *, base: Settings | None = None) -> World:
    """Founding actors, ``labels`` issued labels (a third shipped and received), relayed with checkpoints.

    ``base``: build on these settings (e.g. the ``api`` fixture's database) instead of a fresh database.
    """
    changes = dict(log_key=tmp_path / "log.key", checkpoint_events=25, checkpoint_seconds=3600, relay_batch=10)
    settings = base.with_(**changes) if base else fresh_settings(**changes)
    ledger = Ledger(settings)
    cast = Cast()
    assert all(r.status == "accepted" for r in ledger.append(cast.founding_events()))
    serials = [gs1.new_serial() for _ in range(labels)]
    batch = [cast.issue(s) for s in serials]
    batch += [cast.event("acme", "label", s, "Shipped", shipped_payload("distributor")) for s in serials[: labels // 3]]
    batch += [cast.event("distributor", "label", s, "Received", {"region": "4403"}) for s in serials[: labels // 3]]
    assert all(r.status == "accepted" for r in ledger.append(batch))
    relay_all(settings)
    key = load_or_create_log_key(settings.log_key)
    return World(settings, ledger, cast, key, tmp_path / "audit.state", serials)


# Auditor options of its two decoding paths: on its own thread (verification threads), and in
# worker processes (what a large audit uses), forced here for a small log.
THREADS = {"processes": 0}
PROCESSES = {"processes": 2, "process_min_records": 0}


def codes(report: Report) -> set[str]:
    return {f.code for f in report.failures}
