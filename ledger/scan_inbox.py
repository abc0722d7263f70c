"""Consumer scans and reports: accepted at once, recorded on the ledger in batches.

The API answers a scan (or a consumer's "suspected fake" report) immediately
after one durable insert into ``scan_inbox``; a worker then signs one event
per row with the gateway's key and appends them in batches. The row's
``kind`` says which event: ``scan`` becomes ``Scanned`` (with the outcome of
a PIN checked with it, never the PIN), ``report`` becomes ``ReportedFake``.
The worker's position in the inbox is an eventsourcing tracking record
written in the same transaction as the events, so after a crash every
accepted entry is recorded exactly once.

Entries about serials never issued cannot go on a chain: they stay in the
inbox (scans feed the detector's unknown-code tail; reports are also in the
consumer module's ``consumer_reports`` table for regulators).

Anonymous input is placed and named by the server (issue 15, issue 14 item 5).
An entry accepted for a :class:`ledger.places.Placed` client records the
server's place of that client as its ``region`` (``place_source`` says from
what: its address, or an SMS sender's or caller's number) and keeps what the
client claimed (its region, its own session) in ``claim``, never signed. The
recorder signs ``session`` as :func:`label_pseudonym` of the client: one per
client per label, so repeat scans are one session for the detector, and
unlinkable across labels for anyone reading the log.

Inserts take no lock, so concurrent scans commit in parallel, and ids may
become visible out of order: id 101 may commit while id 100 is still in
flight. A reader that tails the inbox by id (the gateway worker, the
detector's unknown-code tail) therefore reads only up to
:func:`committed_horizon`, an id below which every inserting transaction has
ended, so it never passes over a row that commits later.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import psycopg
from eventsourcing.persistence import IntegrityError, Tracking
from psycopg.types.json import Jsonb

from ledger import platform_secrets
from ledger.client_limits import first_query_sql
from ledger.crash_points import crash_point
from ledger.errors import Refused
from ledger.events import PIN_RESULTS, new_event
from ledger.keys import KeyPair
from ledger.logging_setup import get_logger
from ledger.places import Placed, signed_place
from ledger.service import Ledger
from ledger.store import chain_id

log = get_logger("scan_inbox")

TRACKING_NAME = "scan_inbox"

SCAN, REPORT = "scan", "report"
# The ledger event each kind of inbox entry becomes.
EVENT_KIND = {SCAN: "Scanned", REPORT: "ReportedFake"}



@dataclass(frozen=True)
class AcceptedScan:
    id: int
    event_id: str
    occurred_at: datetime


# The table is ledger/migrations/0003_scan_inbox.sql.


COLUMNS = ("event_id", "serial", "channel", "region", "lat", "lon", "session", "occurred_at", "kind", "pin_result", "reason",
            "client", "place_source", "claim")
_INSERT = f"INSERT INTO scan_inbox ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))}) RETURNING id"
# The same insert for a scan by a known client: ``counted`` is whether it is the client's
# first query of the label in this window (the label's public query count counts only those;
# the ledger records every scan all the same). One statement, race-free: the mark's primary key decides.
_INSERT_BY_CLIENT = (
    f"WITH first AS ({first_query_sql()}) "
    f"INSERT INTO scan_inbox ({', '.join(COLUMNS)}, counted) "
    f"VALUES ({', '.join(f'%({c})s' for c in COLUMNS)}, EXISTS (SELECT 1 FROM first)) RETURNING id"
)


def new_row(serial, channel, region, lat, lon, session, kind=SCAN, pin_result=None, reason=None, client=None) -> tuple:
    """The inbox row of an entry; with a :class:`ledger.places.Placed` client, placed by the server.

    The region the client sent (and its own ``session`` when it is not the server's
    pseudonym) is kept in ``claim``, never signed; the row's region is the server's
    place of the client (None when it has none). Coordinates stay: the detector uses
    a consumer's coordinates only inside the server's region (:func:`projections.detection.scan_place`).
    """
    if kind not in EVENT_KIND:
        raise ValueError(f"unknown inbox entry kind {kind!r}")
    if pin_result not in (None, *PIN_RESULTS):
        raise ValueError(f"pin_result must be one of {PIN_RESULTS}")
    placed = client if isinstance(client, Placed) else session if isinstance(session, Placed) else None
    source = claim = None
    if placed is not None:
        claimed = {"region": region, "session": None if session == placed else session}
        claim = Jsonb({k: v for k, v in claimed.items() if v is not None}) if any(claimed.values()) else None
        region, source, client = placed.region, placed.source, str(placed)
    return (str(uuid.uuid4()), serial, channel, region, lat, lon, session, datetime.now(timezone.utc), kind, pin_result, reason,
            client, source, claim)


def accept(conn: psycopg.Connection, serial: str, *, channel: str, region=None, lat=None, lon=None, session=None,
           kind: str = SCAN, pin_result: str | None = None, reason: str | None = None) -> AcceptedScan:
    """Durably accept one entry (committed when this returns, or with the caller's transaction).

    ``kind`` ``scan`` (optionally with ``pin_result``) or ``report`` (with ``reason``).
    """
    row = new_row(serial, channel, region, lat, lon, session, kind, pin_result, reason)
    with conn.transaction():
        (row_id,) = conn.execute(_INSERT, row).fetchone()
    return AcceptedScan(row_id, row[0], row[7])


async def accept_async(conn: psycopg.AsyncConnection, serial: str, *, channel: str, region=None, lat=None, lon=None, session=None,
                       kind: str = SCAN, pin_result: str | None = None, reason: str | None = None,
                       client: str | None = None, count_window: int = 3600) -> AcceptedScan:
    """:func:`accept` on an async connection (the API's event loop).

    With ``client`` (the server's pseudonym of who asked, never signed), a scan counts in
    the label's public query count only as that client's first of the label in its
    ``count_window``-second window; a :class:`ledger.places.Placed` client (or session)
    also gives the entry the server's place instead of the client's claim.
    """
    row = new_row(serial, channel, region, lat, lon, session, kind, pin_result, reason, client)
    sql, params = _INSERT, row
    if client is not None and kind == SCAN:
        sql, params = _INSERT_BY_CLIENT, dict(zip(COLUMNS, row)) | {"client": str(client), "count_window": count_window}
    if conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        # One statement commits on its own: one round trip, no BEGIN/COMMIT.
        (row_id,) = await (await conn.execute(sql, params, prepare=True)).fetchone()
    else:
        async with conn.transaction():
            (row_id,) = await (await conn.execute(sql, params)).fetchone()
    return AcceptedScan(row_id, row[0], row[7])


# How long a reader waits for in-flight inserts before trying again later. While it
# waits, new inserts queue behind its lock request: keep the stall short.
HORIZON_LOCK_TIMEOUT = "200ms"


def committed_horizon(conn: psycopg.Connection) -> int | None:
    """The largest inbox id such that no row with an id up to it can still appear.

    Takes a SHARE lock (which waits for every transaction holding the inserts'
    ROW EXCLUSIVE lock to end) just long enough to read the largest visible id:
    at that moment every id allocated so far belongs to a transaction that
    committed (the row is visible) or rolled back (the id is a gap forever), and
    later inserts get larger ids. None when in-flight inserts did not end within
    :data:`HORIZON_LOCK_TIMEOUT` (try again later). Call it outside any
    transaction of the caller's, or the lock is held until that one ends.
    """
    try:
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = '{HORIZON_LOCK_TIMEOUT}'")
            conn.execute("LOCK TABLE scan_inbox IN SHARE MODE")
            return conn.execute("SELECT coalesce(max(id), 0) FROM scan_inbox").fetchone()[0]
    except psycopg.errors.LockNotAvailable:
        log.info("inbox_horizon_busy", detail=f"inserts still in flight after {HORIZON_LOCK_TIMEOUT}: next round")
        return None


def label_pseudonym(key: bytes, serial: str, who: str | None) -> str | None:
    """The pseudonym a consumer signs as on one label: HMAC(key, serial ‖ client).

    Stable per label, so a client's repeat scans of a label are one session for
    the detector; different on every label, so nobody reading the log (or a
    label's proof) can link a consumer across labels (issue 14, item 5).
    """
    if not who:
        return None
    return "c:" + hmac.new(key, f"{serial}\n{who}".encode(), hashlib.sha256).hexdigest()[:24]


def entry_payload(kind: str, channel, region, lat, lon, session, pin_result, reason) -> tuple[str, dict]:
    """(event kind, payload) of the ledger event an inbox entry becomes."""
    if kind == REPORT:
        return "ReportedFake", {"channel": channel, "region": region, "reason": reason, "session": session}
    return "Scanned", {"channel": channel, "region": region, "lat": lat, "lon": lon, "session": session, "pin_result": pin_result}


class ScanRecorder:
    """The worker that turns inbox rows into signed ``Scanned`` / ``ReportedFake`` events."""

    def __init__(self, ledger: Ledger, gateway: KeyPair, conninfo: str, *, batch: int = 500):
        if not gateway.actor:
            raise ValueError("the gateway key file names no actor")
        self.ledger = ledger
        self.gateway = gateway
        self.conninfo = conninfo
        self.conn = psycopg.connect(conninfo, autocommit=True)
        self.batch = batch
        self.stop = threading.Event()
        self.key = platform_secrets.get(self.conn, platform_secrets.CONSUMER_PSEUDONYMS)

    def position(self) -> int:
        return self.ledger.app.recorder.max_tracking_id(TRACKING_NAME) or 0

    def record_once(self) -> int:
        """Record the next batch; return rows consumed, 0 if none, -1 to retry later."""
        position = self.position()
        (newest,) = self.conn.execute("SELECT coalesce(max(id), 0) FROM scan_inbox").fetchone()
        if newest <= position:
            return 0  # nothing new: no need to wait for a horizon
        horizon = committed_horizon(self.conn)
        if horizon is None:
            return 0
        rows = self.conn.execute(
            "SELECT id, event_id, serial, channel, region, lat, lon, coalesce(client, session), occurred_at, kind, pin_result, reason, "
            "place_source, claim->>'region' FROM scan_inbox "
            "WHERE id > %s AND id <= %s ORDER BY id LIMIT %s",
            (position, horizon, self.batch),
        ).fetchall()
        if not rows:
            return 0
        chains = self.ledger.app.load_chains(chain_id("label", r[2]) for r in rows)
        heads: dict[str, tuple[int, bytes]] = {}
        events = []
        unknown = unsignable = 0
        # Signed as its per-label pseudonym: the client the server knows (else the session sent).
        for inbox_id, event_id, serial, channel, region, lat, lon, who, at, kind, pin_result, reason, source, claimed in rows:
            chain = chains.get(chain_id("label", serial))
            if chain is None:
                unknown += 1  # never issued: kept in the inbox for the detectors and regulators
                continue
            seq, prev = heads.get(serial, (chain.length - 1, chain.head))
            session = label_pseudonym(self.key, serial, who)
            event_kind, payload = entry_payload(kind, channel, region, lat, lon, session, pin_result, reason)
            payload |= signed_place(region, source, lat, lon, claimed)  # event.v4: where the region came from, and the claim
            e = new_event(
                subject_type="label", subject=serial, kind=event_kind, seq=seq + 1, prev_hash=prev, payload=payload,
                actor=self.gateway.actor, key_id=self.gateway.key_id, occurred_at=at, event_id=event_id,
            )
            try:
                signed = e.sign(self.gateway)  # validates the fields first
            except Refused as exc:
                # An entry that can never become a valid event would block every
                # entry behind it if retried: leave it in the inbox, say why, go on.
                unsignable += 1
                log.error("inbox_entry_unsignable", serial=serial, event_id=event_id, inbox_id=inbox_id, code=exc.code, field=exc.field, detail=exc.detail)
                continue
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
        crash_point("scan_inbox.recorded")
        log.info("scans_recorded", recorded=len(events), unknown=unknown, unsignable=unsignable, last_inbox_id=rows[-1][0])
        return len(rows)

    def _reconnect(self) -> None:
        try:
            self.conn.close()
            self.conn = psycopg.connect(self.conninfo, autocommit=True)
            log.info("scan_recorder_reconnected")
        except psycopg.OperationalError as exc:
            log.warning("scan_recorder_reconnect_failed", error=str(exc))  # tried again next round

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                n = self.record_once()
            except Exception:
                log.exception("scan_recorder_error")
                n = -1
                if self.conn.closed or self.conn.broken:
                    self._reconnect()  # the database restarted: a dead connection never heals
            if n == 0:
                self.stop.wait(0.1)
            elif n < 0:
                self.stop.wait(2.0)
