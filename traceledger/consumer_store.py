"""State the consumer channels keep in PostgreSQL: PIN first use, PIN attempts, IVR calls, reports.

Owned by the consumer module (``traceledger.api_consumer``); every API replica
shares it and it survives restarts, unlike process memory.

* ``pin_uses`` — one row per label whose PIN was verified: first and last time
  and how often. An atomic upsert decides "first use" vs "already verified at
  T", so two simultaneous correct entries can never both be "first".
* ``pin_attempts`` — every PIN check (label, keyed hash of the client, outcome),
  for the rate limits: an attempt is inserted as ``pending`` *before* the PIN is
  hashed and counted with the failures, so concurrent guesses can never exceed
  the limit (each sees the others' pending rows).
* ``ivr_calls`` — the phone line's per-call step, so a call survives an API
  restart and can hop between replicas.
* ``consumer_reports`` — "report a suspected fake" from the page, kept here
  until the ledger has an event kind for it.
* ``consumer_secret`` — one random key for the keyed hashes of client
  addresses and phone numbers (stable across restarts, never published).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import datetime

import psycopg

from ledger import pins
from traceledger.logs import get_logger

log = get_logger("consumer_store")

# Wrong PINs allowed per window before further tries are refused (429).
# Per label: a copied QR code's owner cannot walk the PIN space online
# (5 per hour of 10^8 PINs). Per client: one address cannot spread guesses over
# many labels either. A shared address (a carrier NAT) may hit the client limit
# sooner; the per-label limit is the one that protects each label.
LABEL_FAILURES = 5
CLIENT_FAILURES = 20
WINDOW_SECONDS = 3600
KEEP_ATTEMPTS_SECONDS = 7 * 24 * 3600

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS pin_uses (
    serial text PRIMARY KEY,
    first_verified_at timestamptz NOT NULL,
    last_verified_at timestamptz NOT NULL,
    uses bigint NOT NULL,
    first_channel text NOT NULL
);
CREATE TABLE IF NOT EXISTS pin_attempts (
    id bigserial PRIMARY KEY,
    serial text NOT NULL,
    client text NOT NULL,
    channel text NOT NULL,
    at timestamptz NOT NULL DEFAULT now(),
    outcome text NOT NULL
);
CREATE INDEX IF NOT EXISTS pin_attempts_serial_idx ON pin_attempts (serial, at);
CREATE INDEX IF NOT EXISTS pin_attempts_client_idx ON pin_attempts (client, at);
CREATE TABLE IF NOT EXISTS ivr_calls (
    call_id text PRIMARY KEY,
    step text NOT NULL,
    serial text,
    tries integer NOT NULL DEFAULT 0,
    lang text NOT NULL DEFAULT 'zh',
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS consumer_reports (
    id bigserial PRIMARY KEY,
    serial text NOT NULL,
    channel text NOT NULL,
    client text NOT NULL,
    note text,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS consumer_reports_serial_idx ON consumer_reports (serial);
CREATE TABLE IF NOT EXISTS consumer_secret (
    id integer PRIMARY KEY CHECK (id = 1),
    secret bytea NOT NULL
);
"""


def ensure_schema(conn: psycopg.Connection) -> bytes:
    """Create the tables if missing; return the keyed-hash secret (made once)."""
    try:
        with conn.transaction():
            conn.execute(SCHEMA_SQL)
    except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):
        pass  # another replica created them at the same moment
    conn.execute("INSERT INTO consumer_secret (id, secret) VALUES (1, %s) ON CONFLICT (id) DO NOTHING", (os.urandom(32),))
    return bytes(conn.execute("SELECT secret FROM consumer_secret WHERE id = 1").fetchone()[0])


def client_key(secret: bytes, kind: str, raw: str) -> str:
    """A stable pseudonym for an address or phone number (never stored or signed in clear).

    A plain hash of a phone number could be reversed by trying every number;
    the secret makes that impossible for anyone without the database.
    """
    digest = hmac.new(secret, f"{kind}:{raw}".encode(), hashlib.sha256).hexdigest()[:16]
    return f"{kind}:{digest}"


@dataclass(frozen=True)
class PinResult:
    """The outcome of one PIN check.

    ``outcome``: ``first_use`` (correct, never verified before), ``already_used``
    (correct, verified before at ``first_verified_at``), ``wrong``, ``limited``
    (too many wrong tries: nothing was checked; retry after ``retry_after`` s).
    """

    outcome: str
    first_verified_at: datetime | None = None
    uses: int = 0
    attempts_left: int | None = None
    retry_after: int | None = None

    def as_dict(self) -> dict:
        return {
            "pin_result": self.outcome,
            "pin_first_verified_at": self.first_verified_at.isoformat() if self.first_verified_at else None,
            "pin_uses": self.uses,
            "attempts_left": self.attempts_left,
            "retry_after": self.retry_after,
        }


_COUNT = (
    "SELECT count(*), min(at) FROM pin_attempts WHERE {col} = %s "
    "AND at > now() - make_interval(secs => %s) AND outcome IN ('pending', 'wrong')"
)


async def check_pin(conn: psycopg.AsyncConnection, serial: str, pin: str, pin_hash: str, client: str, channel: str) -> PinResult:
    """Check ``pin`` against ``pin_hash`` under the rate limits and record the outcome.

    ``conn`` is an autocommit connection. The PIN itself is neither stored nor logged.
    """
    row = await (await conn.execute(
        "INSERT INTO pin_attempts (serial, client, channel, outcome) VALUES (%s, %s, %s, 'pending') RETURNING id", (serial, client, channel)
    )).fetchone()
    attempt = row[0]
    by_label, oldest_label = await (await conn.execute(_COUNT.format(col="serial"), (serial, WINDOW_SECONDS))).fetchone()
    by_client, oldest_client = await (await conn.execute(_COUNT.format(col="client"), (client, WINDOW_SECONDS))).fetchone()
    # Counts include this attempt: the n-th failure inside the window is allowed, the n+1-th is not.
    if by_label > LABEL_FAILURES or by_client > CLIENT_FAILURES:
        await conn.execute("UPDATE pin_attempts SET outcome = 'limited' WHERE id = %s", (attempt,))
        now = (await (await conn.execute("SELECT now()")).fetchone())[0]
        oldest = oldest_label if by_label > LABEL_FAILURES else oldest_client
        retry = max(1, int(WINDOW_SECONDS - (now - oldest).total_seconds()) + 1) if oldest else WINDOW_SECONDS
        log.warning("pin_rate_limited", serial=serial, client=client, channel=channel, label_failures=by_label - 1, client_failures=by_client - 1)
        return PinResult("limited", retry_after=retry, attempts_left=0)
    ok = await asyncio.to_thread(pins.verify_pin, serial, pin, pin_hash)  # ~4 ms of CPU: off the event loop
    if not ok:
        await conn.execute("UPDATE pin_attempts SET outcome = 'wrong' WHERE id = %s", (attempt,))
        left = max(0, min(LABEL_FAILURES - by_label, CLIENT_FAILURES - by_client))
        log.info("pin_wrong", serial=serial, client=client, channel=channel, attempts_left=left)
        return PinResult("wrong", attempts_left=left)
    await conn.execute("UPDATE pin_attempts SET outcome = 'ok' WHERE id = %s", (attempt,))
    first, uses = await (await conn.execute(
        "INSERT INTO pin_uses (serial, first_verified_at, last_verified_at, uses, first_channel) VALUES (%s, now(), now(), 1, %s) "
        "ON CONFLICT (serial) DO UPDATE SET uses = pin_uses.uses + 1, last_verified_at = now() "
        "RETURNING first_verified_at, uses",
        (serial, channel),
    )).fetchone()
    outcome = "first_use" if uses == 1 else "already_used"
    log.info("pin_verified", serial=serial, client=client, channel=channel, outcome=outcome, uses=uses)
    if attempt % 1000 == 0:  # now and then, forget attempts nobody will count again
        await conn.execute("DELETE FROM pin_attempts WHERE at < now() - make_interval(secs => %s)", (KEEP_ATTEMPTS_SECONDS,))
    return PinResult(outcome, first_verified_at=first, uses=uses)


async def pin_use(conn: psycopg.AsyncConnection, serial: str) -> tuple[datetime, int] | None:
    """(first verification time, uses) of a label's PIN, or None if never verified."""
    row = await (await conn.execute("SELECT first_verified_at, uses FROM pin_uses WHERE serial = %s", (serial,))).fetchone()
    return (row[0], row[1]) if row else None


async def add_report(conn: psycopg.AsyncConnection, serial: str, channel: str, client: str, note: str | None) -> int:
    """Record a consumer's "suspected fake" report; return its id."""
    row = await (await conn.execute(
        "INSERT INTO consumer_reports (serial, channel, client, note) VALUES (%s, %s, %s, %s) RETURNING id", (serial, channel, client, note)
    )).fetchone()
    log.info("consumer_report", serial=serial, channel=channel, report_id=row[0])
    return row[0]


async def ivr_get(conn: psycopg.AsyncConnection, call_id: str) -> dict | None:
    """A call's state (step, serial, tries, lang), or None for a new call."""
    row = await (await conn.execute("SELECT step, serial, tries, lang FROM ivr_calls WHERE call_id = %s", (call_id,))).fetchone()
    return dict(zip(("step", "serial", "tries", "lang"), row)) if row else None


async def ivr_put(conn: psycopg.AsyncConnection, call_id: str, step: str, serial: str | None, tries: int, lang: str) -> None:
    """Save a call's state (upsert)."""
    await conn.execute(
        "INSERT INTO ivr_calls (call_id, step, serial, tries, lang, updated_at) VALUES (%s, %s, %s, %s, %s, now()) "
        "ON CONFLICT (call_id) DO UPDATE SET step = EXCLUDED.step, serial = EXCLUDED.serial, tries = EXCLUDED.tries, "
        "lang = EXCLUDED.lang, updated_at = now()",
        (call_id, step, serial, tries, lang),
    )
