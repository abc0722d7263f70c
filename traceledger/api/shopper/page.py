"""The label page's steps: what this looker is shown (own queries, PIN outcome, report steps) and its forms.

Every form posts, then redirects (303) to the page's GET (POST-redirect-GET): a
reload never resubmits a PIN or a report. What the GET shows after a form:

- a PIN label waits for its PIN (``pin_needed``); once *this browser* (its
  session cookie) made the first right entry, the page says so for good
  (``pin_ok``, later ``pin_seen``), from the scan inbox's record of that entry,
  not from anything the browser sends; wrong, rate-limited and already-used
  outcomes ride in a short-lived signed cookie scoped to the label's path;
- a plain label's "queried N times" warns only when someone other than this
  looker asked (:func:`ledger.shopper_records.own_queries`);
- a report is three steps: a short form (GET), a confirmation (GET), the
  sending (POST, then 303 to ``?reported=<random number>``); the confirmation may attach
  a photo (multipart), checked and re-encoded by :mod:`ledger.report_photos`, kept by hash;
- "check with my location" (``?locate=1``, the one page with a script, asked for by
  the shopper's tap) posts the browser's position once the person allowed it: it is
  recorded as a scan's coordinates, the consumer's *claim* (rounded to ~1 km); the scan's
  place stays the server's (:mod:`ledger.places`), and the claim is believed only
  inside it (:func:`position_believed`, the detector's rule). Then 303 to ``?located=in|out``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from fastapi import Request
from fastapi.responses import HTMLResponse

from ledger import channel_state, regions, report_photos, scan_inbox, shopper_records
from ledger.client_limits import OverLimit
from ledger.errors import Refused
from ledger.logging_setup import get_logger
from projections import detection
from projections.shopper_details import page_details
from traceledger.api.client_identity import client_of
from traceledger.api.shopper import service
from traceledger.api.shopper.web import flash_value, html, other_lang_url, page_url, read_flash, see_other
from traceledger.shopper import pages, wording

JUST_NOW = timedelta(minutes=10)  # a first PIN use younger than this reads "verified" (just now), older "you verified"
RETURNING = timedelta(seconds=60)  # a looker's own first query older than this: a returning look
_PRICE = re.compile(r"\d{1,7}([.,]\d{1,2})?")
_PUBLIC_ID = re.compile(r"R-[0-9A-Z]{10}")
# A refused photo (ledger.report_photos) -> what the confirmation step says.
PHOTO_PROBLEMS = {"photo_too_large": "report_bad_photo_size", "photo_type": "report_bad_photo_type",
                  "photo_unreadable": "report_bad_photo_type", "photo_empty": "report_bad_photo_type"}
_COORDINATE = re.compile(r"-?\d{1,3}(\.\d{1,7})?")
POSITION_DECIMALS = 2  # ~1 km: enough to place a scan in a city, not to find a home

log = get_logger("api_consumer")


def report_values(source) -> dict:
    """The report form's fields, trimmed and bounded (anything may arrive)."""
    return {k: re.sub(r"[\x00-\x1f\x7f]", " ", str(source.get(k) or ""))[:80].strip() for k in ("place", "price", "phone")}


def report_problem(values: dict) -> str | None:
    """The first thing wrong with a report's fields (a TEXT key), or None."""
    if not values["place"]:
        return "report_bad_place"
    if not _PRICE.fullmatch(values["price"].replace("¥", "").replace("元", "").strip()):
        return "report_bad_price"
    digits = re.sub(r"[\s+()-]", "", values["phone"])
    if values["phone"] and not (digits.isascii() and digits.isdigit() and 7 <= len(digits) <= 15):
        return "report_bad_phone"
    return None


async def report_step(request: Request, conn, serial: str, lang: str) -> dict | None:
    """The report step this GET shows (``?report=1``, ``?report=review``, ``?reported=``), or None."""
    q = request.query_params
    if q.get("reported"):
        found = await shopper_records.report_by_public_id(conn, serial, q["reported"]) if _PUBLIC_ID.fullmatch(q["reported"]) else None
        return {"step": "done", "public_id": found["public_id"]} if found else None
    if q.get("report") not in ("1", "review"):
        return None
    values = report_values(q)
    problem = report_problem(values) if q["report"] == "review" else (q.get("err") if q.get("err", "").startswith("report_bad") else None)
    if q["report"] == "review" and problem is None:
        photo_problem = q.get("err") if q.get("err") in PHOTO_PROBLEMS.values() else None
        return {"step": "confirm", "values": values, "error": wording.TEXT[lang][photo_problem] if photo_problem else None}
    return {"step": "form", "values": values, "error": wording.TEXT[lang].get(problem) if problem else None}


async def pin_state(request: Request, conn, cv: dict, session: str, lang: str) -> tuple[dict | None, str | None]:
    """(this browser's PIN outcome on a PIN label, an error line) for :func:`traceledger.shopper.wording.display_key`."""
    first = await shopper_records.first_pin_use(conn, cv["serial"])
    flash = read_flash(request, cv["serial"])
    if first and first["session"] == session:
        age = datetime.now(timezone.utc) - first["at"]
        return {"pin_result": "first_use", "mine": True, "returning": age > JUST_NOW, "first": first}, None
    if flash is None:
        return None, None
    if flash["pin_result"] == "invalid":
        return None, wording.TEXT[lang]["pin_invalid"]
    if flash["pin_result"] == "already_used":
        return flash | {"first": first}, None
    return (flash, None) if flash["pin_result"] in ("wrong", "limited") else (None, None)


async def page_state(request: Request, conn, cv: dict, lang: str, session: str, *, scanned: bool) -> pages.PageState:
    """Everything the page shows besides the view, for this looker."""
    ps = pages.PageState("unknown", lang, other_lang_url(request, lang), page_url(request, lang))
    own = None
    if cv["verdict"] == "genuine" and cv.get("pin_protected"):
        ps.pin, ps.pin_error = await pin_state(request, conn, cv, session, lang)
    elif cv["verdict"] == "genuine":
        mine = await shopper_records.own_queries(conn, cv["serial"], session)
        returning = mine.total > 1 or (mine.mine_first is not None and datetime.now(timezone.utc) - mine.mine_first > RETURNING)
        own = {"mine": mine.mine, "returning": returning}
        ps.mine_first = mine.mine_first.isoformat() if mine.mine_first else None
    ps.lot = await page_details(conn, cv["serial"], cv.get("gtin"), cv.get("lot"))
    ps.hotline = cv.get("hotline")
    ps.report = await report_step(request, conn, cv["serial"], lang)
    ps.located = request.query_params.get("located")
    ps.display = wording.certified_key(wording.display_key(cv, ps.pin, own=own, scanned=scanned), ps.lot.get("certificates"))
    cv["certificate_warning"] = wording.certificate_warning(ps.lot.get("certificates"))
    return ps


async def pin_posted(request: Request, conn, raw: dict, form: dict, session: str) -> str:
    """Check the page's PIN entry; the signed flash cookie value of its outcome."""
    serial = raw["serial"]
    client = client_of(request)
    await service.spend(request.app.state, conn, "pin", client)
    try:
        pin = await service.pin_check(conn, raw, form.get("pin", ""), client, "web", state=request.app.state, scan_channel="web",
                                      scan_session=session)
    except Refused:
        return flash_value(request, serial, "invalid")
    return flash_value(request, serial, pin["pin_result"], pin.get("attempts_left"), pin.get("retry_after"))


async def report_posted(request: Request, conn, serial: str, form: dict, lang: str, cookie: str | None, files: dict | None = None):
    """Send a confirmed report (with its photo, if one was chosen); the redirect to its confirmation
    (or back to the form or the confirmation, saying what is wrong: nothing is kept then)."""
    values = report_values(form)
    problem = report_problem(values)
    if problem:
        return see_other(page_url(request, lang, report="1", err=problem, **values) + "#report", cookie=cookie)
    photo = None
    if (files or {}).get("photo"):
        try:
            photo = report_photos.checked_photo(files["photo"])
        except Refused as exc:
            log.info("report_photo_refused", serial=serial, code=exc.code)
            err = PHOTO_PROBLEMS.get(exc.code, "report_bad_photo_type")
            return see_other(page_url(request, lang, report="review", err=err, **values) + "#report", cookie=cookie)
    client = client_of(request)
    await service.spend(request.app.state, conn, "report", client)
    async with conn.transaction():
        accepted = await channel_state.add_report(conn, serial, "web", client, None)
        photo_sha256 = await report_photos.store(conn, photo) if photo else None
        public_id = await shopper_records.add_details(conn, accepted.report_id, serial, place=values["place"], price=values["price"],
                                                      phone=values["phone"] or None, photo_sha256=photo_sha256)
    return see_other(page_url(request, lang, reported=public_id) + "#report", cookie=cookie)


def position_of(form: dict) -> tuple[float, float] | None:
    """(lat, lon) rounded to :data:`POSITION_DECIMALS` from the locate form, or None when not a position on Earth."""
    lat, lon = (str(form.get(k) or "").strip() for k in ("lat", "lon"))
    if not (_COORDINATE.fullmatch(lat) and _COORDINATE.fullmatch(lon)):
        return None
    la, lo = float(lat), float(lon)
    if not (-90 <= la <= 90 and -180 <= lo <= 180):
        return None
    return round(la, POSITION_DECIMALS), round(lo, POSITION_DECIMALS)


def position_believed(region: str | None, lat: float, lon: float) -> bool:
    """Whether the detector takes a consumer's position as the scan's place: only inside the server's
    place of the client (:func:`projections.detection.scan_place`); with no server place, never."""
    if regions.centroid(region) is None:
        return False
    claimed = regions.place_of(region, lat, lon)
    return detection.scan_place({"region": region, "lat": lat, "lon": lon}, detection.CONSUMER_ROLE) == claimed


async def locate_posted(request: Request, conn, cv: dict, form: dict, session: str, lang: str, cookie: str | None):
    """Record the browser's position as this looker's claim (a scan with coordinates); the redirect saying what was believed."""
    position = position_of(form)
    if position is None or not cv.get("product"):
        return see_other(page_url(request, lang, located="bad") + "#located", cookie=cookie)
    client = client_of(request)
    await service.spend(request.app.state, conn, "scan", client)
    lat, lon = position
    await scan_inbox.accept_async(conn, cv["serial"], channel="web", lat=lat, lon=lon, session=session, client=client,
                                  count_window=request.app.state.settings.client_window_seconds)
    believed = position_believed(client.region, lat, lon)
    log.info("position_claimed", serial=cv["serial"], believed=believed, server_region=client.region)
    return see_other(page_url(request, lang, located="in" if believed else "out") + "#located", cookie=cookie)


async def form_posted(request: Request, conn, raw: dict, cv: dict, form: dict, session: str, lang: str, cookie: str | None,
                      files: dict | None = None):
    """The page's forms (``action=pin``, ``report`` with an optional photo in ``files``, or ``locate``); always a 303 to the page's GET."""
    if form.get("action") == "report":
        return await report_posted(request, conn, cv["serial"], form, lang, cookie, files)
    if form.get("action") == "locate":
        return await locate_posted(request, conn, cv, form, session, lang, cookie)
    flash = None
    if form.get("action") == "pin" and cv.get("pin_protected") and cv["verdict"] == "genuine":
        flash = (request.url.path, await pin_posted(request, conn, raw, form, session))
    return see_other(page_url(request, lang), cookie=cookie, flash=flash)


def locate_page(request: Request, lang: str) -> HTMLResponse:
    """The consent page of "check with my location" (its script allowed by hash only there; the browser may ask for the position)."""
    body = pages.locate_page(lang, other_lang_url(request, lang), page_url(request, lang), page_url(request, lang))
    r = html(body)
    r.headers["Content-Security-Policy"] = pages.LOCATE_CSP
    r.headers["Permissions-Policy"] = "geolocation=(self)"
    return r


def over_limit_page(request: Request, lang: str, exc: OverLimit) -> HTMLResponse:
    """The entry page saying, politely, that this network asked too often (429, ``Retry-After``)."""
    page = html(pages.entry_page(lang, other_lang_url(request, lang), error=wording.busy_text(lang, exc.retry_after)), status=429)
    page.headers["Retry-After"] = str(exc.retry_after)
    return page
