"""Consumer channels of the API: the GS1 Digital Link resolver and page, PINs, SMS and phone.

Included by :mod:`traceledger.api` with ``app.include_router(build_router(settings, state))``;
``state`` is the API's dict holding the async pool and the ledger (filled by its lifespan).

Routes
------
``GET /01/{gtin}/21/{serial}`` (extra AIs ``/10/{lot}`` in the path, ``?10=`` and
``?17=YYMMDD`` in the query): JSON for ``Accept: application/json``, the HTML
page otherwise. Every query is a scan (``web`` for the page, ``app`` for JSON),
accepted into the scan inbox like ``POST /v1/labels/{serial}/scans``; a browser
reloading the page within half an hour (same session cookie) is not counted again.
``POST`` to the same path: the page's PIN and report forms.
``GET /``: manual entry. ``POST /v1/labels/{serial}/pin``, ``POST /v1/labels/{serial}/reports``,
``POST /v1/channels/sms``, ``POST /v1/channels/voice``.

A checked PIN is a query too: each check (any channel) is accepted into the
scan inbox as a scan carrying its outcome (``pin_result`` first_use | reused |
wrong, never the PIN), so detectors see reuse and guessing; an SMS with a PIN
is one scan carrying the outcome. A rate-limited try checks nothing and
records nothing. A report of a suspected fake goes through the same inbox
and becomes a ``ReportedFake`` event (see :func:`traceledger.consumer_store.add_report`).

Bad input is always a clear answer: problem+json (JSON), the page with a
message (HTML), or a reply text (SMS, voice); never a server error.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from contextlib import asynccontextmanager
from urllib.parse import parse_qs, urlencode

import orjson
import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from ledger import gs1, pins, scan_inbox, shortcode
from ledger.errors import Refused
from projections.checked_view import checked_view
from projections.verification import DEFAULT_SCHEMA, read_view_async
from traceledger import consumer as cons
from traceledger import consumer_page as page
from traceledger import consumer_store as store
from traceledger import voice_audio
from ledger.config import Settings
from ledger.logging_setup import get_logger
from traceledger.responses import OrjsonResponse

log = get_logger("api_consumer")

PROBLEM = "application/problem+json"
MAX_FORM_BYTES = 4096
SESSION_COOKIE = "tls"
RESCAN_SECONDS = 1800  # a reload by the same browser within this is not a new query
_CALL_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
PATH_AIS = {"10", "21", "22"}
# The PIN outcome a scan carries on the ledger; "limited" checked nothing and records nothing.
PIN_EVENT_RESULT = {"first_use": "first_use", "already_used": "reused", "wrong": "wrong"}


class PinIn(BaseModel):
    pin: str = Field(max_length=64)


class ReportIn(BaseModel):
    note: str | None = Field(default=None, max_length=500)


def _problem(status: int, exc: Refused, headers: dict | None = None) -> JSONResponse:
    body = {"type": f"https://traceledger.example/problems/{exc.code}", "title": "input refused", "status": status,
            "detail": exc.detail, "code": exc.code}
    if exc.field:
        body["field"] = exc.field
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def wants_json(request: Request) -> bool:
    """Content negotiation: JSON when asked for and HTML is not (browsers always send text/html)."""
    accept = request.headers.get("accept", "")
    return ("application/json" in accept or "+json" in accept) and "text/html" not in accept


def parse_link(gtin: str, rest: str, query) -> tuple[str, str, str | None, str | None]:
    """(GTIN-14, serial, lot, expiry AI 17) from a Digital Link path and query; refuses bad input."""
    gtin14 = gs1.normalize_gtin(gtin)
    segs = [s for s in rest.split("/") if s != ""]
    if len(segs) % 2:
        raise Refused("invalid_link", "a Digital Link path is pairs of AI/value", field="path")
    ais: dict[str, str] = {}
    for ai, value in zip(segs[::2], segs[1::2]):
        if ai not in PATH_AIS:
            raise Refused("invalid_link", f"AI ({ai[:4]}) does not belong in a GTIN's path", field="path")
        ais[ai] = value
    if "21" not in ais:
        raise Refused("invalid_link", "the link names no serial (AI 21)", field="serial")
    serial = gs1.validate_serial(ais["21"])
    lot = ais.get("10") or query.get("10")
    if lot is not None:
        gs1.validate_lot(lot, "10")
    expiry = query.get("17")
    if expiry is not None:
        cons.parse_expiry_ai(expiry)  # refuse a malformed one early
    return gtin14, serial, lot, expiry


def build_router(settings: Settings, state: dict) -> APIRouter:
    """The consumer routes over the API's ``state`` (``pool``, ``ledger``)."""
    names: dict[str, str] = {}
    shared: dict = {}

    @asynccontextmanager
    async def lifespan(app):
        with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
            shared["secret"] = store.ensure_schema(conn)
        yield

    router = APIRouter(lifespan=lifespan)

    # ------------------------------------------------------------ helpers

    def client_of(request: Request) -> str:
        # The socket peer: behind a reverse proxy this must become the proxy's
        # trusted X-Forwarded-For (not configured here: see the README).
        return store.client_key(shared["secret"], "ip", request.client.host if request.client else "-")

    async def producer_name(producer: str | None) -> str | None:
        if not producer:
            return None
        if producer not in names:
            actor = await asyncio.to_thread(state["ledger"].actor, producer)
            names[producer] = actor.name if actor else producer
        return names[producer]

    async def view_of(conn, serial: str, *, channel: str | None, session: str | None, pin_result: str | None = None) -> dict:
        """The verification view with this query counted as a scan (channel None: not counted)."""
        accepted = None
        if channel is not None:
            seen = False
            if session and channel == "web" and pin_result is None:
                seen = await (await conn.execute(
                    "SELECT 1 FROM scan_inbox WHERE serial = %s AND session = %s AND kind = 'scan' "
                    "AND occurred_at > now() - make_interval(secs => %s) LIMIT 1",
                    (serial, session, RESCAN_SECONDS),
                )).fetchone() is not None
            if not seen:
                accepted = await scan_inbox.accept_async(conn, serial, channel=channel, session=session, pin_result=pin_result)
        # One round trip; never "genuine" when the ledger's stored chain no longer matches what it published.
        out = await checked_view(state["ledger"].app, conn, serial, with_inbox=True)
        if out["verdict"] != "unknown":
            out["scan_count"] += out["unprojected"]
            if not out["first_scanned_at"] and out["scan_count"]:
                # Scans not projected yet: the first is the inbox's earliest (not this one).
                first = out["inbox_first_scan"]
                out["first_scanned_at"] = first.isoformat() if first else None
        if out.get("gtin"):
            out["uri"] = gs1.digital_link_uri(out["gtin"], serial, settings.resolver_host)
        if accepted:
            log.info("consumer_query", serial=serial, channel=channel, verdict=out["verdict"], event_id=accepted.event_id)
        return out

    async def consumer_of(conn, serial: str, *, channel: str | None, session: str | None, gtin=None, lot=None, expiry=None,
                          pin_result: str | None = None) -> tuple[dict, dict]:
        raw = await view_of(conn, serial, channel=channel, session=session, pin_result=pin_result)
        cv = cons.consumer_view(raw, producer_name=await producer_name(raw.get("producer")), gtin=gtin, lot=lot, expiry=expiry)
        return raw, cv

    async def public_view(raw: dict) -> dict:
        """What anyone may see of a verification view (``GET /v1/labels/{serial}`` and scans answer this)."""
        return cons.consumer_view(raw, producer_name=await producer_name(raw.get("producer")))

    # The API's own label routes answer the consumer's view too (privacy: see consumer.consumer_view).
    state["public_view"] = public_view

    async def record_pin_scan(conn, serial: str, pin: dict, channel: str, session: str | None) -> None:
        """Record a PIN check as a scan carrying its outcome (nothing for a rate-limited try)."""
        result = PIN_EVENT_RESULT.get(pin["pin_result"])
        if result is None:
            return
        accepted = await scan_inbox.accept_async(conn, serial, channel=channel, session=session, pin_result=result)
        log.info("pin_scan", serial=serial, channel=channel, pin_result=result, event_id=accepted.event_id)

    async def pin_check(conn, raw: dict, pin_text: str, client: str, channel: str) -> dict:
        """PIN outcome as a dict; raises Refused for a malformed PIN or a label without one."""
        pin = pins.normalize_pin(pin_text)
        if not raw.get("pin_protected"):
            raise Refused("not_pin_protected", "this label has no scratch-off PIN", field="pin")
        row = await (await conn.execute(f"SELECT pin_hash FROM {DEFAULT_SCHEMA}.labels WHERE serial = %s", (raw["serial"],))).fetchone()
        return (await store.check_pin(conn, raw["serial"], pin, row[0], client, channel)).as_dict()

    def session_of(request: Request) -> tuple[str, str | None]:
        """(this browser's session id for the scan, a new cookie value to set or None)."""
        token = request.cookies.get(SESSION_COOKIE)
        new = None
        if not token or not re.fullmatch(r"[A-Za-z0-9_-]{16,32}", token):
            token = new = secrets.token_urlsafe(16)
        return store.client_key(shared["secret"], "w", token), new

    def lang_of(request: Request, form_lang: str | None = None) -> str:
        return cons.pick_lang(form_lang or request.query_params.get("lang"), request.headers.get("accept-language"))

    def other_lang_url(request: Request, lang: str) -> str:
        params = {k: v for k, v in request.query_params.items() if k != "lang"}
        params["lang"] = "en" if lang == "zh" else "zh"
        return f"{request.url.path}?{urlencode(params)}"

    def html(body: str, status: int = 200, cookie: str | None = None) -> HTMLResponse:
        r = HTMLResponse(body, status_code=status, headers={"Vary": "Accept, Accept-Language", "Cache-Control": "no-store"})
        if cookie:
            r.set_cookie(SESSION_COOKIE, cookie, max_age=365 * 86400, httponly=True, samesite="lax")
        return r

    async def form_of(request: Request) -> dict[str, str]:
        """A form-encoded body as {name: first value}; tolerant of junk bytes, bounded in size."""
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise Refused("too_large", f"at most {MAX_FORM_BYTES} bytes of form data", field="body")
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                data = orjson.loads(body or b"{}")
            except orjson.JSONDecodeError:
                raise Refused("invalid_request", "body is not JSON", field="body") from None
            if not isinstance(data, dict):
                raise Refused("invalid_request", "body must be a JSON object", field="body")
            return {str(k): v if isinstance(v, str) else str(v) for k, v in data.items() if v is not None}
        text = body.decode("utf-8", "replace")
        return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}

    # ------------------------------------------------------------ manual entry

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def home(request: Request, code: str | None = None):
        """The manual-entry form; ``?code=`` (serial or 32-digit code) opens that label's page."""
        lang = lang_of(request)
        other = other_lang_url(request, lang)
        if code is None or not code.strip():
            return html(page.entry_page(lang, other))
        try:
            typed = code[:200]
            digits = shortcode.clean_digits(typed)
            if digits.isascii() and digits.isdigit():
                serial = shortcode.from_short_code(digits)
            else:
                # Printed labels carry ledger-form serials only: say so rather than look up junk.
                serial = shortcode.normalize_serial(typed)
                if not shortcode.has_short_code(serial):
                    raise Refused("invalid_serial", f"a serial is {gs1.SERIAL_LEN} letters and digits, a number code {shortcode.LENGTH} digits", field="code")
        except Refused as exc:
            return html(page.entry_page(lang, other, error=exc.detail, code=code), status=400)
        async with state["pool"].connection() as conn:
            label = await read_view_async(conn, serial)
            if label.get("gtin"):  # the canonical page is the Digital Link one
                return RedirectResponse(f"/01/{label['gtin']}/21/{serial}?lang={lang}", status_code=303)
            session, cookie = session_of(request)
            raw, cv = await consumer_of(conn, serial, channel="web", session=session)
        return html(page.result_page(cv, cons.display_key(cv), lang, other), cookie=cookie)

    # ------------------------------------------------------------ resolver

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
                return _problem(400, exc)
            return html(page.entry_page(lang, other_lang_url(request, lang), error=exc.detail), status=400)
        session, cookie = session_of(request) if not as_json else (None, None)
        async with state["pool"].connection() as conn:
            raw, cv = await consumer_of(conn, serial, channel="app" if as_json else "web", session=session, gtin=gtin14, lot=lot, expiry=expiry)
        if as_json:
            return OrjsonResponse(cv | {"display": cons.display_key(cv)}, headers={"Vary": "Accept, Accept-Language", "Cache-Control": "no-store"})
        return html(page.result_page(cv, cons.display_key(cv), lang, other_lang_url(request, lang)), cookie=cookie)

    @router.post("/01/{gtin}/{rest:path}", response_class=HTMLResponse, include_in_schema=False)
    async def resolve_form(request: Request, gtin: str, rest: str):
        """The page's forms: ``action=pin`` (with ``pin``) or ``action=report``."""
        try:
            form = await form_of(request)
        except Refused as exc:
            return html(page.entry_page(lang_of(request), "/", error=exc.detail), status=400)
        lang = lang_of(request, form.get("lang"))
        other = other_lang_url(request, lang)
        try:
            gtin14, serial, lot, expiry = parse_link(gtin, rest, request.query_params)
        except Refused as exc:
            return html(page.entry_page(lang, other, error=exc.detail), status=400)
        pin = pin_error = reported = None
        status = 200
        session, cookie = session_of(request)
        async with state["pool"].connection() as conn:
            raw, cv = await consumer_of(conn, serial, channel=None, session=None, gtin=gtin14, lot=lot, expiry=expiry)
            if form.get("action") == "report":
                reported = (await store.add_report(conn, serial, "web", client_of(request), None)).report_id
            elif form.get("action") == "pin" and cv.get("pin_protected"):
                try:
                    pin = await pin_check(conn, raw, form.get("pin", ""), client_of(request), "web")
                except Refused:
                    pin_error, status = cons.TEXT[lang]["pin_invalid"], 400
                if pin:
                    await record_pin_scan(conn, serial, pin, "web", session)
                if pin and pin["pin_result"] == "limited":
                    status = 429
        page_html = page.result_page(cv, cons.display_key(cv, pin), lang, other, pin=pin, pin_error=pin_error, reported=reported)
        return html(page_html, status=status, cookie=cookie)

    # ------------------------------------------------------------ JSON: PIN and reports

    @router.post("/v1/labels/{serial}/pin", summary="Verify a scratch-off PIN (rate-limited per label and per client)")
    async def post_pin(request: Request, serial: str, body: PinIn):
        """``first_use`` / ``already_used`` (with the first time) / ``wrong`` (tries left); 429 when rate-limited."""
        gs1.validate_serial(serial)
        async with state["pool"].connection() as conn:
            raw, cv = await consumer_of(conn, serial, channel=None, session=None)
            if cv["verdict"] == "unknown" and not raw.get("gtin"):
                return OrjsonResponse(cv | {"pin_result": None})
            client = client_of(request)
            result = await pin_check(conn, raw, body.pin, client, "web")
            await record_pin_scan(conn, serial, result, "app", client)
        if result["pin_result"] == "limited":
            return _problem(429, Refused("too_many_attempts", "too many wrong PINs: try again later", field="pin"),
                            headers={"Retry-After": str(result["retry_after"])})
        return OrjsonResponse(cv | result | {"display": cons.display_key(cv, result)})

    @router.post("/v1/labels/{serial}/reports", status_code=201, summary="Report a suspected fake")
    async def post_report(request: Request, serial: str, body: ReportIn | None = None):
        """Kept in ``consumer_reports`` for regulators and signed onto the label's chain as a
        ``ReportedFake`` event (``event_id``) by the gateway; ``on_ledger`` is false for a
        serial that was never issued, whose report stays in the table only."""
        gs1.validate_serial(serial)
        note = ((body.note if body else None) or "").strip() or None
        if note and re.search(r"[\x00-\x1f\x7f]", note):
            raise Refused("invalid_field", "note contains control characters", field="note")
        async with state["pool"].connection() as conn:
            accepted = await store.add_report(conn, serial, "api", client_of(request), note)
        issued = await asyncio.to_thread(state["ledger"].head, "label", serial) is not None
        detail = ("signed onto the label's ledger chain by the gateway for regulators" if issued else
                  "this code was never issued, so there is no ledger chain to sign it onto: kept for regulators in the report table")
        return OrjsonResponse({"report_id": accepted.report_id, "event_id": accepted.event_id, "serial": serial,
                               "on_ledger": issued, "detail": detail}, status_code=201)

    # ------------------------------------------------------------ SMS

    @router.post("/v1/channels/sms", summary="Inbound SMS webhook (form fields from, text): the reply text",
                 responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    async def sms(request: Request):
        """Reply ≤ 70 UCS-2 characters, verdict first; text/plain, or ``{"reply": …}`` for Accept: application/json."""
        as_json = "application/json" in request.headers.get("accept", "")
        lang = "zh"
        try:
            form = await form_of(request)
            sender = (form.get("from") or "-")[:32]
            serial, pin_text, lang = cons.parse_sms(form.get("text", ""))
            gs1.validate_serial(serial)
        except Refused as exc:
            reply = cons.SMS[lang]["bad_check" if exc.code == "bad_check_digit" else "bad"]
            log.info("sms_unreadable", code=exc.code)
            return _sms_answer(reply, as_json)
        client = store.client_key(shared["secret"], "sms", sender)
        async with state["pool"].connection() as conn:
            pin = None
            if pin_text:  # check the PIN first: the message's one scan carries its outcome
                raw, cv = await consumer_of(conn, serial, channel=None, session=None)
                if cv.get("pin_protected") and cv["verdict"] == "genuine":
                    pin = await pin_check(conn, raw, pin_text, client, "sms")
            pin_result = PIN_EVENT_RESULT.get(pin["pin_result"]) if pin else None
            raw, cv = await consumer_of(conn, serial, channel="sms", session=client, pin_result=pin_result)
        if pin and pin["pin_result"] in ("wrong", "limited"):
            reply = cons.sms_reply("pin_" + pin["pin_result"], lang, cv, pin)
        else:
            reply = cons.sms_reply(cons.display_key(cv, pin), lang, cv, pin)
        return _sms_answer(reply, as_json)

    # ------------------------------------------------------------ voice

    @router.post("/v1/channels/voice", summary="Phone line (IVR): DTMF digits step by step; answers the next prompt")
    async def voice(request: Request):
        """Form fields ``call_id``, ``digits`` (what was keyed since the last prompt), ``from``, ``lang``.

        Answers ``{"prompt", "expect": "code"|"pin"|null, "hangup", "lang", "audio"}``; ``audio`` is
        the URL of the prompt as a WAV file, for platforms that play audio.
        """
        form = await form_of(request)
        call_id = form.get("call_id", "")
        if not _CALL_ID.fullmatch(call_id):
            raise Refused("invalid_field", "call_id must be 1-64 letters, digits or ._:-", field="call_id")
        keyed = shortcode.clean_digits(form.get("digits", "")).rstrip("#")
        async with state["pool"].connection() as conn:
            call = await store.ivr_get(conn, call_id)
            lang = (call or {}).get("lang") or cons.pick_lang(form.get("lang"), None)
            v = VOICE[lang]
            client = store.client_key(shared["secret"], "tel", (form.get("from") or call_id)[:32])

            async def say(prompt: str, step: str, serial=None, tries=0, expect=None) -> OrjsonResponse:
                await store.ivr_put(conn, call_id, step, serial, tries, lang, prompt)
                return OrjsonResponse({"prompt": prompt, "expect": expect, "hangup": expect is None, "lang": lang,
                                       "audio": f"/v1/channels/voice/audio?{urlencode({'call_id': call_id})}"})

            if call is None and not keyed:
                return await say(v["welcome"], "code", expect="code")
            step, tries = (call or {}).get("step", "code"), (call or {}).get("tries", 0)
            if step == "done":
                return await say(v["bye"], "done")
            if keyed in ("", "*"):  # nothing keyed, or * to hear the prompt again
                return await say(v["welcome"] if step == "code" else v["pin"], step, call and call["serial"], tries, expect=step)
            if step == "code":
                try:
                    serial = shortcode.from_short_code(keyed)
                except Refused as exc:
                    if tries + 1 >= 3:
                        return await say(v["give_up"], "done")
                    return await say(v["bad_check" if exc.code == "bad_check_digit" else "bad_code"], "code", None, tries + 1, expect="code")
                raw, cv = await consumer_of(conn, serial, channel="voice", session=client)
                if cv.get("pin_protected") and cv["verdict"] == "genuine":
                    return await say(v["pin"], "pin", serial, 0, expect="pin")
                return await say(cons.sms_reply(cons.display_key(cv), lang, cv) + v["bye"], "done")
            serial = call["serial"]
            raw, cv = await consumer_of(conn, serial, channel=None, session=None)
            try:
                pin = await pin_check(conn, raw, keyed, client, "voice")
                await record_pin_scan(conn, serial, pin, "voice", client)
            except Refused:
                if tries + 1 >= 3:
                    return await say(v["give_up"], "done")
                return await say(v["bad_pin"], "pin", serial, tries + 1, expect="pin")
            if pin["pin_result"] == "wrong" and pin["attempts_left"] > 0 and tries + 1 < 3:
                return await say(cons.sms_reply("pin_wrong", lang, cv, pin) + v["again"], "pin", serial, tries + 1, expect="pin")
            key = "pin_" + pin["pin_result"] if pin["pin_result"] in ("wrong", "limited") else cons.display_key(cv, pin)
            return await say(cons.sms_reply(key, lang, cv, pin) + v["bye"], "done")

    @router.get("/v1/channels/voice/audio", summary="The phone call's current prompt as WAV audio (espeak-ng)",
                response_class=Response, responses={200: {"content": {"audio/wav": {}}}})
    async def voice_prompt_audio(call_id: str = ""):
        """The prompt the call was last given, spoken (Mandarin or English, as the call goes); 404 for no such call."""
        if not _CALL_ID.fullmatch(call_id):
            raise Refused("invalid_field", "call_id must be 1-64 letters, digits or ._:-", field="call_id")
        async with state["pool"].connection() as conn:
            current = await store.ivr_prompt(conn, call_id)
        if current is None:
            return _problem(404, Refused("unknown_call", f"no call {call_id} has been given a prompt", field="call_id"))
        try:
            wav = await voice_audio.synthesize(*current)
        except voice_audio.SpeechUnavailable as exc:
            log.error("voice_audio_unavailable", call_id=call_id, error=str(exc))
            return _problem(503, Refused("unavailable", str(exc)))
        return Response(wav, media_type="audio/wav", headers={"Cache-Control": "no-store"})

    return router


VOICE = {
    "zh": {
        "welcome": "您好，这里是防伪查询。请输入标签上的32位数字码，以井号键结束。",
        "bad_code": "号码位数不对。请重新输入32位数字码，以井号键结束。",
        "bad_check": "号码有误，可能按错了一位。请重新输入，以井号键结束。",
        "pin": "这是双层防伪标签。请刮开涂层，输入防伪码，以井号键结束。",
        "bad_pin": "防伪码为6到12位数字。请重新输入，以井号键结束。",
        "again": "请重新输入防伪码。",
        "give_up": "输入错误次数过多，请核对后再拨。再见。",
        "bye": "感谢您的查询，再见。",
    },
    "en": {
        "welcome": "Welcome to product check. Enter the 32-digit code on the label, then the hash key.",
        "bad_code": "That was not 32 digits. Enter the code again, then the hash key.",
        "bad_check": "A digit seems mistyped. Enter the code again, then the hash key.",
        "pin": "This label has a scratch-off PIN. Scratch it and enter the PIN, then the hash key.",
        "bad_pin": "The PIN is 6 to 12 digits. Enter it again, then the hash key.",
        "again": " Enter the PIN again.",
        "give_up": "Too many errors. Please check and call again. Goodbye.",
        "bye": " Thank you, goodbye.",
    },
}


def _sms_answer(reply: str, as_json: bool) -> Response:
    if as_json:
        return OrjsonResponse({"reply": reply})
    return PlainTextResponse(reply)
