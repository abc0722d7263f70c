"""The consumer page in real headless Chromium (Debian's), driven by Playwright: what a person sees, in zh and en.

Every state of the page is opened on a phone-sized screen (390×844 @2x) and
photographed to test-artifacts/consumer/<state>-<lang>.png on every run; the
assertions are on what a person sees: the verdict's words and colour, which
forms are there, the language of every visible word, that a reload after a form
never resubmits it, and that one's own second look never warns while a second
person's does. One browser and one world for the whole module.
Skipped when chromium or Playwright is missing (``ops/browser.sh`` installs chromium).
"""

from __future__ import annotations

import io
import re
import shutil

import psycopg
import pytest
from PIL import Image

from ledger import shortcode
from tests.conftest import ARTIFACTS
from tests.consumer_world import (
    BRAND_HOTLINE,
    CCC,
    PRODUCT_EN,
    PRODUCT_ZH,
    V4_CONSUMER,
    ZH_PRODUCT,
    world,  # noqa: F401  (module-scoped fixture)
)

playwright_api = pytest.importorskip("playwright.sync_api")
if not shutil.which("chromium"):
    pytest.skip("chromium is not installed (bash ops/browser.sh)", allow_module_level=True)

SHOTS = ARTIFACTS / "consumer"
GREEN, AMBER, BLUE, RED, RECALL, GREY = "rgb(26, 127, 55)", "rgb(154, 77, 0)", "rgb(49, 80, 122)", "rgb(176, 24, 27)", "rgb(196, 50, 10)", "rgb(89, 99, 110)"
# Latin words allowed on a Chinese page outside the ledger's own data (names, codes): none but these.
ZH_ALLOWED_LATIN = {"English", "CCC"}


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--disable-gpu", "--disable-quic"])
        yield b
        b.close()


def new_phone(browser, lang: str = "zh", address: str | None = None):
    """A fresh phone (own cookies: a new consumer); ``address``: the client address the trusted proxy vouches for."""
    headers = {"x-forwarded-for": address} if address else {}
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True,
                              locale="zh-CN" if lang == "zh" else "en-US", extra_http_headers=headers)
    return ctx.new_page()


@pytest.fixture
def phone(browser):
    page = new_phone(browser)
    yield page
    page.context.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def open_label(page, w, serial: str, lang: str = "zh", extra: str = ""):
    resp = page.goto(f"{w.url}/01/{w.gtin}/21/{serial}?lang={lang}{extra}")
    assert resp.status == 200
    return page.locator("#verdict")


def verdict(page) -> tuple[str, str, str]:
    """(state, words, background colour) of the big verdict."""
    v = page.locator("#verdict")
    colour = v.evaluate("e => getComputedStyle(e).backgroundColor")
    return v.get_attribute("data-verdict"), v.inner_text().replace("\u00a0", " "), colour


def assert_accessible(page) -> None:
    """Every visible input has a <label>; every aria-label is in the page's language."""
    unlabelled = page.evaluate("[...document.querySelectorAll('input:not([type=hidden])')].filter(i => !i.labels.length).length")
    assert unlabelled == 0
    if page.locator("html").get_attribute("lang") == "zh-CN":
        for label in page.evaluate("[...document.querySelectorAll('[aria-label]')].map(e => e.getAttribute('aria-label'))"):
            assert re.search(r"[\u4e00-\u9fff]", label), label


def latin_words_on_zh_page(page) -> set[str]:
    """Latin words a person reads on a Chinese page, leaving out the ledger's data (names, codes) and the language switch."""
    text = page.evaluate(
        "(() => { const c = document.body.cloneNode(true);"
        " c.querySelectorAll('dd, #lang, #hazard, #certs li, #trail, script, noscript').forEach(e => e.remove()); return c.innerText; })()")
    return set(re.findall(r"[A-Za-z]{3,}", text)) - ZH_ALLOWED_LATIN


def press(page, selector: str) -> None:
    with page.expect_navigation():
        page.click(selector)


def enter_pin(page, pin: str) -> None:
    page.fill("#pin-input", pin)
    press(page, "#pin button")


def inbox(w, sql: str, *params):
    with psycopg.connect(w.settings.pg_conninfo, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else None


# ---------------------------------------------------------------- plain labels and honest counts


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_own_second_look_never_warns_a_second_person_does(browser, world, lang):
    serial = world.labels["fresh0" if lang == "zh" else "fresh1"]
    me = new_phone(browser, lang, "203.0.113.10")
    open_label(me, world, serial, lang)
    state, words, colour = verdict(me)
    assert state == "genuine" and colour == GREEN and ("正品" if lang == "zh" else "Genuine") in words
    shot(me, f"genuine-{lang}")
    me.reload()
    assert verdict(me)[0] == "genuine"  # a reload is the same look
    camera = new_phone(browser, lang, "203.0.113.10")  # the same phone's other app (own cookies, same network)
    open_label(camera, world, serial, lang)
    assert verdict(camera)[0] == "genuine"  # one person, not two
    camera.context.close()
    # Time passes (the phone's own first look is two minutes old), the same phone looks again, from another network.
    inbox(world, "UPDATE scan_inbox SET occurred_at = occurred_at - interval '2 minutes' WHERE serial = %s", serial)
    again = new_phone(browser, lang, "198.51.100.200")
    again.context.add_cookies(me.context.cookies())
    open_label(again, world, serial, lang)
    state, words, colour = verdict(again)
    assert state == "seen" and colour == GREEN and ("您已查询过" if lang == "zh" else "you checked before") in words
    assert "注意" not in words and "Caution" not in words
    shot(again, f"seen-{lang}")
    other = new_phone(browser, lang, "198.51.100.77")  # somebody else, elsewhere
    open_label(other, world, serial, lang)
    state, words, colour = verdict(other)
    assert state == "queried" and colour == AMBER
    # Mine (one look: the same phone within half an hour is the same look) and theirs.
    assert ("此码已被查询 2 次" if lang == "zh" else "queried 2 times") in words
    shot(other, f"queried-{lang}")
    for p in (me, again, other):
        p.context.close()


@pytest.mark.parametrize("purpose, state, colour, zh, en", [
    ("counterfeit", "counterfeit", RED, "假冒商品", "Counterfeit"),
    ("certified", "genuine", GREEN, "正品", "Genuine"),
])
def test_label_page_in_both_languages(phone, world, purpose, state, colour, zh, en):
    open_label(phone, world, world.labels[purpose])
    got, words, got_colour = verdict(phone)
    assert got == state and got_colour == colour and zh in words
    assert phone.locator("html").get_attribute("lang") == "zh-CN"
    assert latin_words_on_zh_page(phone) == set()
    assert_accessible(phone)
    if purpose == "certified":
        assert ZH_PRODUCT in phone.locator("#d-product").inner_text()
        assert CCC in phone.locator("#certs").inner_text() and "认证证书" in phone.locator("#certs").inner_text()
        assert phone.locator("#d-produced").inner_text()[:2] == "20"
    else:
        assert "监管部门已认定" in phone.locator("#reasons").inner_text()
    shot(phone, f"{purpose}-zh")
    phone.click("#lang")
    phone.wait_for_load_state()
    got, words, _ = verdict(phone)
    assert phone.locator("html").get_attribute("lang") == "en" and got == state and en in words
    assert "Issued" in phone.locator("#trail").inner_text()
    shot(phone, f"{purpose}-en")


def test_serial_and_headline_never_break_inside_a_group(phone, world):
    open_label(phone, world, world.labels["certified"])
    groups = phone.evaluate("[...document.querySelectorAll('#d-serial .g, #d-code .g')].map(g => g.getClientRects().length)")
    assert groups and set(groups) == {1}


# ---------------------------------------------------------------- recall, unknown, suspicious


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_recall_is_its_own_state(phone, world, lang):
    open_label(phone, world, world.labels["recalled"], lang)
    state, words, colour = verdict(phone)
    assert state == "recalled" and colour == RECALL
    assert ("立即停止使用" if lang == "zh" else "stop using it now") in words
    recall = phone.locator("#recall")
    assert "cells overheat" in recall.inner_text()  # the hazard recorded on the ledger
    assert phone.locator("#recall a[href='tel:12315']").count() == 1
    assert phone.locator("#recall-site").get_attribute("href").startswith("https://www.recall.org.cn")
    assert ("召回" if lang == "zh" else "Recalled") in phone.locator("#trail li.rc").inner_text()
    assert phone.locator("#report-link").count() == 0  # its next step is the recall, not "report a fake"
    if lang == "zh":
        assert latin_words_on_zh_page(phone) == set()
    shot(phone, f"recalled-{lang}")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_unknown_codes(phone, world, lang):
    open_label(phone, world, "ZZZZZZZZZZZZZZZZZZZZ", lang)
    state, words, colour = verdict(phone)
    assert state == "unknown_scanned" and colour == RED
    assert ("未查到 · 谨防假冒" if lang == "zh" else "Not found · beware of fakes") in words
    assert phone.locator("#next a[href='tel:12315']").count() == 1
    if lang == "zh":
        assert "未登记" in phone.locator("#reasons").inner_text() or "没有登记" in phone.locator("#reasons").inner_text()
        assert latin_words_on_zh_page(phone) == set()
    shot(phone, f"unknown-scanned-{lang}")
    phone.goto(f"{world.url}/?lang={lang}&code=0000+0000+0000+0000+000Z")  # typed by hand: a typo is possible
    state, words, colour = verdict(phone)
    assert state == "unknown" and colour == GREY
    shot(phone, f"unknown-typed-{lang}")


def test_suspicious_lot(phone, world):
    open_label(phone, world, world.labels["genuine4"], "zh", "&10=WRONG")
    state, _, colour = verdict(phone)
    assert state == "suspicious" and colour == AMBER
    assert "批次与登记的批次不符" in phone.locator("#reasons").inner_text()
    assert latin_words_on_zh_page(phone) == set()
    shot(phone, "suspicious-zh")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_manual_entry(phone, world, lang):
    phone.goto(f"{world.url}/?lang={lang}")
    assert_accessible(phone)
    shot(phone, f"entry-{lang}")
    code = shortcode.to_short_code(world.labels["genuine1"])
    phone.fill("#code", shortcode.group(code[:-1] + str((int(code[-1]) + 1) % 10)))
    press(phone, "form button")
    error = phone.locator("#error").inner_text()
    assert ("校验位" in error) if lang == "zh" else ("check digit" in error)
    if lang == "zh":
        assert latin_words_on_zh_page(phone) == set()
    shot(phone, f"entry-error-{lang}")
    phone.fill("#code", shortcode.group(code))
    press(phone, "form button")
    assert f"/21/{world.labels['genuine1']}" in phone.url


# ---------------------------------------------------------------- PIN labels


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_pin_flow(browser, world, lang):
    serial = world.labels["pin0" if lang == "zh" else "pin1"]
    right = world.pins[serial]
    wrong = "00000000" if right != "00000000" else "11111111"
    me = new_phone(browser, lang, "203.0.113.20")
    open_label(me, world, serial, lang)
    state, words, colour = verdict(me)
    assert state == "pin_needed" and colour == BLUE and "正品" not in words and "Genuine" not in words
    assert ("刮开涂层输入防伪码完成验证" if lang == "zh" else "Scratch the coating") in words
    placeholder = me.locator("#pin-input").get_attribute("placeholder")
    assert ("6–12" if lang == "zh" else "6-12") in placeholder and placeholder.split("位")[0] in me.locator("#pin label, label[for=pin-input]").inner_text()
    assert_accessible(me)
    shot(me, f"pin-needed-{lang}")
    enter_pin(me, "12")  # too short: the error says what the placeholder says
    assert ("6–12" if lang == "zh" else "6-12") in me.locator("#pinmsg").inner_text()
    enter_pin(me, wrong)
    state, words, colour = verdict(me)
    assert state == "pin_wrong" and colour == AMBER and ("还可尝试 4 次" if lang == "zh" else "4 tries left") in words
    assert me.locator("#pin-input").count() == 1
    shot(me, f"pin-wrong-{lang}")
    enter_pin(me, right)
    state, words, colour = verdict(me)
    assert state == "pin_ok" and colour == GREEN and ("防伪码验证通过" if lang == "zh" else "PIN verified") in words
    assert me.locator("#pin-input").count() == 0  # the form is gone after success
    shot(me, f"pin-ok-{lang}")
    # A reload after the right PIN: a GET (no "resubmit the form?"), still verified, nothing checked again.
    checks = inbox(world, "SELECT count(*) FROM pin_attempts WHERE serial = %s", serial)[0][0]
    reload = me.reload()
    assert reload.request.method == "GET" and verdict(me)[0] == "pin_ok"
    assert inbox(world, "SELECT count(*) FROM pin_attempts WHERE serial = %s", serial)[0][0] == checks
    # Much later, the same phone looks again: its own verification, never a warning.
    inbox(world, "UPDATE scan_inbox SET occurred_at = occurred_at - interval '1 day' WHERE serial = %s", serial)
    me.reload()
    state, words, colour = verdict(me)
    assert state == "pin_seen" and colour == GREEN and ("您已验证过" if lang == "zh" else "you verified") in words
    shot(me, f"pin-seen-{lang}")
    # Someone else with the same code and PIN (a copy): no verdict before the PIN, the warning after it.
    other = new_phone(browser, lang, "198.51.100.88")
    open_label(other, world, serial, lang)
    assert verdict(other)[0] == "pin_needed"
    enter_pin(other, right)
    state, words, colour = verdict(other)
    assert state == "pin_used" and colour == AMBER and other.locator("#pin-input").count() == 0
    assert ("此防伪码已被验证过" if lang == "zh" else "already verified") in words
    assert ("通过网页" if lang == "zh" else "by web page") in words  # roughly where: the channel (and region when known)
    if lang == "zh":
        assert latin_words_on_zh_page(other) == set()
    shot(other, f"pin-used-{lang}")
    for p in (me, other):
        p.context.close()


def test_pin_tries_run_out(browser, world):
    serial = world.labels["pin2"]
    wrong = "00000000" if world.pins[serial] != "00000000" else "11111111"
    me = new_phone(browser, "zh", "203.0.113.30")
    open_label(me, world, serial)
    for _ in range(6):
        if me.locator("#pin-input").count() == 0:
            break
        enter_pin(me, wrong)
    state, words, colour = verdict(me)
    assert state == "pin_limited" and colour == AMBER and "错误次数过多" in words and "分钟后再试" in words
    shot(me, "pin-limited-zh")
    me.context.close()


# ---------------------------------------------------------------- reports


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_report_with_confirmation(browser, world, lang):
    serial = world.labels["counterfeit"]
    me = new_phone(browser, lang, "203.0.113.40" if lang == "zh" else "203.0.113.41")
    open_label(me, world, serial, lang)
    press(me, "#report-link")
    assert_accessible(me)
    shot(me, f"report-form-{lang}")
    me.fill("#r-place", "夜市摊位" if lang == "zh" else "Night market stall")
    me.fill("#r-price", "abc")
    press(me, "#report button")
    assert me.locator("#report-error").count() == 1
    me.fill("#r-price", "35")
    me.fill("#r-phone", "13800001111")
    press(me, "#report button")
    assert ("请确认举报内容" if lang == "zh" else "Please confirm") in me.locator("#report").inner_text()
    assert_accessible(me)  # the photo's file input too
    if lang == "zh":  # a photo of the purchase, chosen on the phone
        photo = io.BytesIO()
        Image.new("RGB", (120, 90), (240, 200, 40)).save(photo, "PNG")
        me.set_input_files("#r-photo", files=[{"name": "小票.png", "mimeType": "image/png", "buffer": photo.getvalue()}])
    shot(me, f"report-confirm-{lang}")
    before = inbox(world, "SELECT count(*) FROM consumer_reports WHERE serial = %s", serial)[0][0]
    press(me, "#report button")
    done = me.locator("#reported").inner_text()
    number = re.search(r"R-[0-9A-Z]{10}", done).group(0)
    photo_hash = inbox(world, "SELECT photo_sha256 FROM consumer_report_details WHERE public_id = %s", number)[0][0]
    assert (photo_hash is not None) == (lang == "zh")
    shot(me, f"report-done-{lang}")
    me.reload()  # no resubmission: the same confirmation, no second report
    assert number in me.locator("#reported").inner_text()
    assert inbox(world, "SELECT count(*) FROM consumer_reports WHERE serial = %s", serial)[0][0] == before + 1
    # The phone, place and price are for regulators: not on the ledger's scan inbox entry (what gets signed).
    row = inbox(world, "SELECT reason, session FROM scan_inbox WHERE serial = %s AND kind = 'report' ORDER BY id DESC LIMIT 1", serial)[0]
    assert "13800001111" not in str(row) and "35" not in (row[0] or "")
    me.context.close()


# ---------------------------------------------------------------- check with my location (#15 item 3)


def located_phone(browser, lang: str, address: str, where: tuple[float, float] | None):
    """A phone whose browser grants the page its position ``where``; ``None``: the person refuses."""
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True,
                              locale="zh-CN" if lang == "zh" else "en-US", extra_http_headers={"x-forwarded-for": address},
                              geolocation={"latitude": where[0], "longitude": where[1]} if where else None,
                              permissions=["geolocation"] if where else [])
    return ctx.new_page()


def claims(w, serial: str) -> list[tuple]:
    return inbox(w, "SELECT region, lat, lon, place_source FROM scan_inbox WHERE serial = %s AND lat IS NOT NULL ORDER BY id", serial)


def test_check_with_my_location_asks_first_and_records_a_claim(browser, world):
    """Script-free until the shopper taps; the position is a claim, believed only inside the server's place of the client."""
    serial = world.labels["genuine2"]
    # 10.44.3.x is Shenzhen (4403) in the local region table; the phone says it is in Shenzhen too.
    me = located_phone(browser, "zh", "10.44.3.9", (22.5431, 114.0579))
    open_label(me, world, serial, "zh")
    assert me.locator("script").count() == 0
    press(me, "#locate-link")
    assert me.locator("script").count() == 1 and "允许" in me.locator("#locate").inner_text()
    assert latin_words_on_zh_page(me) == set()
    shot(me, "locate-zh")
    press(me, "#locate-button")
    assert "一致" in me.locator("#located").inner_text() and me.locator("script").count() == 0
    assert verdict(me)[0] in ("genuine", "seen")  # recording the position is my own look, never a warning
    shot(me, "located-in-zh")
    assert claims(world, serial) == [("4403", 22.54, 114.06, "address")]  # rounded to ~1 km; the place is the server's
    me.context.close()
    # Someone in Shenzhen's network whose browser says Beijing: kept as a claim, not taken as the place.
    far = located_phone(browser, "en", "10.44.3.10", (39.9042, 116.4074))
    open_label(far, world, serial, "en", "&locate=1")
    press(far, "#locate-button")
    assert "claim only" in far.locator("#located").inner_text()
    shot(far, "located-out-en")
    assert claims(world, serial)[-1] == ("4403", 39.9, 116.41, "address")
    far.context.close()
    # A person who refuses: told so, nothing recorded, the result unchanged.
    no = located_phone(browser, "zh", "10.44.3.11", None)
    open_label(no, world, serial, "zh", "&locate=1")
    no.click("#locate-button")
    no.wait_for_function("document.getElementById('locate-msg').textContent.includes('未获得位置权限')", timeout=20000)
    shot(no, "locate-denied-zh")
    assert len(claims(world, serial)) == 2
    no.context.close()


# ---------------------------------------------------------------- event.v4: certificates with status, names, recall remedy


@pytest.mark.skipif(not V4_CONSUMER, reason="event.v4 step B is not in the schema yet")
def test_certificates_names_and_recall_remedy_in_both_languages(phone, world):
    """What a person sees of the signed trust details, and how a revoked certificate changes the verdict."""
    def open_v4(purpose: str, lang: str):
        assert phone.goto(f"{world.url}/01/{world.gtin_v4}/21/{world.labels[purpose]}?lang={lang}").status == 200

    open_v4("v4_certified", "zh")
    state, words, colour = verdict(phone)
    assert state == "genuine" and colour == GREEN
    assert phone.locator("#d-product").inner_text() == PRODUCT_ZH and "有效" in phone.locator("#certs").inner_text()
    assert phone.locator("#certs .st-valid").evaluate("e => getComputedStyle(e).color") == GREEN
    assert "假一赔十" in phone.locator("#quality").inner_text() and "艾克美京东自营旗舰店" in phone.locator("#sellers").inner_text()
    assert phone.locator(f'a[href="tel:{BRAND_HOTLINE.replace("-", "")}"]').count() == 1
    assert latin_words_on_zh_page(phone) == set() and phone.locator("script").count() == 0
    assert_accessible(phone)
    shot(phone, "certified-v4-zh")
    open_v4("v4_certified", "en")
    assert phone.locator("#d-product").inner_text() == PRODUCT_EN and "valid" in phone.locator("#certs").inner_text()
    shot(phone, "certified-v4-en")
    for lang, words_seen in (("zh", "证书已被撤销"), ("en", "certificate was revoked")):
        open_v4("v4_revoked", lang)
        state, words, colour = verdict(phone)
        assert state == "cert_revoked" and colour == AMBER and words_seen in words.replace("\u00a0", " ").replace(" 证书", "证书")
        assert phone.locator('#certs li[data-status="revoked"]').count() == 1
        shot(phone, f"cert-revoked-{lang}")
    for lang, hazard in (("zh", "充电时电芯可能过热起火"), ("en", "cells may overheat")):
        open_v4("v4_recalled", lang)
        state, _, colour = verdict(phone)
        assert state == "recalled" and colour == RECALL and hazard in phone.locator("#hazard").inner_text()
        assert phone.locator("#remedy").count() == 1 and phone.locator("#recall-notice").count() == 1
        shot(phone, f"recalled-remedy-{lang}")
