"""Helpers for pipeline tests: drive the relay and projector, read Kafka back."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import psycopg
from kafka import KafkaConsumer, TopicPartition

from consumers.projector import build
from consumers.relay import Relay
from consumers.restore import ReadTimeout, read_topic
from ledger.config import Settings
from ledger.record_headers import header
from ledger.service import Ledger


@contextmanager
def founded_ledger(settings: Settings, cast) -> Iterator[tuple[Settings, Ledger, object]]:
    """A ledger on ``settings`` with ``cast``'s founding events accepted: (settings, ledger, cast)."""
    ledger = Ledger(settings)
    try:
        assert all(r.status == "accepted" for r in ledger.append(cast.founding_events()))
        yield settings, ledger, cast
    finally:
        ledger.close()


def relay_all(settings: Settings) -> int:
    return Relay(settings).run(until_idle=True)


def project_all(settings: Settings, schema: str = "verification"):
    consumer = build(settings, schema=schema)
    try:
        consumer.run(until_idle=True)
    finally:
        consumer.close()
    return consumer


def topic_records(settings: Settings, topic: str, partitions: int | None = None, *, timeout: float = 120, **options) -> list:
    """Every record on ``topic``, all partitions (or the first ``partitions``), from the
    beginning; ``options`` go to the consumer.

    Fails after ``timeout`` seconds rather than waiting for ever (a dead broker must
    fail the test, not hang CI until its job limit)."""
    try:
        return read_topic(settings, topic, partitions, timeout=timeout, **{"client_id": "traceledger-tests"} | options)
    except ReadTimeout as exc:
        raise AssertionError(str(exc)) from None


def log_indexes(records) -> list[int]:
    return sorted(int(header(r, "log_index")) for r in records if header(r, "log_index") is not None)


def consumed(settings: Settings, schema: str) -> int:
    """Label-topic records the read model ``schema``'s consumer has read (its offsets stored in PostgreSQL)."""
    try:
        with psycopg.connect(settings.pg_conninfo) as conn:
            return conn.execute(f"SELECT coalesce(sum(next_offset), 0) FROM {schema}.consumer_offsets WHERE topic = %s",
                                (settings.label_topic,)).fetchone()[0]
    except psycopg.errors.UndefinedTable:
        return 0


def label_topic_size(settings: Settings) -> int:
    """Records on the label topic: the sum of its partitions' end offsets.

    A recovery test waits until its consumers have read this far (not until a read model
    holds an expected count, which a lost or doubled record would make it wait for in vain),
    then lets the exact oracle say what, if anything, went wrong."""
    consumer = KafkaConsumer(**settings.kafka_client_config(), client_id="traceledger-tests")
    try:
        partitions = [TopicPartition(settings.label_topic, p) for p in consumer.partitions_for_topic(settings.label_topic) or ()]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()
