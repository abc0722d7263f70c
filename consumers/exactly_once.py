"""A Kafka consumer whose effects and offsets commit in one PostgreSQL transaction.

Used by every projection (verification view, alerts, ...). Each poll batch is
applied inside one transaction together with the next offsets of its
partitions, so a crash at any point either keeps the whole batch (and its
offsets) or none of it: nothing lost, nothing applied twice. On (re)assignment
the consumer seeks to the offsets stored in PostgreSQL, not Kafka's.

A record the handler refuses (:class:`ledger.errors.Refused`, raised before it
writes anything) is quarantined with its reason in the same transaction and
the consumer moves on. Any other error rolls the batch back and retries it.

A record the handler cannot apply *yet* (:class:`ledger.errors.Waiting`, raised
before any effect: e.g. a batch label's Shipped read before the batch event that
issued the label, which is keyed by the batch id and so on another partition) is
parked in ``<schema>.pending``, also in the same transaction, and its offset moves
on. After each batch is written, the parked records of the subjects the handler
wrote (its ``changed_subjects()``) are applied again, in log order (the
``log_index`` header), in that same transaction, until none moves: a parked record
is applied with what it waited for or stays parked, never lost or applied twice.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Protocol

import psycopg
from kafka import ConsumerRebalanceListener, KafkaConsumer
from kafka.errors import KafkaConnectionError, KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from ledger import metrics
from ledger.config import Settings
from ledger.crash_points import crash_point
from ledger.errors import Refused, Waiting
from ledger.logging_setup import get_logger
from ledger.record_headers import header

log = get_logger("consumer")


class Handler(Protocol):
    """Applies one record; raises Refused (before any effect) to quarantine it.

    Optional batch hooks: ``prepare(cur, records)`` before a batch (load what
    it needs in bulk) and ``flush(cur)`` after it (write buffered effects).
    A handler that may raise :class:`ledger.errors.Waiting` also offers
    ``changed_subjects()``: the subjects it wrote since the last call.
    """

    def __call__(self, cur: psycopg.Cursor, record) -> None: ...


@dataclass(frozen=True)
class ParkedRecord:
    """A record read back from ``<schema>.pending``, with what a handler reads of a Kafka record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class _SeekToStoredOffsets(ConsumerRebalanceListener):
    def __init__(self, owner: "TransactionalConsumer"):
        self.owner = owner

    def on_partitions_revoked(self, revoked):
        pass

    def on_partitions_assigned(self, assigned):
        self.owner._seek(assigned)


class TransactionalConsumer:
    """Run ``handler`` over ``topics`` with exactly-once effects in ``schema``."""

    def __init__(
        self,
        settings: Settings,
        *,
        group: str,
        topics: list[str],
        schema: str,
        handler: Handler,
        before_batch: Callable[[list], None] | None = None,
        max_records: int = 2000,
    ):
        self.settings = settings
        metrics.serve(settings)
        self.group = group
        self.topics = topics
        self.schema = schema
        self.handler = handler
        self.before_batch = before_batch
        self.max_records = max_records
        self.stop = threading.Event()
        # The offsets and quarantine tables are laid out with the read model (ledger.migrate).
        self.conn = psycopg.connect(settings.pg_conninfo)
        try:
            self.consumer = KafkaConsumer(
                **settings.kafka_client_config(),
                group_id=group,
                client_id=group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=max_records,
            )
        except BaseException:  # no broker: do not leak the connection (start-up retries build a new one)
            self.conn.close()
            raise
        self.consumer.subscribe(topics, listener=_SeekToStoredOffsets(self))
        self.applied = 0
        self.quarantined = 0
        self.parked = 0
        self.closers: list[Callable[[], None]] = []  # resources the handler holds

    def _stored_offsets(self) -> dict[tuple[str, int], int]:
        # Called from the rebalance listener: after a database restart the
        # connection is dead, and an error here would kill the consumer.
        deadline = time.monotonic() + 300
        while True:
            try:
                rows = self.conn.execute(f"SELECT topic, partition, next_offset FROM {self.schema}.consumer_offsets").fetchall()
                self.conn.commit()
                return {(t, p): o for t, p, o in rows}
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise
                log.warning("stored_offsets_retry", group=self.group, error=str(exc))
                time.sleep(1)
                self._reconnect()

    def _seek(self, partitions) -> None:
        stored = self._stored_offsets()
        for tp in partitions:
            if (tp.topic, tp.partition) in stored:
                self.consumer.seek(tp, stored[(tp.topic, tp.partition)])
            else:
                self.consumer.seek_to_beginning(tp)
        log.info("partitions_assigned", group=self.group, partitions=[f"{tp.topic}:{tp.partition}" for tp in partitions])

    def poll_once(self, timeout_ms: int = 500) -> int:
        """Apply one poll batch; return the number of records handled."""
        try:
            batches = self.consumer.poll(timeout_ms=timeout_ms, max_records=self.max_records)
        except KafkaConnectionError as exc:  # the broker is restarting: nothing read, poll again
            log.warning("broker_unreachable_retry", group=self.group, error=str(exc))
            time.sleep(1)
            return 0
        records = [r for tp in sorted(batches, key=lambda t: (t.topic, t.partition)) for r in batches[tp]]
        if not records:
            return 0
        if self.before_batch:
            self.before_batch(records)
        careful = False
        while True:
            try:
                self._apply(records, careful=careful)
                break
            except (psycopg.OperationalError, psycopg.errors.SerializationFailure) as exc:
                log.warning("batch_retry", group=self.group, error=str(exc))
                time.sleep(1)
                self._reconnect()
            except Exception as exc:
                if careful:
                    raise
                # A bug or a record nobody foresaw: redo the batch one savepoint
                # per record so only the culprit is quarantined.
                log.error("batch_failed_retrying_carefully", group=self.group, error=repr(exc))
                careful = True
        crash_point("consumer.committed")
        try:
            # Informational only (the offsets that count are in PostgreSQL), so a broker
            # that just went away must not stop the consumer.
            self.consumer.commit({tp: OffsetAndMetadata(rs[-1].offset + 1, "", -1) for tp, rs in batches.items()})
        except KafkaError as exc:
            log.warning("kafka_offset_commit_skipped", group=self.group, error=str(exc))
        return len(records)

    def _reconnect(self) -> None:
        """A new connection, or (the server still down) the closed one: callers retry."""
        self.conn.close()
        try:
            self.conn = psycopg.connect(self.settings.pg_conninfo)
        except psycopg.OperationalError as exc:
            log.warning("reconnect_failed", group=self.group, error=str(exc))

    def _apply(self, records: list, *, careful: bool = False) -> None:
        next_offsets: dict[tuple[str, int], int] = {}
        applied = quarantined = parked = 0
        prepare = getattr(self.handler, "prepare", None)
        flush = getattr(self.handler, "flush", None)
        changed_subjects = getattr(self.handler, "changed_subjects", None)
        with self.conn.transaction(), self.conn.cursor() as cur:
            if changed_subjects:
                changed_subjects()  # forget what a rolled-back attempt wrote
            if prepare:
                prepare(cur, records)
            for rec in records:
                try:
                    self._apply_one(cur, rec, records, prepare, flush, careful=careful)
                    applied += 1
                except Waiting as waiting:
                    parked += 1
                    self._park(cur, rec, waiting)
                except Refused as refusal:
                    quarantined += 1
                    self._quarantine(cur, rec, refusal)
                next_offsets[(rec.topic, rec.partition)] = rec.offset + 1
            if flush:
                flush(cur)
            unparked = (0, 0)
            if changed_subjects:
                unparked = self._unpark(cur, changed_subjects, prepare, flush, careful=careful)
            cur.executemany(
                f"INSERT INTO {self.schema}.consumer_offsets (topic, partition, next_offset) VALUES (%s, %s, %s) "
                "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
                [(t, p, o) for (t, p), o in next_offsets.items()],
            )
        self.applied += applied + unparked[0]
        self.quarantined += quarantined + unparked[1]
        self.parked += parked
        metrics.record_batch(self.group, applied + unparked[0], quarantined + unparked[1],
                             {tp: (self.consumer.highwater(TopicPartition(*tp)) or o) - o for tp, o in next_offsets.items()})
        log.info("batch_applied", group=self.group, applied=applied, quarantined=quarantined, parked=parked,
                 unparked=unparked[0], unparked_quarantined=unparked[1], offsets={f"{t}:{p}": o for (t, p), o in next_offsets.items()})

    def _quarantine(self, cur, rec, refusal: Refused) -> None:
        cur.execute(
            f'INSERT INTO {self.schema}.quarantine (topic, partition, "offset", key, value, code, detail) '
            'VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING',
            (rec.topic, rec.partition, rec.offset, rec.key, rec.value, refusal.code, refusal.detail),
        )
        log.warning("record_quarantined", group=self.group, topic=rec.topic, partition=rec.partition, offset=rec.offset, code=refusal.code, detail=refusal.detail)

    def _park(self, cur, rec, waiting: Waiting) -> None:
        raw_index = header(rec, "log_index")
        log_index = int(raw_index) if raw_index is not None and raw_index.isdigit() else None
        headers = list(rec.headers or ())
        cur.execute(
            f'INSERT INTO {self.schema}.pending (topic, partition, "offset", log_index, subject, key, value, header_names, header_values, detail) '
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (rec.topic, rec.partition, rec.offset, log_index, waiting.subject, rec.key, rec.value,
             [k for k, _ in headers], [bytes(v) for _, v in headers], waiting.detail),
        )
        log.info("record_parked", group=self.group, topic=rec.topic, partition=rec.partition, offset=rec.offset,
                 log_index=log_index, subject=waiting.subject, detail=waiting.detail)

    def _unpark(self, cur, changed_subjects, prepare, flush, *, careful: bool) -> tuple[int, int]:
        """Apply parked records of the subjects just written, in log order, round after round
        until a round writes nothing; return (applied, quarantined). Runs in the batch's transaction."""
        applied = quarantined = 0
        if not cur.execute(f"SELECT EXISTS (SELECT 1 FROM {self.schema}.pending)").fetchone()[0]:
            return 0, 0
        while changed := changed_subjects():
            rows = cur.execute(
                f'SELECT topic, partition, "offset", key, value, header_names, header_values FROM {self.schema}.pending '
                'WHERE subject = ANY(%s) ORDER BY log_index NULLS LAST, topic, partition, "offset"',
                (list(changed),),
            ).fetchall()
            if not rows:
                break
            records = [ParkedRecord(t, p, o, k, v, list(zip(names, values))) for t, p, o, k, v, names, values in rows]
            if prepare:
                prepare(cur, records)
            for rec in records:
                try:
                    self._apply_one(cur, rec, records, prepare, flush, careful=careful)
                    applied += 1
                    log.info("record_unparked", group=self.group, topic=rec.topic, partition=rec.partition, offset=rec.offset)
                except Waiting as waiting:
                    # Still waiting, maybe now for another subject (a batch's next lagging label).
                    cur.execute(f'UPDATE {self.schema}.pending SET subject = %s, detail = %s WHERE topic = %s AND partition = %s AND "offset" = %s',
                                (waiting.subject, waiting.detail, rec.topic, rec.partition, rec.offset))
                    continue  # stays parked
                except Refused as refusal:
                    quarantined += 1
                    self._quarantine(cur, rec, refusal)
                cur.execute(f'DELETE FROM {self.schema}.pending WHERE topic = %s AND partition = %s AND "offset" = %s',
                            (rec.topic, rec.partition, rec.offset))
            if flush:
                flush(cur)
            crash_point("consumer.unparked")  # tests only: parked records applied and deleted, nothing committed
        return applied, quarantined

    def _apply_one(self, cur, rec, records, prepare, flush, *, careful: bool) -> None:
        if careful:
            self._apply_one_carefully(cur, rec, records, prepare, flush)
        else:
            self.handler(cur, rec)

    def _apply_one_carefully(self, cur, rec, records, prepare, flush) -> None:
        """One record in its own savepoint, its effects written at once."""
        try:
            with self.conn.transaction():
                self.handler(cur, rec)
                if flush:
                    flush(cur)
        except (Refused, Waiting, psycopg.OperationalError):
            raise
        except Exception as exc:
            if prepare:  # the handler's in-memory rows may hold the rolled-back change
                prepare(cur, records)
            raise Refused("handler_error", f"{type(exc).__name__}: {exc}") from None

    def lag(self) -> int:
        """Records on Kafka not yet applied (across assigned partitions)."""
        assigned = list(self.consumer.assignment())
        if not assigned:
            return -1
        ends = self.consumer.end_offsets(assigned)
        return sum(max(0, ends[tp] - self.consumer.position(tp)) for tp in assigned)

    def run(self, *, until_idle: bool = False) -> None:
        idle_polls = 0
        while not self.stop.is_set():
            n = self.poll_once()
            if until_idle:
                idle_polls = idle_polls + 1 if n == 0 else 0
                if idle_polls >= 2 and self.lag() == 0:
                    break

    def close(self) -> None:
        self.consumer.close()
        self.conn.close()
        for close in self.closers:
            close()
