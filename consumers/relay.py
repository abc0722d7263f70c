"""The relay: the event store's global order -> Kafka.

Loop: give new notifications dense log indexes (``ledger.transparency.log.Sequencer``,
committed in PostgreSQL first), then produce them, in that order, with an
idempotent producer (acks=all). Key = subject, so a label's events stay in
one partition, in order. Headers carry ``log_index`` and ``notification_id``; a batch event (event.v3)
also its ``manifest`` (``public.batch_manifests``), which its signed ``labels_root`` covers, and
a movement's ``opening`` (``public.batch_openings``) of the fields its body seals.

Crash recovery: on start the relay reads the last record of every partition
to learn which log indexes Kafka already holds, and re-produces only the
indexed entries that are missing. Nothing is lost (entries are indexed before
they are produced) and nothing is doubled (a partition's log is ordered, so
"last index present" means "every earlier index for this partition present").

Actor events are produced synchronously: once any later event is on Kafka,
the registrations and revocations before it are too, so readers can check
signers by reading the actor topic up to its end.

A record the topic cannot take (larger than its ``max.message.bytes``) or any
send that fails for good halts the relay (:class:`RelayHalted`, exit status 2)
with the log index, serial and event id in the log: every entry before it is
on Kafka, nothing after it, so the log on Kafka stays dense. It is never
skipped: a signed event cannot be dropped from the public record. Raising the
topic's limit and restarting the relay resumes from exactly there.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from typing import Callable

import psycopg
from eventsourcing import persistence as es_persistence
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.record.default_records import DefaultRecordBatchBuilder

from consumers import single_writer
from consumers.checkpointer import Checkpointer
from consumers.topics import ensure_topics, max_message_bytes
from ledger import metrics, migrate
from ledger.config import Settings
from ledger.crash_points import crash_point
from ledger.logging_setup import configure, get_logger
from ledger.record_headers import header
from ledger.store import LedgerApplication, batch_manifests, batch_openings
from ledger.transparency.log import SEQUENCER_LOCK, LogEntry, Sequencer

log = get_logger("relay")

# How far back from a partition's end to look for the relay's last record
# (records produced by anyone else carry no log_index header).
_TAIL_WINDOW = 200


class RelayHalted(Exception):
    """An entry cannot be put on Kafka; the relay stops before it (see the module doc)."""


def published_indexes(
    settings: Settings, partitions: dict[str, int], is_ours: Callable[[int, bytes | None], bool] = lambda index, event_id: True
) -> dict[tuple[str, int], int]:
    """Highest log_index on Kafka per (topic, partition); -1 where none.

    Only records whose ``log_index`` header is an integer and that ``is_ours(index,
    event_id header)`` confirms count: a record someone else wrote to the topic with
    a made-up header must not make the relay skip entries it never published."""
    consumer = KafkaConsumer(
        **settings.kafka_client_config(),
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
                    index = int(raw) if raw is not None and raw.isdigit() and len(raw) < 19 else None
                    if index is not None and is_ours(index, header(rec, "event_id")):
                        out[(tp.topic, tp.partition)] = max(out[(tp.topic, tp.partition)], index)
                position = consumer.position(tp)
            consumer.pause(tp)
        return out
    finally:
        consumer.close()


class Relay:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.stop = threading.Event()
        self.limits: dict[str, int] = {}  # topic -> max.message.bytes, read at start
        self.conn: psycopg.Connection | None = None  # the sequencer's, while running
        # A flush outlasting the delivery timeout means sends are stuck: start over (main()).
        self.flush_timeout = settings.kafka_delivery_timeout_ms / 1000 + 5

    def _producer(self) -> KafkaProducer:
        # A batch must fit the smallest topic limit, and one record the largest.
        smallest = min(self.limits.values())
        return KafkaProducer(
            **self.settings.kafka_client_config(),
            client_id="traceledger-relay",
            acks="all",
            enable_idempotence=True,
            max_in_flight_requests_per_connection=5,
            linger_ms=5,
            batch_size=min(256 * 1024, smallest),
            max_request_size=max(1024 * 1024, *self.limits.values()),
            compression_type=None,
            retries=2**31 - 1,
            delivery_timeout_ms=self.settings.kafka_delivery_timeout_ms,
            request_timeout_ms=min(30_000, self.settings.kafka_delivery_timeout_ms // 2),
        )

    def _publish(self, producer: KafkaProducer, entries: list[LogEntry]) -> None:
        sent = []
        batch_ids = [e.event_id for e in entries if e.subject_type == "batch"]
        manifests = batch_manifests(self.conn, batch_ids)
        openings = batch_openings(self.conn, batch_ids)
        for e in entries:
            headers = [("log_index", str(e.log_index).encode()), ("notification_id", str(e.notification_id).encode()), ("event_id", e.event_id.encode())]
            if e.subject_type == "batch":
                # The manifest rides beside the signed envelope, not in it: the log's leaf (the
                # record value) stays one small event, and labels_root in the body covers it.
                headers.append(("manifest", manifests[e.event_id]))
                if e.event_id in openings:
                    # A movement's sealed fields, opened for the readers of this topic (its ACLs:
                    # the platform's services and regulators), never in the public log's leaf.
                    headers.append(("opening", openings[e.event_id]))
            size = DefaultRecordBatchBuilder.estimate_size_in_bytes(e.key, e.value, headers)
            if size > self.limits[e.topic]:
                producer.flush(timeout=self.flush_timeout)  # everything before it, and only that, is on Kafka
                self._check(sent)
                log.error("record_too_large", log_index=e.log_index, serial=e.subject, event_id=e.event_id, notification_id=e.notification_id,
                          topic=e.topic, bytes=size, max_message_bytes=self.limits[e.topic],
                          detail="relay halted before this entry; raise the topic's max.message.bytes and restart the relay")
                raise RelayHalted(f"log index {e.log_index} ({e.subject}, event {e.event_id}) is {size} bytes, over {e.topic}'s max.message.bytes {self.limits[e.topic]}")
            future = producer.send(e.topic, key=e.key, value=e.value, partition=e.partition, headers=headers)
            sent.append((e, future))
            crash_point("relay.sent")
            if e.subject_type == "actor":
                future.get(timeout=60)
        producer.flush(timeout=self.flush_timeout)
        self._check(sent)

    @staticmethod
    def _check(sent: list) -> None:
        """Raise :class:`RelayHalted` if any send failed for good (flush does not raise)."""
        for e, future in sent:
            if future.is_done and future.failed():
                if getattr(future.exception, "retriable", False):
                    raise future.exception  # the brokers were away too long: main() resumes, no gap (issue 18)
                log.error("produce_failed", log_index=e.log_index, serial=e.subject, event_id=e.event_id, topic=e.topic, partition=e.partition, error=repr(future.exception))
                raise RelayHalted(f"log index {e.log_index} ({e.subject}) could not be produced: {future.exception!r}")

    def run(self, *, until_idle: bool = False) -> int:
        """Relay until stopped (or, with ``until_idle``, until nothing is left).

        Returns the number of entries produced.
        """
        migrate.upgrade(self.settings.pg_conninfo)  # the tables it writes (log, tree, checkpoints)
        partitions = ensure_topics(self.settings)
        self.limits = max_message_bytes(self.settings, list(partitions))
        app = LedgerApplication(env=self.settings.eventsourcing_env())
        conn = psycopg.connect(self.settings.pg_conninfo, autocommit=True)
        conn.execute("SELECT pg_advisory_lock(%s)", (SEQUENCER_LOCK,))
        sequencer = Sequencer(app, conn, label_topic=self.settings.label_topic, actor_topic=self.settings.actor_topic, partitions=partitions)
        sequencer.topics.setdefault("batch", self.settings.label_topic)  # batch events (event.v3), keyed by batch id
        self.conn = conn
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
                    metrics.RELAYED.inc(len(entries))
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
            try:
                producer.flush(timeout=min(60, self.flush_timeout))
                producer.close(timeout=10)
            finally:
                conn.close()
                app.close()
        return produced

    def _resume(self, sequencer: Sequencer, producer: KafkaProducer, partitions: dict[str, int]) -> int:
        # Checkpoints carry no log_index: only the event topics say what is published.
        published = published_indexes(self.settings, {t: n for t, n in partitions.items() if t != self.settings.checkpoint_topic},
                                      is_ours=sequencer.is_entry)
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
    metrics.serve(relay.settings)
    if single_writer.hold(relay.settings, "relay", stop=relay.stop) is None:  # a standby until no other relay runs
        return
    while not relay.stop.is_set():
        try:
            relay.run()
        except RelayHalted as exc:
            log.error("relay_halted", detail=str(exc))
            sys.exit(2)
        except (psycopg.OperationalError, es_persistence.OperationalError, es_persistence.InterfaceError, KafkaError) as exc:
            # The database restarted or the broker stayed away too long: start
            # over from the crash-recovery path (resume), which is exactly what
            # a restart of the process would do.
            log.error("relay_restarting", error=repr(exc))
            relay.stop.wait(2)


if __name__ == "__main__":
    main()
