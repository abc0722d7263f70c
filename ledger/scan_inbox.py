"""Consumer scans: accepted at once, recorded on the ledger in batches.

The API answers a scan immediately after one durable insert into
``scan_inbox``; a worker then signs a ``Scanned`` event per row with the
gateway's key and appends them in batches. The worker's position in the inbox
is an eventsourcing tracking record written in the same transaction as the
events, so after a crash every accepted scan is recorded exactly once.

Inserts lock the table so ids become visible in id order; otherwise a reader
could pass over an id whose transaction had not committed yet and lose it.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import psycopg
from eventsourcing.persistence import IntegrityError, Tracking

from ledger.events import new_event
from ledger.keys import KeyPair
from ledger.service import Ledger
from ledger.store import chain_id
from traceledger.logs import get_logger

log = get_logger("scan_inbox")

TRACKING_NAME = "scan_inbox"

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS scan_inbox (
    id bigserial PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    serial text NOT NULL,
    channel text NOT NULL,
    region text,
    lat double precision,
    lon double precision,
    session text,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS scan_inbox_serial_idx ON scan_inbox (serial, id);
"""



@dataclass(frozen=True)
class AcceptedScan:
    id: int
    event_id: str
    occurred_at: datetime


def ensure_schema(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute(SCHEMA_SQL)


_LOCK = "LOCK TABLE scan_inbox IN EXCLUSIVE MODE"
_INSERT = (
    "INSERT INTO scan_inbox (event_id, serial, channel, region, lat, lon, session, occurred_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id"
)


def _new_row(serial, channel, region, lat, lon, session) -> tuple:
    return (str(uuid.uuid4()), serial, channel, region, lat, lon, session, datetime.now(timezone.utc))


def accept(conn: psycopg.Connection, serial: str, *, channel: str, region=None, lat=None, lon=None, session=None) -> AcceptedScan:
    """Durably accept one scan (committed when this returns)."""
    row = _new_row(serial, channel, region, lat, lon, session)
    with conn.transaction():
        conn.execute(_LOCK)
        (row_id,) = conn.execute(_INSERT, row).fetchone()
    return AcceptedScan(row_id, row[0], row[-1])


async def accept_async(conn: psycopg.AsyncConnection, serial: str, *, channel: str, region=None, lat=None, lon=None, session=None) -> AcceptedScan:
    """:func:`accept` on an async connection (the API's event loop)."""
    row = _new_row(serial, channel, region, lat, lon, session)
    async with conn.transaction():
        await conn.execute(_LOCK)
        (row_id,) = await (await conn.execute(_INSERT, row)).fetchone()
    return AcceptedScan(row_id, row[0], row[-1])


class ScanRecorder:
    """The worker that turns inbox rows into signed ``Scanned`` events."""

    def __init__(self, ledger: Ledger, gateway: KeyPair, conninfo: str, *, batch: int = 500):
        if not gateway.actor:
            raise ValueError("the gateway key file names no actor")
        self.ledger = ledger
        self.gateway = gateway
        self.conn = psycopg.connect(conninfo, autocommit=True)
        ensure_schema(self.conn)
        self.batch = batch
        self.stop = threading.Event()

    def position(self) -> int:
        return self.ledger.app.recorder.max_tracking_id(TRACKING_NAME) or 0

    def record_once(self) -> int:
        """Record the next batch; return rows consumed, 0 if none, -1 to retry later."""
        rows = self.conn.execute(
            "SELECT id, event_id, serial, channel, region, lat, lon, session, occurred_at FROM scan_inbox "
            "WHERE id > %s ORDER BY id LIMIT %s",
            (self.position(), self.batch),
        ).fetchall()
        if not rows:
            return 0
        chains = self.ledger.app.load_chains(chain_id("label", r[2]) for r in rows)
        heads: dict[str, tuple[int, bytes]] = {}
        events = []
        unknown = 0
        for _id, event_id, serial, channel, region, lat, lon, session, at in rows:
            chain = chains.get(chain_id("label", serial))
            if chain is None:
                unknown += 1  # never issued: kept in the inbox for the detectors
                continue
            seq, prev = heads.get(serial, (chain.length - 1, chain.head))
            e = new_event(
                subject_type="label", subject=serial, kind="Scanned", seq=seq + 1, prev_hash=prev,
                payload={"channel": channel, "region": region, "lat": lat, "lon": lon, "session": session},
                actor=self.gateway.actor, key_id=self.gateway.key_id, occurred_at=at, event_id=event_id,
            )
            signed = e.sign(self.gateway)
            heads[serial] = (seq + 1, signed.hash)
            events.append(signed)
        try:
            results = self.ledger.append(events, tracking=Tracking(TRACKING_NAME, rows[-1][0]))
        except IntegrityError:
            log.info("scan_batch_conflict_retrying", first_id=rows[0][0], last_id=rows[-1][0])
            return -1
        problems = [r for r in results if r.status == "refused"]
        if problems:
            # Nothing was written (tracked batches are all or nothing): the scans
            # stay in the inbox and are retried; say loudly why.
            for r in problems[:5]:
                log.error("scan_batch_refused", serial=r.subject, event_id=r.event_id, code=r.error.code, detail=r.error.detail, refused=len(problems))
            return -1
        log.info("scans_recorded", recorded=len(events), unknown=unknown, last_inbox_id=rows[-1][0])
        return len(rows)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                n = self.record_once()
            except Exception:
                log.exception("scan_recorder_error")
                n = -1
            if n == 0:
                self.stop.wait(0.1)
            elif n < 0:
                self.stop.wait(2.0)
