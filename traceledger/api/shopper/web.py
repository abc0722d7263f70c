"""HTTP details of the shopper channels: links, forms, language, cookies.

Who a request comes from is :mod:`traceledger.api.client_identity`.

Bad input is always a clear answer: problem+json (JSON), the page with a
message (HTML), or a reply text (SMS, voice); never a server error.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from urllib.parse import parse_qs, urlencode

import orjson
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from ledger import gs1, report_photos
from ledger.errors import Refused
from traceledger.api.client_identity import pseudonym
from traceledger.shopper import wording

MAX_FORM_BYTES = 4096
MAX_MULTIPART_BYTES = report_photos.MAX_BYTES + MAX_FORM_BYTES  # the report form with its photo
MAX_PARTS = 16
SESSION_COOKIE = "tls"
FLASH_COOKIE = "tlf"  # the last PIN outcome on one label's page, for the GET after the form's redirect
FLASH_SECONDS = 600
# Query parameters that are the page's own steps, not part of the label's link.
PAGE_PARAMS = {"lang", "report", "reported", "place", "price", "phone", "err", "locate", "located"}
PATH_AIS = {"10", "21", "22"}
NO_CACHE = {"Vary": "Accept, Accept-Language", "Cache-Control": "no-store"}


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
        wording.parse_expiry_ai(expiry)  # refuse a malformed one early
    return gtin14, serial, lot, expiry


def session_of(request: Request) -> tuple[str, str | None]:
    """(this browser's session id for the scan, a new cookie value to set or None)."""
    token = request.cookies.get(SESSION_COOKIE)
    new = None
    if not token or not re.fullmatch(r"[A-Za-z0-9_-]{16,32}", token):
        token = new = secrets.token_urlsafe(16)
    return pseudonym(request, "w", token), new


def lang_of(request: Request, form_lang: str | None = None) -> str:
    return wording.pick_lang(form_lang or request.query_params.get("lang"), request.headers.get("accept-language"))


def other_lang_url(request: Request, lang: str) -> str:
    params = {k: v for k, v in request.query_params.items() if k != "lang"}
    params["lang"] = "en" if lang == "zh" else "zh"
    return f"{request.url.path}?{urlencode(params)}"


def page_url(request: Request, lang: str, **extra: str) -> str:
    """This label page's own URL in ``lang`` (the link's AIs kept, the page's steps dropped), plus ``extra``."""
    params = {k: v for k, v in request.query_params.items() if k not in PAGE_PARAMS}
    return f"{request.url.path}?{urlencode(params | {'lang': lang} | extra)}"


def _flash_mac(request: Request, serial: str, value: str) -> str:
    key = request.app.state.channel_secret
    return hmac.new(key, f"flash|{serial}|{value}".encode(), hashlib.sha256).hexdigest()[:20]


def flash_value(request: Request, serial: str, outcome: str, left: int | None = None, retry: int | None = None) -> str:
    """A signed cookie value carrying one PIN outcome across the POST-redirect-GET (never the PIN)."""
    value = f"{outcome}.{left if left is not None else ''}.{retry if retry is not None else ''}"
    return f"{value}.{_flash_mac(request, serial, value)}"


def read_flash(request: Request, serial: str) -> dict | None:
    """The PIN outcome this browser was just given on ``serial``'s page, or None (absent, forged, other label)."""
    raw = request.cookies.get(FLASH_COOKIE) or ""
    value, _, mac = raw.rpartition(".")
    if not value or not hmac.compare_digest(mac, _flash_mac(request, serial, value)):
        return None
    outcome, left, retry = (value.split(".") + ["", ""])[:3]
    return {"pin_result": outcome, "attempts_left": int(left) if left.isdigit() else None,
            "retry_after": int(retry) if retry.isdigit() else None}


def see_other(url: str, cookie: str | None = None, flash: tuple[str, str] | None = None) -> RedirectResponse:
    """303 to ``url`` (the GET after a form's POST: a reload never resubmits), setting the session and flash cookies."""
    r = RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})
    if cookie:
        r.set_cookie(SESSION_COOKIE, cookie, max_age=365 * 86400, httponly=True, samesite="lax")
    if flash:
        path, value = flash
        r.set_cookie(FLASH_COOKIE, value, max_age=FLASH_SECONDS, path=path, httponly=True, samesite="lax")
    return r


def html(body: str, status: int = 200, cookie: str | None = None) -> HTMLResponse:
    r = HTMLResponse(body, status_code=status, headers=NO_CACHE)
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


_BOUNDARY = re.compile(r'boundary="?([0-9A-Za-z\'()+_,./:=?-]{1,70})"?')
_DISPOSITION = re.compile(r'form-data;\s*name="([^"]{1,40})"(;\s*filename="([^"]{0,255})")?', re.I)


async def bounded_body(request: Request, limit: int) -> bytes:
    """The request body, refused (``photo_too_large``) past ``limit`` bytes, declared or sent, without reading the rest."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refused("photo_too_large", f"at most {limit} bytes per form", field="body")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Refused("photo_too_large", f"at most {limit} bytes per form", field="body")
    return bytes(body)


async def form_and_files(request: Request) -> tuple[dict[str, str], dict[str, bytes]]:
    """A page form's fields and uploaded files (``multipart/form-data``; else :func:`form_of` and no files).

    A small parser of our own (the form has a few fields and one file): the file's name and
    declared type are dropped, only its bytes are kept, and they are checked by what they are
    (:func:`ledger.report_photos.checked_photo`), never by what the browser says.
    """
    ctype = request.headers.get("content-type", "")
    if not ctype.lower().startswith("multipart/form-data"):
        return await form_of(request), {}
    m = _BOUNDARY.search(ctype)
    if not m:
        raise Refused("invalid_request", "a multipart form without a boundary", field="body")
    body = await bounded_body(request, MAX_MULTIPART_BYTES)
    fields: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in body.split(b"--" + m.group(1).encode())[1:MAX_PARTS + 1]:
        if part.startswith(b"--"):
            break  # the closing delimiter
        head, sep, content = part.partition(b"\r\n\r\n")
        disposition = next((line for line in head.decode("utf-8", "replace").split("\r\n")
                            if line.lower().startswith("content-disposition:")), "")
        d = _DISPOSITION.search(disposition)
        if not sep or not d:
            continue
        content = content[:-2] if content.endswith(b"\r\n") else content
        if d.group(2) is not None:
            if content:  # a file input left empty sends an empty part
                files[d.group(1)] = content
        else:
            fields.setdefault(d.group(1), content[:MAX_FORM_BYTES].decode("utf-8", "replace"))
    return fields, files
