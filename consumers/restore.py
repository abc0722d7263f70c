"""Restore an empty database from Kafka alone (issue 18): the event store from the ledger topics.

The actor and label topics keep every log entry forever (``consumers/topics.py``:
``retention.ms=-1``, ``retention.bytes=-1``, ``cleanup.policy=delete``, never
compacted: a compacted topic would keep only a label's last event). Each record is
a signed event with its ``log_index`` header, so the log can be read back in its
order, merged from the topics' partitions, and appended to an empty store through
the ledger itself: every signature, chain link and authority is checked again
(a doctored topic is refused, not restored), and the store's notification order is
the log's order. The relay started on the restored database then gives every entry
its old log index and the same Merkle root, finds them all on Kafka already and
publishes nothing; the projectors rebuild the read models from the topics.

    python -m consumers.restore    # TRACELEDGER_* name the empty database and the topics

It refuses a database whose store is not empty, and stops at the first gap in
the log indexes or event the ledger refuses, saying which.
"""

from __future__ import annotations

import sys
import time

import psycopg
from kafka import KafkaConsumer, TopicPartition

from consumers.topics import ensure_topics
from ledger.config import Settings
from ledger.envelope import split_envelope
from ledger.events import decode_signed
from ledger.logging_setup import configure, get_logger
from ledger.record_headers import header
from ledger.service import Ledger
from ledger.store import LedgerApplication
from ledger.transparency.log import SEQUENCER_LOCK, Sequencer

log = get_logger("restore")


class RestoreRefused(Exception):
    """The store is not empty, the log on Kafka has a gap, or the ledger refused an entry."""


class ReadTimeout(RestoreRefused):
    """A topic was not read to its end offsets in time (a broker away)."""


def read_topic(settings: Settings, topic: str, partitions: int | None = None, *, timeout: float = 300, **options) -> list:
    """Every record on ``topic`` (none if it does not exist), all partitions (or the first ``partitions``),
    from the beginning to the end offsets of when it started; ``options`` go to the consumer. Raises
    :class:`ReadTimeout` after ``timeout`` seconds rather than waiting for ever."""
    options = {"request_timeout_ms": 30_000, "client_id": "traceledger-restore"} | options
    consumer = KafkaConsumer(**settings.kafka_client_config(), enable_auto_commit=False, **options)
    try:
        numbers = range(partitions) if partitions else sorted(consumer.partitions_for_topic(topic) or [])
        tps = [TopicPartition(topic, p) for p in numbers]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out, deadline = [], time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise ReadTimeout(f"read {len(out)} records of {topic} in {timeout:.0f} s, short of its end offsets {ends}")
            for recs in consumer.poll(timeout_ms=1000).values():
                out.extend(recs)
        return out
    finally:
        consumer.close()


def restore(settings: Settings, batch: int = 1000) -> int:
    """Append every log entry on Kafka to the empty store of ``settings``; the number restored."""
    app = LedgerApplication(env=settings.eventsourcing_env())
    try:
        if app.recorder.max_notification_id():
            raise RestoreRefused(f"the event store of {settings.pg_db} is not empty: restore only into an empty database")
    finally:
        app.close()
    records = []
    for topic in (settings.actor_topic, settings.label_topic):
        for rec in read_topic(settings, topic):
            raw = header(rec, "log_index")
            if raw is not None and raw.isdigit():
                records.append((int(raw), rec))
    if not records:
        raise RestoreRefused(f"no log entries on {settings.actor_topic} / {settings.label_topic} at {settings.kafka_bootstrap}")
    records.sort(key=lambda pair: pair[0])
    indexes = [i for i, _ in records]
    if indexes != list(range(len(indexes))):
        gap = next(i for i, x in enumerate(indexes) if x != i)
        raise RestoreRefused(f"the log on Kafka is not dense: entry {gap} is missing or doubled ({len(indexes)} records)")
    ledger = Ledger(settings)
    try:
        for start in range(0, len(records), batch):
            chunk = [decode_signed(*split_envelope(rec.value)) for _, rec in records[start:start + batch]]
            for offset, result in enumerate(ledger.append(chunk)):
                if result.status != "accepted":
                    raise RestoreRefused(f"log entry {start + offset} was not accepted: {result.status} "
                                         f"{getattr(result.error, 'code', '')} {getattr(result.error, 'detail', '')}")
            log.info("restored", upto=start + len(chunk))
    finally:
        ledger.close()
    _index(settings, len(records))
    return len(records)


def _index(settings: Settings, total: int) -> None:
    """Give the restored entries their log indexes (and Merkle tree) as the relay would, before any relay
    runs: a relay meeting un-indexed notifications would index them as new and publish them all again."""
    app = LedgerApplication(env=settings.eventsourcing_env())
    conn = psycopg.connect(settings.pg_conninfo, autocommit=True)
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (SEQUENCER_LOCK,))
        sequencer = Sequencer(app, conn, label_topic=settings.label_topic, actor_topic=settings.actor_topic, partitions=ensure_topics(settings))
        while sequencer.sequence_next(settings.relay_batch):
            pass
        last = sequencer.last()[0]
        if last != total - 1:
            raise RestoreRefused(f"indexed {last + 1} entries, restored {total}")
    finally:
        conn.close()
        app.close()


def main() -> None:
    configure()
    settings = Settings.from_env()
    try:
        n = restore(settings)
    except RestoreRefused as exc:
        log.error("restore_refused", detail=str(exc))
        sys.exit(2)
    log.info("restore_done", entries=n, database=settings.pg_db, detail="start the relay (it publishes nothing new), then the projectors")


if __name__ == "__main__":
    main()
