"""The GS1 Digital Link resolver and the shopper's page.

``GET /01/{gtin}/21/{serial}`` (extra AIs ``/10/{lot}`` in the path, ``?10=`` and
``?17=YYMMDD`` in the query): JSON for ``Accept: application/json``, the HTML
page otherwise. Every query is a scan (``web`` for the page, ``app`` for JSON),
accepted into the scan inbox like ``POST /v1/labels/{serial}/scans``; a browser
reloading the page within half an hour (same session cookie) is not counted again.
Every query, PIN try and report spends one of the client's (per-window limits of
:func:`traceledger.api.shopper.service.spend`); over a limit the page says so
politely (429 with ``Retry-After``; JSON: problem+json).
``POST`` to the same path: the page's PIN, report and locate forms (``?locate=1``: the
consent page of "check with my location", see :mod:`traceledger.api.shopper.page`).
``GET /``: manual entry (a serial or the 32-digit number code).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from ledger import gs1, shortcode
from ledger.client_limits import OverLimit
from ledger.errors import Refused
from projections.verification import read_view_async
from traceledger.api.client_identity import client_of
from traceledger.api.problems import refused
from traceledger.api.responses import OrjsonResponse
from traceledger.api.shopper import page, service
from traceledger.api.shopper.web import (
    NO_CACHE,
    form_and_files,
    html,
    lang_of,
    other_lang_url,
    page_url,
    parse_link,
    see_other,
    session_of,
    wants_json,
)
from traceledger.shopper import pages, wording

router = APIRouter()


def serial_typed(code: str) -> str:
    """The serial a shopper typed: a 32-digit number code or a ledger-form serial; refuses anything else."""
    typed = code[:200]
    digits = shortcode.clean_digits(typed)
    if digits.isascii() and digits.isdigit():
        return shortcode.from_short_code(digits)
    # Printed labels carry ledger-form serials only: say so rather than look up junk.
    serial = shortcode.normalize_serial(typed)
    if not shortcode.has_short_code(serial):
        raise Refused("invalid_serial", f"a serial is {gs1.SERIAL_LEN} letters and digits, a number code {shortcode.LENGTH} digits", field="code")
    return serial


def busy_page(request: Request, lang: str, exc: OverLimit) -> HTMLResponse:
    """The entry page saying, politely, that this network asked too often (429, ``Retry-After``)."""
    return page.over_limit_page(request, lang, exc)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def home(request: Request, code: str | None = None):
    """The manual-entry form; ``?code=`` (serial or 32-digit code) opens that label's page."""
    lang = lang_of(request)
    other = other_lang_url(request, lang)
    if code is None or not code.strip():
        return html(pages.entry_page(lang, other))
    try:
        serial = serial_typed(code)
    except Refused as exc:
        return html(pages.entry_page(lang, other, error=wording.error_text(exc.code, lang), code=code), status=400)
    state = request.app.state
    async with state.pool.connection() as conn:
        label = await read_view_async(conn, serial)
        if label.get("gtin"):  # the canonical page is the Digital Link one
            return RedirectResponse(f"/01/{label['gtin']}/21/{serial}?lang={lang}", status_code=303)
        session, cookie = session_of(request)
        client = client_of(request)
        try:  # the limit's hit and the query's inbox row: one durable write
            _, cv = await service.consumer_of(state, conn, serial, channel="web", session=session, client=client, spend_scope="scan")
        except OverLimit as exc:
            return busy_page(request, lang, exc)
        ps = await page.page_state(request, conn, cv, lang, session, scanned=False)
    return html(pages.result_page(cv, ps), cookie=cookie)


@router.get("/01/{gtin}/{rest:path}", summary="GS1 Digital Link resolver (JSON or the consumer page)",
            responses={200: {"content": {"text/html": {}}},  # a browser gets the page, also for a bad link
                       400: {"description": "a malformed link", "content": {"text/html": {}, "application/problem+json": {"schema": {"type": "object"}}}}})
@router.get("/01/{gtin}", include_in_schema=False)  # a link without a serial: a clear answer, not a redirect
async def resolve(request: Request, gtin: str, rest: str = ""):
    """The page (or JSON) a label's QR code opens; the query counts as a scan."""
    as_json = wants_json(request)
    lang = lang_of(request)
    try:
        gtin14, serial, lot, expiry = parse_link(gtin, rest, request.query_params)
    except Refused as exc:
        if as_json:
            return refused(400, exc)
        return html(pages.entry_page(lang, other_lang_url(request, lang), error=wording.error_text(exc.code, lang)), status=400)
    if not as_json and request.query_params.get("locate") == "1":
        return page.locate_page(request, lang)  # asks nothing of the ledger; the position is posted from it
    session, cookie = session_of(request) if not as_json else (None, None)
    state = request.app.state
    client = client_of(request)
    async with state.pool.connection() as conn:
        # The report form's steps are the same look at the label, not new queries of it.
        step = not as_json and any(k in request.query_params for k in ("report", "reported", "located"))
        channel = None if step else "app" if as_json else "web"
        try:  # the limit's hit and the query's inbox row: one durable write
            _, cv = await service.consumer_of(state, conn, serial, channel=channel, session=session,
                                                gtin=gtin14, lot=lot, expiry=expiry, client=client, spend_scope="scan")
        except OverLimit as exc:
            if as_json:
                raise
            return busy_page(request, lang, exc)
        if as_json:
            return OrjsonResponse(cv | {"display": wording.display_key(cv, scanned=True)}, headers=NO_CACHE)
        ps = await page.page_state(request, conn, cv, lang, session, scanned=True)
    return html(pages.result_page(cv, ps), cookie=cookie)


@router.post("/01/{gtin}/{rest:path}", response_class=HTMLResponse, include_in_schema=False)
async def resolve_form(request: Request, gtin: str, rest: str):
    """The page's forms: ``action=pin`` (with ``pin``) or ``action=report``; answered by a 303 to the page."""
    try:
        form, files = await form_and_files(request)
    except Refused as exc:
        lang = lang_of(request)
        if exc.code == "photo_too_large":  # too big to read (its fields unread too): back to the form, which says so
            return see_other(page_url(request, lang, report="1", err="report_bad_photo_size") + "#report")
        return html(pages.entry_page(lang, "/", error=wording.error_text(exc.code, lang)), status=400)
    lang = lang_of(request, form.get("lang"))
    other = other_lang_url(request, lang)
    try:
        gtin14, serial, lot, expiry = parse_link(gtin, rest, request.query_params)
    except Refused as exc:
        return html(pages.entry_page(lang, other, error=wording.error_text(exc.code, lang)), status=400)
    session, cookie = session_of(request)
    state = request.app.state
    try:
        async with state.pool.connection() as conn:
            raw, cv = await service.consumer_of(state, conn, serial, channel=None, session=None, gtin=gtin14, lot=lot, expiry=expiry)
            return await page.form_posted(request, conn, raw, cv, form, session, lang, cookie, files)
    except OverLimit as exc:
        return busy_page(request, lang, exc)
