"""State the consumer (shopper) channels keep in PostgreSQL: PIN first use, PIN attempts, IVR calls, reports.

Used by the API's shopper routes (:mod:`traceledger.api.shopper`) and the
label trail; every API replica shares it and it survives restarts, unlike
process memory.

* ``pin_uses`` — one row per label whose PIN was verified: first and last time
  and how often. An atomic upsert decides "first use" vs "already verified at
  T", so two simultaneous correct entries can never both be "first".
* ``pin_attempts`` — every PIN check (label, keyed hash of the client, outcome),
  for the lockouts: an attempt is inserted as ``pending`` *before* the PIN is
  hashed and counted with the failures, so concurrent guesses can never exceed
  the limit (each sees the others' pending rows).
* ``ivr_calls`` — the phone line's per-call step and current prompt, so a
  call survives an API restart, can hop between replicas, and its prompt can
  be fetched as audio.
* ``consumer_reports`` — every "report a suspected fake" (page, JSON API), for
  regulators. Accepting one also puts it in the scan inbox (same transaction),
  from which the gateway signs it onto the label's chain as a ``ReportedFake``
  event with the same ``event_id``; reports about serials never issued cannot
  go on a chain and are kept only here.
* ``consumer_secret`` — one random key for the keyed hashes of client
  addresses and phone numbers (stable across restarts, never published).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

import psycopg

from ledger import pins, scan_inbox
from ledger.crash_points import crash_point
from ledger.logging_setup import get_logger

log = get_logger("channel_state")

# Wrong PINs allowed per window before further tries are refused (429).
# Per label *and client*: a copied QR code's holder cannot walk the PIN space
# online (5 per hour of 10^8 PINs per client). The lockout is scoped to the
# guessing client, never to the label as a whole: a label-wide lockout let one
# client (or a gateway's swarm of fake senders) lock the real owner out of the
# PIN check (issue 15), so the owner, another client, is never refused for
# someone else's guesses. Per client: one address cannot spread guesses over
# many labels either. A shared address (a carrier NAT) may hit the client limit
# sooner. Many clients guessing one label each get their own 5: the per-client
# request limits (ledger.client_limits) and the PIN space bound what they can reach.
LABEL_FAILURES = 5
CLIENT_FAILURES = 20
WINDOW_SECONDS = 3600
KEEP_ATTEMPTS_SECONDS = 7 * 24 * 3600

# The tables are ledger/migrations/0004_consumer_channels.sql.


def channel_secret(conn: psycopg.Connection) -> bytes:
    """The keyed-hash secret of the channels' pseudonyms: drawn once, by whichever worker comes first."""
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
    "SELECT count(*), min(at) FROM pin_attempts WHERE {where} "
    "AND at > now() - make_interval(secs => %s) AND outcome IN ('pending', 'wrong')"
)


async def check_pin(conn: psycopg.AsyncConnection, serial: str, pin: str, pin_hash: str, client: str, channel: str,
                    *, record: Callable[[PinResult], Awaitable[None]] | None = None) -> PinResult:
    """Check ``pin`` against ``pin_hash`` under the rate limits and record the outcome.

    ``conn`` is an autocommit connection. The PIN itself is neither stored nor logged.
    ``record`` (the caller's scan-inbox insert of the check as a scan) runs in the same
    transaction as the outcome and the use count: a crash can never leave a counted first
    use without its ``first_use`` scan on the ledger (the retry would then be ``reused``
    evidence of a clone). A rate-limited try records nothing.
    """
    row = await (await conn.execute(
        "INSERT INTO pin_attempts (serial, client, channel, outcome) VALUES (%s, %s, %s, 'pending') RETURNING id", (serial, client, channel)
    )).fetchone()
    attempt = row[0]
    # "by_label": this client's failures on this label (the lockout is the guesser's, not the label's).
    by_label, oldest_label = await (await conn.execute(_COUNT.format(where="serial = %s AND client = %s"),
                                                       (serial, client, WINDOW_SECONDS))).fetchone()
    by_client, oldest_client = await (await conn.execute(_COUNT.format(where="client = %s"), (client, WINDOW_SECONDS))).fetchone()
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
        left = max(0, min(LABEL_FAILURES - by_label, CLIENT_FAILURES - by_client))
        result = PinResult("wrong", attempts_left=left)
        async with conn.transaction():
            await conn.execute("UPDATE pin_attempts SET outcome = 'wrong' WHERE id = %s", (attempt,))
            if record:
                await record(result)
        log.info("pin_wrong", serial=serial, client=client, channel=channel, attempts_left=left)
        return result
    async with conn.transaction():
        await conn.execute("UPDATE pin_attempts SET outcome = 'ok' WHERE id = %s", (attempt,))
        first, uses = await (await conn.execute(
            "INSERT INTO pin_uses (serial, first_verified_at, last_verified_at, uses, first_channel) VALUES (%s, now(), now(), 1, %s) "
            "ON CONFLICT (serial) DO UPDATE SET uses = pin_uses.uses + 1, last_verified_at = now() "
            "RETURNING first_verified_at, uses",
            (serial, channel),
        )).fetchone()
        result = PinResult("first_use" if uses == 1 else "already_used", first_verified_at=first, uses=uses)
        if record:
            await record(result)
    crash_point("pins.checked")  # tests only (ledger.crash_points): use and scan committed, the consumer not answered
    outcome = result.outcome
    log.info("pin_verified", serial=serial, client=client, channel=channel, outcome=outcome, uses=uses)
    if attempt % 1000 == 0:  # now and then, forget attempts nobody will count again
        await conn.execute("DELETE FROM pin_attempts WHERE at < now() - make_interval(secs => %s)", (KEEP_ATTEMPTS_SECONDS,))
    return result


async def pin_use(conn: psycopg.AsyncConnection, serial: str) -> tuple[datetime, int] | None:
    """(first verification time, uses) of a label's PIN, or None if never verified."""
    row = await (await conn.execute("SELECT first_verified_at, uses FROM pin_uses WHERE serial = %s", (serial,))).fetchone()
    return (row[0], row[1]) if row else None


# The signed event's reason. A consumer's free-text note is not signed: anyone
# on the internet could otherwise write anything (phone numbers, abuse) into a
# permanent, replicated ledger; the note stays in ``consumer_reports``.
REPORT_REASON = "a consumer reported a suspected fake"


@dataclass(frozen=True)
class AcceptedReport:
    """A report accepted for regulators: its row id and the ledger event id it will be signed as."""

    report_id: int
    event_id: str


async def add_report(conn: psycopg.AsyncConnection, serial: str, channel: str, client: str, note: str | None) -> AcceptedReport:
    """Durably accept a consumer's "suspected fake" report.

    One transaction writes the ``consumer_reports`` row and the scan-inbox
    entry the gateway turns into a ``ReportedFake`` event (``session`` = the
    client's pseudonym, ``reason`` = :data:`REPORT_REASON`), so a crash can
    neither lose the ledger event of an acknowledged report nor sign one
    that was never acknowledged.
    """
    note = (note or "").strip() or None
    async with conn.transaction():
        accepted = await scan_inbox.accept_async(conn, serial, kind=scan_inbox.REPORT, channel=channel, session=client,
                                                 reason=REPORT_REASON)
        row = await (await conn.execute(
            "INSERT INTO consumer_reports (serial, channel, client, note, event_id) VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (serial, channel, client, note, accepted.event_id),
        )).fetchone()
    log.info("consumer_report", serial=serial, channel=channel, report_id=row[0], event_id=accepted.event_id)
    return AcceptedReport(row[0], accepted.event_id)


async def reports_of(conn: psycopg.AsyncConnection, serial: str) -> list[dict]:
    """Every report about ``serial``, oldest first (for producer and regulator views)."""
    cur = await conn.execute(
        "SELECT id, channel, client, note, at, event_id FROM consumer_reports WHERE serial = %s ORDER BY id", (serial,))
    return [{"report_id": r[0], "channel": r[1], "client": r[2], "note": r[3], "at": r[4].isoformat(), "event_id": r[5]}
            for r in await cur.fetchall()]


async def ivr_get(conn: psycopg.AsyncConnection, call_id: str) -> dict | None:
    """A call's state (step, serial, tries, lang), or None for a new call."""
    row = await (await conn.execute("SELECT step, serial, tries, lang FROM ivr_calls WHERE call_id = %s", (call_id,))).fetchone()
    return dict(zip(("step", "serial", "tries", "lang"), row)) if row else None


async def ivr_put(conn: psycopg.AsyncConnection, call_id: str, step: str, serial: str | None, tries: int, lang: str,
                  prompt: str | None = None) -> None:
    """Save a call's state and the prompt it was just given (upsert)."""
    await conn.execute(
        "INSERT INTO ivr_calls (call_id, step, serial, tries, lang, prompt, updated_at) VALUES (%s, %s, %s, %s, %s, %s, now()) "
        "ON CONFLICT (call_id) DO UPDATE SET step = EXCLUDED.step, serial = EXCLUDED.serial, tries = EXCLUDED.tries, "
        "lang = EXCLUDED.lang, prompt = EXCLUDED.prompt, updated_at = now()",
        (call_id, step, serial, tries, lang, prompt),
    )


async def ivr_prompt(conn: psycopg.AsyncConnection, call_id: str) -> tuple[str, str] | None:
    """(current prompt, lang) of a call, or None if there is no such call (or no prompt yet)."""
    row = await (await conn.execute("SELECT prompt, lang FROM ivr_calls WHERE call_id = %s", (call_id,))).fetchone()
    return (row[0], row[1]) if row and row[0] else None


async def scanned_recently(conn: psycopg.AsyncConnection, serial: str, session: str, seconds: int) -> bool:
    """Whether this browser session's scan of ``serial`` is already in the scan inbox, less than ``seconds`` old."""
    row = await (await conn.execute(
        "SELECT 1 FROM scan_inbox WHERE serial = %s AND session = %s AND kind = 'scan' "
        "AND occurred_at > now() - make_interval(secs => %s) LIMIT 1",
        (serial, session, seconds),
    )).fetchone()
    return row is not None
