"""The steps every shopper channel shares: a label's view with this query counted, PIN checks.

Each function takes the app's state (``ledger``, ``settings``, ``producer_names``: the profiles' cache)
and an async connection from its pool; the routes (resolver, PIN, SMS, voice)
only read their input and word the answer.

A checked PIN is a query too: each check (any channel) is accepted into the
scan inbox as a scan carrying its outcome (``pin_result`` first_use | reused |
wrong, never the PIN), so detectors see reuse and guessing. A rate-limited
try checks nothing and records nothing.

Every query is counted per client (:func:`spend`, :mod:`ledger.client_limits`;
the client is :mod:`traceledger.api.client_identity`'s): over its limit a
client gets :class:`ledger.client_limits.OverLimit` (429 with ``Retry-After``,
or a polite reply on SMS and voice), and a label's public query count moves
by at most one per client per window.
"""

from __future__ import annotations

import asyncio
import time

from ledger import channel_state, client_limits, gs1, key_compromise, pins, scan_inbox, shopper_records
from ledger.errors import Refused
from ledger.logging_setup import get_logger
from projections.checked_view import checked_view
from projections.label_queries import pin_hash
from projections.shopper_details import page_details
from traceledger.shopper import wording

log = get_logger("api_consumer")

RESCAN_SECONDS = 1800  # a reload by the same browser within this is not a new query
# The PIN outcome a scan carries on the ledger; "limited" checked nothing and records nothing.
PIN_EVENT_RESULT = {"first_use": "first_use", "already_used": "reused", "wrong": "wrong"}
# Each limited kind of request -> the setting of its limit per client and window.
LIMIT_SETTINGS = {"scan": "limit_scans", "pin": "limit_pin_checks", "report": "limit_reports", "sms": "limit_sms", "call": "limit_calls"}


def limit_of(state, scope: str) -> client_limits.Limit:
    """The per-client limit of ``scope`` requests (from the settings)."""
    return client_limits.Limit(getattr(state.settings, LIMIT_SETTINGS[scope]), state.settings.client_window_seconds)


async def spend(state, conn, scope: str, client: str) -> None:
    """Count one ``scope`` request of ``client``; raises :class:`ledger.client_limits.OverLimit` past its limit."""
    await client_limits.spend(conn, scope, client, limit_of(state, scope))


def with_uri(out: dict, serial: str, host: str) -> dict:
    """The view with its label's GS1 Digital Link URI (when its GTIN is known)."""
    if out.get("gtin"):
        out["uri"] = gs1.digital_link_uri(out["gtin"], serial, host)
    return out


PROFILE_SECONDS = 60  # a changed profile (name, hotline) shows within a minute


async def producer_profile(state, producer: str | None) -> dict | None:
    """The producer's signed profile (:func:`ledger.shopper_records.actor_profile`; cached per app for
    :data:`PROFILE_SECONDS`: names and hotlines are shown, not checked)."""
    if not producer:
        return None
    cache = state.producer_names
    hit = cache.get(producer)
    if hit is None or time.monotonic() - hit[0] > PROFILE_SECONDS:
        profile = await asyncio.to_thread(shopper_records.actor_profile, state.ledger.app, producer)
        hit = cache[producer] = (time.monotonic(), profile or {"name": producer})
    return hit[1]


async def key_checked(state, view: dict) -> dict:
    """``view``, suspicious instead of genuine when its label was issued with a key declared compromised since then
    (issue 15, :mod:`ledger.key_compromise`; no I/O for a producer known to have no compromised key)."""
    check = state.key_compromise = getattr(state, "key_compromise", None) or key_compromise.CompromiseCheck(state.ledger)
    if view["verdict"] != "genuine" or not check.needs_lookup(view.get("producer")):
        return view
    return key_compromise.mark(view, await asyncio.to_thread(check.since, view["serial"], view.get("producer")))


async def public_view(state, raw: dict) -> dict:
    """What anyone may see of a verification view (``GET /v1/labels/{serial}`` and scans answer this;
    privacy: see :func:`traceledger.shopper.wording.consumer_view`)."""
    raw = await key_checked(state, raw)
    return wording.consumer_view(raw, profile=await producer_profile(state, raw.get("producer")))


async def count_query(state, conn, serial: str, channel: str, session: str | None, pin_result: str | None, client: str | None,
                      spend_scope: str | None = None):
    """Accept this query into the scan inbox, unless it is a browser's reload; the accepted scan or None.

    Given ``spend_scope``, the query also spends one of the client's ``spend_scope`` requests, in the
    same durable write as its inbox row, shared with other requests (:mod:`ledger.inbox_group`).
    """
    reload = session and channel == "web" and pin_result is None
    if reload and await channel_state.scanned_recently(conn, serial, session, RESCAN_SECONDS):
        if spend_scope:
            await spend(state, conn, spend_scope, client)
        return None
    if spend_scope:
        return await state.inbox.accept(serial, channel=channel, session=session, pin_result=pin_result, client=client,
                                        scope=spend_scope, limit=limit_of(state, spend_scope),
                                        count_window=state.settings.client_window_seconds)
    return await scan_inbox.accept_async(conn, serial, channel=channel, session=session, pin_result=pin_result,
                                         client=client, count_window=state.settings.client_window_seconds)


async def view_of(state, conn, serial: str, *, channel: str | None, session: str | None, pin_result: str | None = None,
                  client: str | None = None, spend_scope: str | None = None) -> dict:
    """The verification view with this query (by ``client``) counted as a scan (channel None: not counted);
    with ``spend_scope``, first one of the client's requests spent (OverLimit past the limit, nothing counted)."""
    if channel is None and spend_scope:
        await spend(state, conn, spend_scope, client)
    accepted = await count_query(state, conn, serial, channel, session, pin_result, client, spend_scope) if channel is not None else None
    # One round trip; never "genuine" when the ledger's stored chain no longer matches what it published.
    out = await checked_view(state.ledger.app, conn, serial, with_inbox=True)
    out = await key_checked(state, out)
    if out["verdict"] != "unknown":
        out["scan_count"] += out["unprojected"]
        if not out["first_scanned_at"] and out["scan_count"]:
            # Scans not projected yet: the first is the inbox's earliest (not this one).
            first = out["inbox_first_scan"]
            out["first_scanned_at"] = first.isoformat() if first else None
    with_uri(out, serial, state.settings.resolver_host)
    if accepted:
        log.info("consumer_query", serial=serial, channel=channel, verdict=out["verdict"], event_id=accepted.event_id)
    return out


async def consumer_of(state, conn, serial: str, *, channel: str | None, session: str | None, gtin=None, lot=None, expiry=None,
                      pin_result: str | None = None, client: str | None = None, spend_scope: str | None = None) -> tuple[dict, dict]:
    """(the verification view, the shopper's view of it) with this query counted as :func:`view_of` does."""
    raw = await view_of(state, conn, serial, channel=channel, session=session, pin_result=pin_result, client=client,
                        spend_scope=spend_scope)
    cv = wording.consumer_view(raw, profile=await producer_profile(state, raw.get("producer")), gtin=gtin, lot=lot, expiry=expiry)
    return raw, cv


async def record_pin_scan(state, conn, serial: str, pin: dict, channel: str, session: str | None, client: str) -> None:
    """Record a PIN check as a scan carrying its outcome (nothing for a rate-limited try)."""
    result = PIN_EVENT_RESULT.get(pin["pin_result"])
    if result is None:
        return
    accepted = await scan_inbox.accept_async(conn, serial, channel=channel, session=session, pin_result=result,
                                             client=client, count_window=state.settings.client_window_seconds)
    log.info("pin_scan", serial=serial, channel=channel, pin_result=result, event_id=accepted.event_id)


async def pin_check(conn, raw: dict, pin_text: str, client: str, channel: str, *, state, scan_channel: str, scan_session: str | None) -> dict:
    """PIN outcome as a dict; raises Refused for a malformed PIN or a label without one.

    The check is also a scan (``scan_channel``, ``scan_session``) carrying its outcome,
    written in the same transaction as the PIN's state (:func:`ledger.channel_state.check_pin`).
    """
    pin = pins.normalize_pin(pin_text)
    if not raw.get("pin_protected"):
        raise Refused("not_pin_protected", "this label has no scratch-off PIN", field="pin")
    stored = await pin_hash(conn, raw["serial"])

    async def record(result: channel_state.PinResult) -> None:
        await record_pin_scan(state, conn, raw["serial"], result.as_dict(), scan_channel, scan_session, client)

    return (await channel_state.check_pin(conn, raw["serial"], pin, stored, client, channel, record=record)).as_dict()


async def looker_state(conn, cv: dict, pin: dict | None, client: str) -> tuple[dict | None, dict | None, object]:
    """(PIN outcome with ``mine``, own queries, own first time) of a looker whose scans carry ``client`` as their session
    (an SMS sender, a caller): so their own repeats never warn."""
    if cv.get("pin_protected") and pin and pin["pin_result"] in ("first_use", "already_used"):
        first = await shopper_records.first_pin_use(conn, cv["serial"])
        mine = bool(first) and first["session"] == client
        return pin | {"mine": mine, "returning": pin["pin_result"] == "already_used", "first": first}, None, None
    own = await shopper_records.own_queries(conn, cv["serial"], client)
    return pin, {"mine": own.mine, "returning": own.total > 1}, own.mine_first


async def certified(conn, cv: dict, key: str) -> str:
    """``key`` turned into a warning when a certificate of the label's product was suspended or revoked
    (:func:`traceledger.shopper.wording.certified_key`); the view gets ``certificate_warning`` and the
    product's signed names (``product_names``) for the SMS and voice wording."""
    if not cv.get("gtin"):
        return key
    details = await page_details(conn, cv["serial"], cv["gtin"], cv.get("lot"))
    product = details.get("product") or {}
    cv["product_names"] = {"zh": product.get("name_zh"), "en": product.get("name_en")}
    cv["certificate_warning"] = wording.certificate_warning(details.get("certificates"))
    return wording.certified_key(key, details.get("certificates"))
