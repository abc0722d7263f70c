"""What the shopper pages read and keep beyond :mod:`ledger.channel_state`: a looker's own queries, report details.

* :func:`own_queries` — how a label's public query count splits between one
  looker (a browser's session cookie, an SMS sender, a caller) and everyone else,
  and when that looker first asked: so a reload, a repeated SMS or a second look
  from the same phone reads "you checked this before", while a second person's
  query still warns (issue 17).
* :func:`first_pin_use` — when and through which channel (and roughly where, if
  known) a label's PIN was first verified: what a later verifier is warned with.
* :func:`actor_profile` — an actor's names in Chinese and English, hotline and
  website as its chain last signed them (event.v4): the brand's name and
  tap-to-call line on the page, read out on the phone.
* :func:`add_details` / :func:`report_by_public_id` — a report's random public
  number and its place and price of purchase and optional phone, kept for
  regulators (``consumer_report_details``, migration 0010; the photo's hash, 0015), never on the ledger.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import psycopg

from ledger.events import decode_signed
from ledger.store import LedgerApplication, chain_id

PROFILE_FIELDS = ("name", "name_zh", "name_en", "hotline", "website")

# Crockford base32 without I, L, O, U: readable aloud and on a phone screen.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PUBLIC_ID_LEN = 10  # 50 random bits: numbers reveal nothing about volumes and cannot be walked


@dataclass(frozen=True)
class OwnQueries:
    """A label's counted queries split into one looker's and the others'."""

    mine: int  # counted queries of this looker
    mine_first: datetime | None  # this looker's first query (counted or not)
    total: int  # every query of this looker (counted or not)


async def own_queries(conn: psycopg.AsyncConnection, serial: str, session: str) -> OwnQueries:
    """This looker's (``session``: the scan inbox's session of the channel) queries of ``serial``."""
    row = await (await conn.execute(
        "SELECT count(*) FILTER (WHERE counted), min(occurred_at), count(*) FROM scan_inbox "
        "WHERE serial = %s AND kind = 'scan' AND session = %s",
        (serial, session), prepare=True,
    )).fetchone()
    return OwnQueries(row[0], row[1], row[2])


async def first_pin_use(conn: psycopg.AsyncConnection, serial: str) -> dict | None:
    """``{"at", "channel", "region", "session"}`` of the scan that first verified ``serial``'s PIN, or None."""
    row = await (await conn.execute(
        "SELECT occurred_at, channel, region, session FROM scan_inbox "
        "WHERE serial = %s AND kind = 'scan' AND pin_result = 'first_use' ORDER BY id LIMIT 1",
        (serial,), prepare=True,
    )).fetchone()
    return dict(zip(("at", "channel", "region", "session"), row)) if row else None


def new_public_id() -> str:
    """A random report number such as ``R-7K2Q9XWM4D``."""
    return "R-" + "".join(secrets.choice(_ALPHABET) for _ in range(PUBLIC_ID_LEN))


async def add_details(conn: psycopg.AsyncConnection, report_id: int, serial: str, *, place: str | None, price: str | None,
                      phone: str | None, photo_sha256: str | None = None) -> str:
    """Keep a report's purchase details (and the hash of its stored photo, :mod:`ledger.report_photos`) under a
    fresh random public number (returned)."""
    public_id = new_public_id()
    await conn.execute(
        "INSERT INTO consumer_report_details (report_id, public_id, serial, place, price, phone, photo_sha256) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (report_id, public_id, serial, place, price, phone, photo_sha256),
    )
    return public_id


async def report_by_public_id(conn: psycopg.AsyncConnection, serial: str, public_id: str) -> dict | None:
    """The report numbered ``public_id`` about ``serial`` (place, price, whether a phone was left), or None."""
    row = await (await conn.execute(
        "SELECT d.public_id, d.place, d.price, d.phone IS NOT NULL, r.at FROM consumer_report_details d "
        "JOIN consumer_reports r ON r.id = d.report_id WHERE d.public_id = %s AND d.serial = %s",
        (public_id, serial),
    )).fetchone()
    return dict(zip(("public_id", "place", "price", "phone_left", "at"), row)) if row else None


def actor_profile(app: LedgerApplication, actor_id: str) -> dict | None:
    """``{name, name_zh, name_en, hotline, website}`` of ``actor_id`` (None if unregistered): its
    ``ActorRegistered``, then each ``ActorProfileChanged`` replacing the whole profile (the name stays)."""
    profile = None
    for stored in app.recorder.select_events(chain_id("actor", actor_id)):
        e = decode_signed(*app.signed_parts(stored)).event
        if e.kind == "ActorRegistered":
            profile = {f: e.payload.get(f) for f in PROFILE_FIELDS}
        elif e.kind == "ActorProfileChanged" and profile is not None:
            profile = {"name": profile["name"]} | {f: e.payload.get(f) for f in PROFILE_FIELDS[1:]}
    return profile
