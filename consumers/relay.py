"""The relay: the event store's global order -> Kafka.

Loop: give new notifications dense log indexes (``ledger.log.Sequencer``,
committed in PostgreSQL first), then produce them, in that order, with an
idempotent producer (acks=all). Key = subject, so a label's events stay in
one partition, in order. Headers carry ``log_index`` and ``notification_id``.

Crash recovery: on start the relay reads the last record of every partition
to learn which log indexes Kafka already holds, and re-produces only the
indexed entries that are missing. Nothing is lost (entries are indexed before
they are produced) and nothing is doubled (a partition's log is ordered, so
"last index present" means "every earlier index for this partition present").

Actor events are produced synchronously: once any later event is on Kafka,
the registrations and revocations before it are too, so readers can check
signers by reading the actor topic up to its end.
"""

from __future__ import annotations

import signal
import threading
import time

import psycopg
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from consumers.checkpointer import Checkpointer
from consumers.topics import ensure_topics
from ledger.log import LogEntry, Sequencer, SEQUENCER_LOCK, ensure_schema
from ledger.store import LedgerApplication
from traceledger.config import Settings
from traceledger.logs import configure, get_logger

log = get_logger("relay")

# How far back from a partition's end to look for the relay's last record
# (records produced by anyone else carry no log_index header).
_TAIL_WINDOW = 200


def header(record, name: str) -> bytes | None:
    for k, v in record.headers or ():
        if k == name:
            return v
    return None


def published_indexes(settings: Settings, partitions: dict[str, int]) -> dict[tuple[str, int], int]:
    """Highest log_index on Kafka per (topic, partition); -1 where none."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        client_id="traceledger-relay-resume",
    )
    try:
        tps = [TopicPartition(t, p) for t, n in partitions.items() for p in range(n)]
        consumer.assign(tps)
        ends = consumer.end_offsets(tps)
        out = {}
        for tp in tps:
            out[(tp.topic, tp.partition)] = -1
            end = ends[tp]
            if end == 0:
                continue
            consumer.seek(tp, max(0, end - _TAIL_WINDOW))
            position = consumer.position(tp)
            while position < end:
                batch = consumer.poll(timeout_ms=2000, max_records=500)
                for rec in batch.get(tp, []):
                    raw = header(rec, "log_index")
                    if raw is not None:
                        out[(tp.topic, tp.partition)] = max(out[(tp.topic, tp.partition)], int(raw))
                position = consumer.position(tp)
            consumer.pause(tp)
        return out
    finally:
        consumer.close()


class Relay:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.stop = threading.Event()

    def _producer(self) -> KafkaProducer:
        return KafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            client_id="traceledger-relay",
            acks="all",
            enable_idempotence=True,
            max_in_flight_requests_per_connection=5,
            linger_ms=5,
            batch_size=256 * 1024,
            compression_type=None,
            retries=2**31 - 1,
        )

    def _publish(self, producer: KafkaProducer, entries: list[LogEntry]) -> None:
        for e in entries:
            headers = [("log_index", str(e.log_index).encode()), ("notification_id", str(e.notification_id).encode()), ("event_id", e.event_id.encode())]
            future = producer.send(e.topic, key=e.key, value=e.value, partition=e.partition, headers=headers)
            if e.subject_type == "actor":
                future.get(timeout=60)
        producer.flush(timeout=120)

    def run(self, *, until_idle: bool = False) -> int:
        """Relay until stopped (or, with ``until_idle``, until nothing is left).

        Returns the number of entries produced.
        """
        partitions = ensure_topics(self.settings)
        app = LedgerApplication(env=self.settings.eventsourcing_env())
        conn = psycopg.connect(self.settings.pg_conninfo, autocommit=True)
        ensure_schema(conn)
        conn.execute("SELECT pg_advisory_lock(%s)", (SEQUENCER_LOCK,))
        sequencer = Sequencer(app, conn, label_topic=self.settings.label_topic, actor_topic=self.settings.actor_topic, partitions=partitions)
        sequencer.tree.catch_up(conn)  # a log indexed before the tree existed gets hashed now
        producer = self._producer()
        produced = 0
        try:
            produced += self._resume(sequencer, producer, partitions)
            # Signed checkpoints of the Merkle log, only ever of leaves already on Kafka.
            checkpointer = Checkpointer(self.settings, conn, producer)
            size = sequencer.last()[0] + 1
            idle_since = None
            while not self.stop.is_set():
                entries = sequencer.sequence_next(self.settings.relay_batch)
                if entries:
                    self._publish(producer, entries)
                    produced += len(entries)
                    size = entries[-1].log_index + 1
                    checkpointer.maybe_publish(size)
                    idle_since = None
                    log.info("relayed", count=len(entries), last_log_index=entries[-1].log_index, last_notification_id=entries[-1].notification_id)
                    continue
                if until_idle:
                    if idle_since is None:
                        idle_since = time.monotonic()
                    elif time.monotonic() - idle_since > 0.5:
                        checkpointer.maybe_publish(size, force=True)
                        break
                checkpointer.maybe_publish(size)
                self.stop.wait(0.05)
        finally:
            producer.flush(timeout=60)
            producer.close(timeout=10)
            conn.close()
            app.close()
        return produced

    def _resume(self, sequencer: Sequencer, producer: KafkaProducer, partitions: dict[str, int]) -> int:
        # Checkpoints carry no log_index: only the event topics say what is published.
        published = published_indexes(self.settings, {t: n for t, n in partitions.items() if t != self.settings.checkpoint_topic})
        last_index, _ = sequencer.last()
        floor = min(published.values(), default=-1)
        republished = 0
        cursor = floor
        while cursor < last_index:
            entries = sequencer.entries_after(cursor, self.settings.relay_batch)
            if not entries:
                break
            missing = [e for e in entries if e.log_index > published[(e.topic, e.partition)]]
            if missing:
                self._publish(producer, missing)
                republished += len(missing)
            cursor = entries[-1].log_index
        log.info("relay_resumed", sequenced_upto=last_index, republished=republished, published_floor=floor)
        return republished


def main() -> None:
    configure()
    relay = Relay(Settings.from_env())
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: relay.stop.set())
    log.info("relay_started", kafka=relay.settings.kafka_bootstrap, topic=relay.settings.label_topic)
    relay.run()


if __name__ == "__main__":
    main()
