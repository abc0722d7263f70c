"""Signed checkpoints of the global log, published by the relay.

The relay calls :meth:`Checkpointer.maybe_publish` after each batch it has
flushed to Kafka (and while idle). A checkpoint is published when the tree has
grown and either ``checkpoint_events`` new leaves or ``checkpoint_seconds``
have passed since the last one. Order matters for auditors: the leaves a
checkpoint covers are already acknowledged on Kafka when the checkpoint is
produced, so "a checkpoint of size n is on the topic" implies "log indexes
0..n-1 are on the event topics" and a reader can call any gap below n a loss.

The checkpoint goes to Kafka first, then to the ``checkpoints`` table: a crash
in between only means the next checkpoint repeats the work.

The log key (``TRACELEDGER_LOG_KEY``) is generated under the run dir on first
use when none is configured; its ``.pub`` is what auditors trust.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import psycopg
from kafka import KafkaProducer

from ledger.config import Settings
from ledger.keys import KeyPair
from ledger.logging_setup import get_logger
from ledger.transparency import tree as merkle_tree
from ledger.transparency.checkpoints import Checkpoint, sign_checkpoint, verifier_key

log = get_logger("checkpointer")


def load_or_create_log_key(path: Path) -> KeyPair:
    """Load the log's key, or create it (race-free: link(2) refuses to overwrite)."""
    path = Path(path)
    if path.exists():
        return KeyPair.load(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    key = KeyPair.generate("log")
    key.save(tmp)
    try:
        os.link(tmp, path)  # fails if another process won the race: use theirs
        os.replace(Path(str(tmp) + ".pub"), Path(str(path) + ".pub"))
        log.info("log_key_created", path=str(path), key_id=key.key_id)
    except FileExistsError:
        key = KeyPair.load(path)
    finally:
        for leftover in (tmp, Path(str(tmp) + ".pub")):
            leftover.unlink(missing_ok=True)
    return key


def latest_checkpoint(cur) -> Checkpoint | None:
    """The most recent checkpoint in the ``checkpoints`` table."""
    row = cur.execute(
        "SELECT origin, size, root, timestamp_ms, note, key_id FROM checkpoints ORDER BY id DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    return Checkpoint(origin=row[0], size=row[1], root=bytes(row[2]), timestamp_ms=row[3], note=row[4], key_id=row[5])


class Checkpointer:
    """Decides when to checkpoint, signs, produces to Kafka, records in PostgreSQL."""

    def __init__(self, settings: Settings, conn: psycopg.Connection, producer: KafkaProducer, key: KeyPair | None = None):
        self.settings = settings
        self.conn = conn
        self.producer = producer
        self.key = key or load_or_create_log_key(settings.log_key_path)
        last = latest_checkpoint(conn)
        self.last_size = last.size if last else 0
        self.last_time = time.monotonic() if last else 0.0
        log.info("checkpointer_ready", origin=settings.log_origin, key_id=self.key.key_id,
                 verifier_key=verifier_key(settings.log_origin, self.key.public_key), last_size=self.last_size)

    def due(self, size: int) -> bool:
        grown = size - self.last_size
        if grown <= 0:
            return False
        return grown >= self.settings.checkpoint_events or time.monotonic() - self.last_time >= self.settings.checkpoint_seconds

    def maybe_publish(self, size: int, *, force: bool = False, root: bytes | None = None) -> Checkpoint | None:
        """Publish a checkpoint of the first ``size`` leaves if one is due (or ``force``).

        Call only once those leaves are acknowledged on Kafka. ``root`` may be
        passed when the caller already knows it (the sequencer's frontier).
        """
        if not (self.due(size) or (force and size > self.last_size)):
            return None
        return self.publish(size, root=root)

    def publish(self, size: int, *, root: bytes | None = None) -> Checkpoint:
        """Sign and publish a checkpoint of the first ``size`` leaves now."""
        if root is None:
            root = merkle_tree.root(self.conn, size)
        cp = sign_checkpoint(self.key, self.settings.log_origin, size, root)
        self.producer.send(self.settings.checkpoint_topic, key=cp.origin.encode(), value=cp.note.encode()).get(timeout=60)
        with self.conn.transaction():
            self.conn.execute(
                "INSERT INTO checkpoints (size, root, timestamp_ms, origin, key_id, note) VALUES (%s, %s, %s, %s, %s, %s)",
                (cp.size, cp.root, cp.timestamp_ms, cp.origin, cp.key_id, cp.note),
            )
        self.last_size, self.last_time = size, time.monotonic()
        log.info("checkpoint_published", size=size, root=root.hex(), topic=self.settings.checkpoint_topic)
        return cp
