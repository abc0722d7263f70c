"""The consumer's HTML pages: one small self-contained document each, no external assets.

Plain string building with :func:`html.escape` on every value (no template
engine: two pages do not justify a dependency). Inline CSS, inline SVG icons,
system fonts, no JavaScript: it works on a slow phone and prints as it shows.
"""

from __future__ import annotations

from html import escape

from traceledger.shopper.wording import HOTLINE, TEXT, local_time

COLOURS = {
    "genuine": "#1a7f37", "pin_ok": "#1a7f37", "queried": "#b35900", "pin_used": "#b35900", "suspicious": "#b35900",
    "unknown": "#59636e", "recalled": "#c4320a", "counterfeit": "#b0181b",
}
_ICON_PATHS = {
    "ok": '<path d="M14 25l7 7 13-15"/>',
    "warn": '<path d="M24 13v14M24 33v2"/>',
    "ask": '<path d="M19 18a5 5 0 1 1 7 5c-2 1-2 2-2 5M24 33v2"/>',
    "bad": '<path d="M17 17l14 14M31 17L17 31"/>',
}
_ICON_OF = {"genuine": "ok", "pin_ok": "ok", "queried": "warn", "pin_used": "warn", "suspicious": "warn", "unknown": "ask", "recalled": "bad", "counterfeit": "bad"}

CSS = (
    "*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,'PingFang SC','Microsoft YaHei',"
    "'WenQuanYi Micro Hei',sans-serif;color:#1f2328;background:#f6f8fa}"
    "header{display:flex;justify-content:space-between;padding:.6rem 1rem;background:#fff;border-bottom:1px solid #d0d7de}"
    "main{max-width:32rem;margin:0 auto;padding:1rem}a{color:#0969da}"
    ".v{color:#fff;border-radius:12px;padding:1.2rem;text-align:center}.v h1{margin:.3rem 0;font-size:1.7rem;line-height:1.25}"
    ".v p{margin:0}.v svg{width:64px;height:64px}"
    "section{background:#fff;border:1px solid #d0d7de;border-radius:12px;padding:.8rem 1rem;margin-top:1rem}"
    "h2{font-size:1.05rem;margin:0 0 .4rem}dl{display:grid;grid-template-columns:auto 1fr;gap:.2rem .8rem;margin:0}"
    "dt{color:#59636e}dd{margin:0;overflow-wrap:anywhere}ol{margin:0;padding-left:1.2rem}"
    "input,button{font:inherit;padding:.6rem;border-radius:8px;border:1px solid #8c959f;width:100%}"
    "button{background:#0969da;color:#fff;border:0;margin-top:.5rem}.r{background:#b0181b}"
    ".msg{font-weight:600}.m{color:#59636e;font-size:.9rem}"
)


def _page(lang: str, title: str, other_url: str, body: str) -> str:
    t = TEXT[lang]
    html_lang = "zh-CN" if lang == "zh" else "en"
    return (
        f'<!doctype html><html lang="{html_lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f'<header><a href="/?lang={lang}">{escape(t["title"])}</a><a href="{escape(other_url)}" hreflang="{"en" if lang == "zh" else "zh"}" id="lang">{escape(t["other_lang"])}</a></header>'
        f"<main>{body}</main></body></html>"
    )


def _icon(display: str) -> str:
    return (
        '<svg viewBox="0 0 48 48" aria-hidden="true" fill="none" stroke="#fff" stroke-width="4" stroke-linecap="round">'
        f'<circle cx="24" cy="24" r="21" stroke-width="3"/>{_ICON_PATHS[_ICON_OF[display]]}</svg>'
    )


def result_page(cv: dict, display: str, lang: str, other_url: str, *, pin: dict | None = None, pin_error: str | None = None, reported: int | None = None) -> str:
    """The verification page of one label (``cv`` from :func:`consumer.consumer_view`)."""
    t = TEXT[lang]
    when = pin.get("pin_first_verified_at") if pin and display in ("pin_ok", "pin_used") else cv.get("first_scanned_at")
    vals = {"n": cv.get("scan_count", 0), "t": local_time(when, lang)}
    head = t[display].format(**vals)
    sub = t[display + "_sub"].format(**vals)
    parts = [
        f'<div class="v {display}" id="verdict" data-verdict="{display}" style="background:{COLOURS[display]}">'
        f"{_icon(display)}<h1>{escape(head)}</h1><p>{escape(sub)}</p></div>"
    ]
    if cv.get("reasons") and display not in ("genuine", "pin_ok", "queried", "pin_used"):
        parts.append(f'<section><h2>{t["reasons"]}</h2><ul>' + "".join(f"<li>{escape(r)}</li>" for r in cv["reasons"]) + "</ul></section>")
    rows = [("product", cv.get("product")), ("producer", cv.get("producer")), ("lot", cv.get("lot")), ("expiry", cv.get("expiry")),
            ("scans", cv.get("scan_count")), ("first_scan", local_time(cv.get("first_scanned_at"), lang) or None),
            ("serial", cv.get("serial")), ("code", _grouped(cv.get("short_code")))]
    parts.append("<section><dl>" + "".join(f"<dt>{t[k]}</dt><dd>{escape(str(v))}</dd>" for k, v in rows if v not in (None, "")) + "</dl></section>")
    if cv.get("pin_protected"):
        msg = ""
        if pin_error:
            msg = pin_error
        elif pin and pin.get("pin_result") == "wrong":
            msg = t["pin_wrong"].format(n=pin.get("attempts_left", 0))
        elif pin and pin.get("pin_result") == "limited":
            msg = t["pin_limited"].format(m=max(1, (pin.get("retry_after") or 60) // 60))
        parts.append(
            f'<section><h2>{t["pin_title"]}</h2>'
            + (f'<p class="msg" id="pinmsg">{escape(msg)}</p>' if msg else "")
            + f'<form method="post"><input type="hidden" name="action" value="pin"><input type="hidden" name="lang" value="{lang}">'
            f'<input name="pin" inputmode="numeric" autocomplete="off" maxlength="16" placeholder="{t["pin_placeholder"]}" aria-label="PIN">'
            f'<button>{t["pin_button"]}</button></form></section>'
        )
    if cv.get("trail"):
        items = []
        for step in cv["trail"]:
            where = step["place"][lang] if step.get("place") else ""
            items.append(f"<li><b>{escape(t.get(step['event'], step['event']))}</b> {escape(step.get('date') or '')} {escape(where)}</li>")
        parts.append(f'<section><h2>{t["trail"]}</h2><ol id="trail">{"".join(items)}</ol></section>')
    bad = display not in ("genuine", "pin_ok")
    nxt = t["next_bad"].format(h=HOTLINE) if bad else t["next_ok"] + " " + t["next_bad"].format(h=HOTLINE)
    report = (
        f'<p class="msg" id="reported">{escape(t["reported"].format(n=reported))}</p>' if reported is not None else
        f'<form method="post"><input type="hidden" name="action" value="report"><input type="hidden" name="lang" value="{lang}">'
        f'<button class="r">{t["report"]}</button></form>'
    )
    parts.append(f'<section><h2>{t["next"]}</h2><p>{escape(nxt)}</p>{report}</section>')
    return _page(lang, f'{head} · {t["title"]}', other_url, "".join(parts))


def entry_page(lang: str, other_url: str, *, error: str | None = None, code: str = "") -> str:
    """The manual-entry form on ``/`` (with an error line when the last code was unreadable)."""
    t = TEXT[lang]
    msg = f'<p class="msg" id="error">{escape(t["bad_code"].format(d=error))}</p>' if error else ""
    body = (
        f'<section><h2>{t["enter_title"]}</h2>{msg}<form method="get" action="/">'
        f'<input type="hidden" name="lang" value="{lang}">'
        f'<input name="code" value="{escape(code[:80])}" autocomplete="off" autocapitalize="characters" aria-label="code" placeholder="{t["enter_help"]}">'
        f'<button>{t["enter_button"]}</button></form><p class="m">{t["enter_help"]}</p></section>'
    )
    return _page(lang, t["title"], other_url, body)


def _grouped(code: str | None) -> str | None:
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4)) if code else None
