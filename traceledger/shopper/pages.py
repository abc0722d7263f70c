"""The consumer's HTML pages: one small self-contained document each, no external assets.

Plain string building with :func:`html.escape` on every value (no template
engine: two pages do not justify a dependency). Inline CSS, inline SVG icons,
system fonts, no JavaScript: it works on a slow phone and prints as it shows.
Every word on a page is in the page's language (:data:`traceledger.shopper.wording.TEXT`),
every input has a ``<label>``, phone numbers are ``tel:`` links.

One page has a script: :func:`locate_page`, reached only by the shopper's own tap on
"用我的位置核对", asks the browser for the position (the browser asks the person) and
posts it. Its script is a constant (:data:`LOCATE_SCRIPT`), allowed by hash in that
page's Content-Security-Policy (:data:`LOCATE_CSP`) and nowhere else.

:func:`result_page` takes a :class:`PageState`: the verdict to show and what the
page knows besides the label's view (this looker's times, the lot's details, the
PIN and report steps).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from html import escape
from urllib.parse import urlencode

from traceledger.shopper.wording import HOTLINE, TEXT, cert_values, local_time, place, reason_text

RECALL_SITE = "https://www.recall.org.cn/"  # the national defective product recall site (SAMR's DPAC)

COLOURS = {
    "genuine": "#1a7f37", "seen": "#1a7f37", "pin_ok": "#1a7f37", "pin_seen": "#1a7f37",
    "queried": "#9a4d00", "pin_used": "#9a4d00", "pin_wrong": "#9a4d00", "pin_limited": "#9a4d00", "suspicious": "#9a4d00",
    "pin_needed": "#31507a", "unknown": "#59636e", "unknown_scanned": "#b0181b", "recalled": "#c4320a", "counterfeit": "#b0181b",
    "cert_revoked": "#9a4d00", "cert_suspended": "#9a4d00",
}
_ICON_PATHS = {
    "ok": '<circle cx="24" cy="24" r="21" stroke-width="3"/><path d="M14 25l7 7 13-15"/>',
    "warn": '<circle cx="24" cy="24" r="21" stroke-width="3"/><path d="M24 13v14M24 33v2"/>',
    "ask": '<circle cx="24" cy="24" r="21" stroke-width="3"/><path d="M19 18a5 5 0 1 1 7 5c-2 1-2 2-2 5M24 33v2"/>',
    "bad": '<circle cx="24" cy="24" r="21" stroke-width="3"/><path d="M17 17l14 14M31 17L17 31"/>',
    "hazard": '<path d="M24 5L45 42H3z" stroke-width="3" stroke-linejoin="round"/><path d="M24 18v12M24 35v2"/>',
    "key": '<circle cx="24" cy="24" r="21" stroke-width="3"/><rect x="15" y="22" width="18" height="13" rx="2"/><path d="M19 22v-4a5 5 0 0 1 10 0v4"/>',
}
_ICON_OF = {"genuine": "ok", "seen": "ok", "pin_ok": "ok", "pin_seen": "ok", "queried": "warn", "pin_used": "warn", "pin_wrong": "warn",
            "pin_limited": "warn", "suspicious": "warn", "pin_needed": "key", "unknown": "ask", "unknown_scanned": "bad",
            "recalled": "hazard", "counterfeit": "bad", "cert_revoked": "warn", "cert_suspended": "warn"}
ZWSP = "\u200b"  # in a headline: where a line may break (headlines keep Chinese words whole)
GOOD = ("genuine", "seen", "pin_ok", "pin_seen")
PIN_FORM = ("pin_needed", "pin_wrong")  # the PIN form shows until a right PIN was entered

CSS = (
    "*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,'PingFang SC','Microsoft YaHei',"
    "'WenQuanYi Micro Hei',sans-serif;color:#1f2328;background:#f6f8fa}"
    "header{display:flex;justify-content:space-between;padding:.6rem 1rem;background:#fff;border-bottom:1px solid #d0d7de}"
    "main{max-width:32rem;margin:0 auto;padding:1rem}a{color:#0969da}"
    ".v{color:#fff;border-radius:12px;padding:1.2rem;text-align:center}.v h1{margin:.3rem 0;font-size:1.6rem;line-height:1.3;"
    "word-break:keep-all;overflow-wrap:anywhere}.v p{margin:0}.v svg{width:64px;height:64px}"
    "section{background:#fff;border:1px solid #d0d7de;border-radius:12px;padding:.8rem 1rem;margin-top:1rem}"
    "h2{font-size:1.05rem;margin:0 0 .4rem}dl{display:grid;grid-template-columns:auto 1fr;gap:.2rem .8rem;margin:0}"
    "dt{color:#59636e}dd{margin:0;overflow-wrap:anywhere}ol,ul{margin:0;padding-left:1.2rem}"
    ".g{white-space:nowrap}label{display:block;margin:.4rem 0 .2rem;font-weight:600}"
    "input,button,.b{font:inherit;padding:.6rem;border-radius:8px;border:1px solid #8c959f;width:100%;display:block}"
    "button,.b{background:#0969da;color:#fff;border:0;margin-top:.5rem;text-align:center;text-decoration:none}.r{background:#b0181b}"
    ".msg{font-weight:600}.m{color:#59636e;font-size:.9rem}.hz{border-color:#c4320a;border-width:2px}"
    ".tel{font-weight:600;font-size:1.1rem}.st{font-weight:600}.st-suspended,.st-revoked{color:#b0181b}.st-valid{color:#1a7f37}#report dl{grid-template-columns:1fr}#report dd{margin-bottom:.3rem;font-weight:600}"
)


@dataclass
class PageState:
    """What a label's page shows besides the view: the verdict key and this looker's context."""

    display: str
    lang: str
    other_url: str
    action: str  # this page's own URL (forms post to it, links add to it)
    mine_first: str | None = None  # this looker's first query (ISO)
    pin: dict | None = None  # PIN outcome (see wording.display_key) and ``first`` use (at, channel, region)
    pin_error: str | None = None
    lot: dict = field(default_factory=dict)  # projections.shopper_details.lot_details
    report: dict | None = None  # {"step": "form"|"confirm"|"done", "values", "error", "public_id"}
    hotline: str | None = None  # the brand's hotline, when the ledger knows it
    located: str | None = None  # after "check with my location": "in" (believed), "out" (a claim only) or "bad"


def _page(lang: str, title: str, other_url: str, body: str) -> str:
    t = TEXT[lang]
    html_lang = "zh-CN" if lang == "zh" else "en"
    other = "en" if lang == "zh" else "zh"
    return (
        f'<!doctype html><html lang="{html_lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f'<header><a href="/?lang={lang}" aria-label="{escape(t["home"])}">{escape(t["title"])}</a>'
        f'<a href="{escape(other_url)}" hreflang="{other}" lang="{other}" id="lang" aria-label="{escape(t["lang_label"])}">'
        f'{escape(t["other_lang"])}</a></header>'
        f"<main>{body}</main></body></html>"
    )


def _icon(display: str) -> str:
    return ('<svg viewBox="0 0 48 48" aria-hidden="true" fill="none" stroke="#fff" stroke-width="4" stroke-linecap="round">'
            f"{_ICON_PATHS[_ICON_OF[display]]}</svg>")


def _tel(number: str, label: str) -> str:
    dial = "".join(c for c in number if c.isdigit() or c == "+")  # tel: wants the digits, the eye the grouping
    return f'<a class="tel" href="tel:{escape(dial)}">{escape(number)}</a> <span class="m">{escape(label)}</span>'


def _where(first: dict | None, lang: str) -> str:
    """", by SMS, near Shenzhen" for the first PIN use (what the server stands behind: channel, coarse region)."""
    if not first:
        return ""
    t = TEXT[lang]
    out = t["via"].format(c=t.get("ch_" + str(first.get("channel")), first.get("channel") or ""))
    where = place(first.get("region"))
    return out + (t["near"].format(p=where[lang]) if where else "")


def verdict_banner(cv: dict, ps: PageState) -> tuple[str, str]:
    """(banner HTML, headline text)."""
    t = TEXT[ps.lang]
    pin = ps.pin or {}
    first = pin.get("first") or {}
    vals = {"n": cv.get("scan_count", 0), "t": local_time(cv.get("first_scanned_at"), ps.lang),
            "mine_t": local_time(ps.mine_first, ps.lang), "pt": local_time(first.get("at") or pin.get("pin_first_verified_at"), ps.lang),
            "where": _where(first, ps.lang), "left": pin.get("attempts_left") or 0,
            "m": max(1, -(-(pin.get("retry_after") or 60) // 60))} | cert_values(cv)
    head = t[ps.display].format(**vals)
    sub = t[ps.display + "_sub"].format(**vals)
    html = (f'<div class="v {ps.display}" id="verdict" data-verdict="{ps.display}" role="status" style="background:{COLOURS[ps.display]}">'
            f"{_icon(ps.display)}<h1>{escape(head).replace(ZWSP, '<wbr>')}</h1><p>{escape(sub)}</p></div>")
    return html, head.replace(ZWSP, "")


def _in(lang: str, zh: str | None, en: str | None, fallback: str | None = None) -> str:
    """A name in the page's language: the Chinese one on a zh page, the English one on an en page, else what there is."""
    return (zh if lang == "zh" else en) or fallback or zh or en or ""


def _details(cv: dict, ps: PageState) -> str:
    t, lang, d = TEXT[ps.lang], ps.lang, ps.lot
    product = d.get("product") or {}
    names = cv.get("producer_names") or {}
    rows = [("product", escape(_in(lang, product.get("name_zh"), product.get("name_en"), cv.get("product")))),
            ("brand", escape(_in(lang, product.get("brand_zh"), product.get("brand_en")))),
            ("producer", escape(_in(lang, names.get("zh"), names.get("en"), cv.get("producer")))),
            ("lot", escape(cv.get("lot") or "")), ("produced", escape((d.get("production_date") or d.get("produced_at") or "")[:10])),
            ("expiry", escape(cv.get("expiry") or "")),
            ("scans", escape(str(cv["scan_count"])) if cv.get("product") else ""),
            ("first_scan", escape(local_time(cv.get("first_scanned_at"), lang))),
            ("serial", _grouped(cv.get("serial"), 5)), ("code", _grouped(cv.get("short_code"), 4))]
    body = "".join(f'<dt>{t[k]}</dt><dd id="d-{k}">{v}</dd>' for k, v in rows if v)
    image = ""
    if product.get("image_url") and product.get("image_sha256"):
        # A link, not an embed: the page loads nothing from elsewhere. The signed hash rides along for whoever checks the image.
        image = (f'<p><a href="{escape(product["image_url"])}" id="product-image" rel="noreferrer" '
                 f'data-sha256="{escape(product["image_sha256"])}">{escape(t["product_image"])}</a></p>')
    return f"<section><dl>{body}</dl>{image}</section>" + _certificates(ps) + _quality(ps) + _sellers(ps)


def _certificates(ps: PageState) -> str:
    t, lang = TEXT[ps.lang], ps.lang
    items = []
    for c in ps.lot.get("certificates") or ():
        status = c.get("status")
        if status is None:  # recorded by the producer, signed by no certification body
            note = f'（{t["cert_status_unknown"]}）' if lang == "zh" else f'({t["cert_status_unknown"]})'
            items.append(f'<li>{escape(c["cert_id"])} <span class="m">{escape(note)}</span></li>')
            continue
        word = t["cert_valid"] if status == "valid" else t[f"cert_{status}_word"]
        since = f" {local_time(c['status_at'], lang)[:10]}" if status != "valid" and c.get("status_at") else ""
        issuer = _in(lang, c.get("issuer_name_zh"), c.get("issuer_name_en"), c.get("issuer"))
        colon = "：" if lang == "zh" else ": "
        extra = "".join(f'<br><span class="m">{escape(t[k])}{colon}{escape(str(v))}</span>' for k, v in
                        (("cert_issuer", issuer), ("cert_scope", c.get("scope")), ("cert_until", c.get("valid_until"))) if v)
        items.append(f'<li data-status="{escape(status)}"><b>{escape(c["scheme"])} {escape(c["number"])}</b> '
                     f'<span class="st st-{escape(status)}">{escape(word)}{escape(since)}</span>{extra}</li>')
    return f'<section id="certs"><h2>{t["certificates"]}</h2><ul>{"".join(items)}</ul></section>' if items else ""


def _quality(ps: PageState) -> str:
    q = ps.lot.get("quality")
    if not q:
        return ""
    t, lang = TEXT[ps.lang], ps.lang
    meta = [(t["quality_standard"], q.get("standard")), (t["committed"], (q.get("committed_at") or "")[:10])]
    colon = "：" if lang == "zh" else ": "
    extra = "".join(f'<br><span class="m">{escape(k)}{colon}{escape(v)}</span>' for k, v in meta if v)
    return f'<section id="quality"><h2>{t["quality"]}</h2><p>{escape(_in(lang, q.get("text_zh"), q.get("text_en")))}{extra}</p></section>'


def _sellers(ps: PageState) -> str:
    sellers = (ps.lot.get("product") or {}).get("sellers") or []
    if not sellers:
        return ""
    t, lang = TEXT[ps.lang], ps.lang
    items = "".join(f"<li>{escape(_in(lang, s.get('name_zh'), s.get('name_en')))}"
                    f"{' · ' + escape(place(s['region'])[lang]) if s.get('region') and place(s['region']) else ''}</li>" for s in sellers)
    return f'<section id="sellers"><h2>{t["sellers"]}</h2><ul>{items}</ul></section>'


def _reasons(cv: dict, ps: PageState) -> str:
    if ps.display in GOOD or ps.display.startswith("pin_") or ps.display == "queried" or not cv.get("reason_codes"):
        return ""
    items = "".join(f"<li>{escape(reason_text(c, ps.lang))}</li>" for c in cv["reason_codes"])
    return f'<section id="reasons"><h2>{TEXT[ps.lang]["reasons"]}</h2><ul>{items}</ul></section>'


def _pin_section(cv: dict, ps: PageState) -> str:
    if not cv.get("pin_protected") or ps.display not in PIN_FORM:
        return ""
    t = TEXT[ps.lang]
    msg = f'<p class="msg" id="pinmsg" role="alert">{escape(ps.pin_error)}</p>' if ps.pin_error else ""
    return (
        f'<section id="pin"><h2>{t["pin_title"]}</h2><p class="m">{t["next_pin"]}</p>{msg}'
        f'<form method="post" action="{escape(ps.action)}"><input type="hidden" name="action" value="pin">'
        f'<input type="hidden" name="lang" value="{ps.lang}"><label for="pin-input">{t["pin_label"]}</label>'
        f'<input id="pin-input" name="pin" inputmode="numeric" autocomplete="one-time-code" maxlength="16" '
        f'placeholder="{t["pin_placeholder"]}"><button>{t["pin_button"]}</button></form></section>'
    )


def _trail(cv: dict, ps: PageState) -> str:
    t, lang = TEXT[ps.lang], ps.lang
    steps = list(cv.get("trail") or [])
    if ps.lot.get("recalled") and not any(s["event"] == "Recalled" for s in steps):
        steps.append({"event": "Recalled", "date": (ps.lot.get("recalled_at") or "")[:10] or None, "place": place(ps.lot.get("recalled_region"))})
    if not steps:
        return ""
    items = []
    for step in steps:
        where = step["place"][lang] if step.get("place") else ""
        cls = ' class="rc"' if step["event"] == "Recalled" else ""
        items.append(f"<li{cls}><b>{escape(t.get(step['event'], step['event']))}</b> {escape(step.get('date') or '')} {escape(where)}</li>")
    return f'<section><h2>{t["trail"]}</h2><ol id="trail">{"".join(items)}</ol></section>'


def _recall(ps: PageState) -> str:
    if ps.display != "recalled":
        return ""
    t, lang, d = TEXT[ps.lang], ps.lang, ps.lot
    hazard_text = _in(lang, d.get("hazard_zh"), d.get("hazard_en"), d.get("hazard"))
    hazard = f'<h2>{t["hazard"]}</h2><p id="hazard">{escape(hazard_text)}</p>' if hazard_text else ""
    remedy = ""
    if d.get("remedy") or d.get("remedy_text_zh") or d.get("remedy_text_en"):
        what = t.get("remedy_" + str(d.get("remedy")), "")
        words = _in(lang, d.get("remedy_text_zh"), d.get("remedy_text_en"))
        remedy = f'<h2>{t["remedy"]}</h2><p id="remedy">{escape(what)}{"：" if lang == "zh" and what and words else ": " if what and words else ""}{escape(words)}</p>'
    hotline = d.get("hotline") or ps.hotline  # the recall's own line, else the brand's
    brand = f"<p>{_tel(hotline, t['hotline_brand'])}</p>" if hotline else ""
    notice = ""
    if d.get("notice_url"):
        number = f' <span class="m">{escape(t["recall_no"])} {escape(d["recall_id"])}</span>' if d.get("recall_id") else ""
        notice = f'<p><a href="{escape(d["notice_url"])}" id="recall-notice" rel="noreferrer">{t["recall_notice"]}</a>{number}</p>'
    return (f'<section class="hz" id="recall">{hazard}{remedy}<h2>{t["next"]}</h2><p>{escape(t["next_recall"])}</p>{brand}'
            f'<p>{_tel(HOTLINE, t["hotline_12315"])}</p>{notice}<p><a href="{RECALL_SITE}" id="recall-site">{t["recall_site"]}</a></p></section>')


def _next(cv: dict, ps: PageState) -> str:
    if ps.display == "recalled":
        return ""
    t = TEXT[ps.lang]
    text = t["next_ok"] if ps.display in GOOD or ps.display in ("pin_needed", "pin_wrong", "cert_revoked", "cert_suspended") else t["next_bad"]
    brand = f"<p>{_tel(ps.hotline, t['hotline_brand'])}</p>" if ps.hotline else ""
    report_link = f'{ps.action}{"&" if "?" in ps.action else "?"}report=1#report'
    report = "" if ps.report else f'<a class="b r" id="report-link" href="{escape(report_link)}">{t["report"]}</a>'
    locate = ""
    if not ps.report and cv.get("product"):
        locate = f'<a class="b" id="locate-link" href="{escape(_with(ps.action, locate="1"))}">{t["locate"]}</a>'
    return (f'<section id="next"><h2>{t["next"]}</h2><p>{escape(text)}</p>{brand}<p>{_tel(HOTLINE, t["hotline_12315"])}</p>'
            f"{locate}{report}</section>")


def _with(url: str, **params: str) -> str:
    return f'{url}{"&" if "?" in url else "?"}{urlencode(params)}'


def _located(ps: PageState) -> str:
    if ps.located not in ("in", "out", "bad"):
        return ""
    key = "locate_bad" if ps.located == "bad" else "located_" + ps.located
    return f'<section id="located"><p class="msg" role="status">{escape(TEXT[ps.lang][key])}</p></section>'


def _report(ps: PageState) -> str:
    if not ps.report:
        return ""
    t, rep = TEXT[ps.lang], ps.report
    if rep["step"] == "done":
        return f'<section id="report"><p class="msg" id="reported" role="status">{escape(t["reported"].format(n=rep["public_id"]))}</p></section>'
    values = rep.get("values") or {}
    if rep["step"] == "confirm":
        rows = "".join(f"<dt>{t['report_' + k]}</dt><dd>{escape(values.get(k) or '—')}</dd>" for k in ("place", "price", "phone"))
        hidden = "".join(f'<input type="hidden" name="{k}" value="{escape(values.get(k) or "")}">' for k in ("place", "price", "phone"))
        edit = f'{ps.action}{"&" if "?" in ps.action else "?"}{urlencode({"report": "1", **{k: values.get(k) or "" for k in ("place", "price", "phone")}})}#report'
        err = f'<p class="msg" id="report-error" role="alert">{escape(rep["error"])}</p>' if rep.get("error") else ""
        photo = (f'<label for="r-photo">{t["report_photo"]}</label>'
                 '<input id="r-photo" name="photo" type="file" accept="image/jpeg,image/png">')
        return (f'<section id="report"><h2>{t["report_confirm_title"]}</h2>{err}<dl>{rows}</dl>'
                f'<form method="post" action="{escape(ps.action)}" enctype="multipart/form-data"><input type="hidden" name="action" value="report">'
                f'<input type="hidden" name="lang" value="{ps.lang}">{hidden}{photo}<button class="r">{t["report_confirm"]}</button></form>'
                f'<p><a href="{escape(edit)}" id="report-edit">{t["report_edit"]}</a></p><p class="m">{t["report_help"]}</p></section>')
    err = f'<p class="msg" id="report-error" role="alert">{escape(rep["error"])}</p>' if rep.get("error") else ""
    base = ps.action.split("?")[0]
    fields = (("place", "text", 'maxlength="80" required'), ("price", "text", 'inputmode="decimal" maxlength="12" required'),
              ("phone", "tel", 'inputmode="tel" maxlength="20" autocomplete="tel"'))
    inputs = "".join(f'<label for="r-{k}">{t["report_" + k]}</label><input id="r-{k}" name="{k}" type="{typ}" {extra} '
                     f'value="{escape(values.get(k) or "")}">' for k, typ, extra in fields)
    return (f'<section id="report"><h2>{t["report_title"]}</h2>{err}<form method="get" action="{escape(base)}">'
            f'<input type="hidden" name="lang" value="{ps.lang}"><input type="hidden" name="report" value="review">{inputs}'
            f'<button>{t["report_next"]}</button></form><p class="m">{t["report_help"]}</p></section>')


def result_page(cv: dict, ps: PageState) -> str:
    """The verification page of one label (``cv`` from :func:`traceledger.shopper.wording.consumer_view`)."""
    banner, head = verdict_banner(cv, ps)
    parts = [banner, _located(ps), _recall(ps), _reasons(cv, ps), _pin_section(cv, ps), _details(cv, ps), _trail(cv, ps), _next(cv, ps),
             _report(ps)]
    return _page(ps.lang, f'{head} · {TEXT[ps.lang]["title"]}', ps.other_url, "".join(parts))


# The locate page's only script: constant, so its hash is the page's whole script policy. The page's
# words ride in data- attributes; the position goes as two numbers in a plain form post (no fetch).
LOCATE_SCRIPT = (
    'document.getElementById("locate-button").addEventListener("click",function(){'
    'var m=document.getElementById("locate-msg"),f=document.getElementById("locate-form");'
    'if(!navigator.geolocation){m.textContent=m.dataset.none;return}'
    'm.textContent=m.dataset.wait;'
    'navigator.geolocation.getCurrentPosition(function(p){f.lat.value=p.coords.latitude.toFixed(4);'
    'f.lon.value=p.coords.longitude.toFixed(4);f.submit()},'
    'function(){m.textContent=m.dataset.denied},{timeout:15000,maximumAge:60000})});'
)
LOCATE_CSP = (
    "default-src 'none'; script-src 'sha256-" + base64.b64encode(hashlib.sha256(LOCATE_SCRIPT.encode()).digest()).decode() + "'; "
    "style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def locate_page(lang: str, other_url: str, action: str, back_url: str) -> str:
    """The consent page of "check with my location": the browser asks, then the position is posted to ``action``."""
    t = TEXT[lang]
    msg = (f'<p class="msg" id="locate-msg" role="status" data-wait="{escape(t["locate_wait"])}" '
           f'data-denied="{escape(t["locate_denied"])}" data-none="{escape(t["locate_none"])}"></p>')
    body = (
        f'<section id="locate"><h2>{t["locate_title"]}</h2><p>{escape(t["locate_help"])}</p>'
        f'<form method="post" action="{escape(action)}" id="locate-form"><input type="hidden" name="action" value="locate">'
        f'<input type="hidden" name="lang" value="{lang}"><input type="hidden" name="lat" value=""><input type="hidden" name="lon" value="">'
        f'<button type="button" id="locate-button">{t["locate_button"]}</button></form>{msg}'
        f'<noscript><p class="msg">{escape(t["locate_noscript"])}</p></noscript>'
        f'<p><a href="{escape(back_url)}" id="locate-back">{t["locate_back"]}</a></p></section><script>{LOCATE_SCRIPT}</script>'
    )
    return _page(lang, t["locate_title"], other_url, body)


def entry_page(lang: str, other_url: str, *, error: str | None = None, code: str = "") -> str:
    """The manual-entry form on ``/`` (with an error line, in ``lang``, when the last code was unreadable)."""
    t = TEXT[lang]
    msg = f'<p class="msg" id="error" role="alert">{escape(error)}</p>' if error else ""
    body = (
        f'<section><h2>{t["enter_title"]}</h2>{msg}<form method="get" action="/">'
        f'<input type="hidden" name="lang" value="{lang}"><label for="code">{t["enter_label"]}</label>'
        f'<input id="code" name="code" value="{escape(code[:80])}" autocomplete="off" autocapitalize="characters" '
        f'aria-describedby="code-help" placeholder="{t["enter_help"]}">'
        f'<button>{t["enter_button"]}</button></form><p class="m" id="code-help">{t["enter_help"]}</p></section>'
    )
    return _page(lang, t["title"], other_url, body)


def _grouped(code: str | None, size: int) -> str:
    """A long code in groups that never break inside (a line may break only between groups)."""
    if not code:
        return ""
    return " ".join(f'<span class="g">{escape(code[i:i + size])}</span>' for i in range(0, len(code), size))
