"""Helpers for pipeline tests: drive the relay and projector, read Kafka back."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

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
