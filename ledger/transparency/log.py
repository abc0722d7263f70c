"""The global log: every accepted event, with a dense index in commit order.

eventsourcing's notification ids follow commit order but have gaps (a rolled
back insert burns ids). The relay reads notifications in order and gives each
one the next dense ``log_index`` in ``log_entries`` before publishing it, so
index i means the same event to every reader (and, later, leaf i of the
Merkle log). Only one sequencer runs at a time (advisory lock).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import psycopg

from ledger import routing
from ledger.store import LedgerApplication
from ledger.transparency import tree as merkle_tree

SEQUENCER_LOCK = 0x747261636501


@dataclass(frozen=True)
class LogEntry:
    log_index: int
    notification_id: int
    subject_type: str
    subject: str
    seq: int
    event_id: str
    topic: str
    partition: int
    value: bytes  # the Kafka record value: Avro SignedEvent

    @property
    def key(self) -> bytes:
        return self.subject.encode()


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner would choose for ``key``."""
    return (murmur2_fast(key) & 0x7FFFFFFF) % partitions


_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2_fast(data: bytes) -> int:
    """kafka-python's :func:`murmur2` (Kafka's default partitioner hash), computed on whole
    little-endian words instead of byte by byte: the relay hashes every event's key."""
    length = len(data)
    h = 0x9747B28C ^ length
    whole = length & ~3
    for (k,) in struct.iter_unpack("<I", data[:whole]):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    extra = length & 3
    if extra:
        if extra == 3:
            h ^= data[whole + 2] << 16
        if extra >= 2:
            h ^= data[whole + 1] << 8
        h = ((h ^ data[whole]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


# The tables are ledger/migrations/0002_global_log.sql.


class Sequencer:
    """Assigns dense log indexes to new notifications, in order."""

    def __init__(self, app: LedgerApplication, conn: psycopg.Connection, *, label_topic: str, actor_topic: str, partitions: dict[str, int]):
        self.app = app
        self.conn = conn
        self.topics = {"label": label_topic, "lot": label_topic, "container": label_topic, "alert": label_topic, "actor": actor_topic,
                       "certificate": label_topic, "product": label_topic}  # event.v4 subjects
        self.partitions = partitions
        self.tree = merkle_tree.MerkleTree()  # leaves + complete nodes, same transaction as the entries

    def last(self) -> tuple[int, int]:
        """(last log_index, its notification id), (-1, 0) when empty."""
        row = self.conn.execute(
            "SELECT log_index, notification_id FROM log_entries ORDER BY log_index DESC LIMIT 1"
        ).fetchone()
        return (row[0], row[1]) if row else (-1, 0)

    def sequence_next(self, limit: int) -> list[LogEntry]:
        """Index up to ``limit`` new notifications; committed before returning."""
        last_index, last_notification = self.last()
        notifications = self.app.recorder.select_notifications(
            start=last_notification, limit=limit, inclusive_of_start=False
        )
        entries = []
        for n in notifications:
            # The ledger checked each event before storing it: read only the routing
            # fields and wrap the stored bytes as they are (ledger/routing.py).
            body, signature = self.app.signed_parts(n)
            e = routing.route(body)
            topic = self.topics[e.subject_type]
            last_index += 1
            entries.append(
                LogEntry(
                    log_index=last_index,
                    notification_id=n.id,
                    subject_type=e.subject_type,
                    subject=e.subject,
                    seq=e.seq,
                    event_id=e.event_id,
                    topic=topic,
                    partition=partition_for(e.subject.encode(), self.partitions[topic]),
                    value=routing.envelope(body, signature),
                )
            )
        if entries:
            with self.conn.transaction():
                with self.conn.cursor() as cur:
                    # One statement of column arrays (binary), not a round of executemany rows.
                    cur.execute(
                        "INSERT INTO log_entries (log_index, notification_id, subject_type, subject, seq, event_id, topic, partition, value) "
                        "SELECT * FROM unnest(%b::bigint[], %b::bigint[], %b::text[], %b::text[], %b::bigint[], %b::text[], %b::text[], %b::int[], %b::bytea[])",
                        [
                            [x.log_index for x in entries], [x.notification_id for x in entries], [x.subject_type for x in entries],
                            [x.subject for x in entries], [x.seq for x in entries], [x.event_id for x in entries],
                            [x.topic for x in entries], [x.partition for x in entries], [x.value for x in entries],
                        ],
                    )
                    self.tree.append(cur, entries[0].log_index, [x.value for x in entries])
        return entries

    def is_entry(self, log_index: int, event_id: bytes | None) -> bool:
        """Whether ``log_index`` is indexed here for the event ``event_id`` (a Kafka header)."""
        row = self.conn.execute("SELECT event_id FROM log_entries WHERE log_index = %s", (log_index,)).fetchone()
        return row is not None and event_id is not None and row[0].encode() == event_id

    def entries_after(self, log_index: int, limit: int) -> list[LogEntry]:
        rows = self.conn.execute(
            "SELECT log_index, notification_id, subject_type, subject, seq, event_id, topic, partition, value "
            "FROM log_entries WHERE log_index > %s ORDER BY log_index LIMIT %s",
            (log_index, limit),
        ).fetchall()
        return [LogEntry(*r[:8], bytes(r[8])) for r in rows]

