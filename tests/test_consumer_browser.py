"""The consumer page in real headless Chromium (Debian's), driven by Playwright; screenshots for review.

Screenshots go to test-artifacts/consumer/<case>-<lang>.png (phone viewport 390×844 @2x).
Skipped when chromium or Playwright is missing (``ops/browser.sh`` installs chromium).
"""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import ARTIFACTS
from tests.consumer_world import world  # noqa: F401  (module-scoped fixture)

playwright_api = pytest.importorskip("playwright.sync_api")
if not shutil.which("chromium"):
    pytest.skip("chromium is not installed (bash ops/browser.sh)", allow_module_level=True)

SHOTS = ARTIFACTS / "consumer"


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--disable-gpu", "--disable-quic"])
        yield b
        b.close()


@pytest.fixture
def phone(browser):
    """A fresh phone-sized context per test (own cookies: each test is a new consumer)."""
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True,
                              locale="zh-CN")
    page = ctx.new_page()
    yield page
    ctx.close()


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def open_label(page, w, serial: str):
    resp = page.goto(f"{w.url}/01/{w.gtin}/21/{serial}")
    assert resp.status == 200
    return page.locator("#verdict")


def switch_to_english(page):
    page.click("#lang")
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"


@pytest.mark.parametrize("purpose, verdict, zh, en", [
    ("genuine0", "genuine", "正品", "Genuine"),
    ("recalled", "recalled", "已召回", "Recalled"),
    ("counterfeit", "counterfeit", "假冒商品", "Counterfeit"),
])
def test_label_page_in_both_languages(phone, world, purpose, verdict, zh, en):
    v = open_label(phone, world, world.labels[purpose])
    assert v.get_attribute("data-verdict") == verdict
    assert phone.locator("html").get_attribute("lang") == "zh-CN"
    assert zh in v.inner_text()
    assert "Acme" in phone.locator("dl").inner_text()
    shot(phone, f"{purpose}-zh")
    switch_to_english(phone)
    v = phone.locator("#verdict")
    # The reload is the same browser: not a second query, so the verdict stays.
    assert v.get_attribute("data-verdict") == verdict and en in v.inner_text()
    assert "Issued" in phone.locator("#trail").inner_text()
    shot(phone, f"{purpose}-en")


def test_unknown_code_in_both_languages(phone, world):
    v = open_label(phone, world, "ZZZZZZZZZZZZZZZZZZZZ")
    assert v.get_attribute("data-verdict") == "unknown" and "未查到此码" in v.inner_text()
    shot(phone, "unknown-zh")
    switch_to_english(phone)
    assert "Unknown code" in phone.locator("#verdict").inner_text()
    shot(phone, "unknown-en")


def test_manual_entry_opens_the_page(phone, world):
    from ledger import shortcode

    phone.goto(world.url + "/")
    shot(phone, "entry-zh")
    phone.fill("input[name=code]", shortcode.group(shortcode.to_short_code(world.labels["genuine1"])))
    phone.click("button")
    phone.wait_for_load_state()
    assert f"/21/{world.labels['genuine1']}" in phone.url
    assert phone.locator("#verdict").get_attribute("data-verdict") == "genuine"


@pytest.mark.parametrize("lang, wrong_text, ok_text, used_text", [
    ("zh", "防伪码错误，还可尝试 4 次", "防伪码验证通过", "此防伪码已于"),
    ("en", "Wrong PIN: 4 tries left", "PIN verified", "already verified at"),
])
def test_pin_label_wrong_then_right_pin(phone, world, lang, wrong_text, ok_text, used_text):
    serial = world.labels["pin0" if lang == "zh" else "pin1"]
    open_label(phone, world, serial)
    if lang == "en":
        switch_to_english(phone)
    shot(phone, f"pin-{lang}")
    phone.fill("input[name=pin]", "0000000" if world.pins[serial] != "0000000" else "1111111")
    phone.click("form:has(input[name=pin]) button")
    phone.wait_for_load_state()
    assert wrong_text in phone.locator("#pinmsg").inner_text()
    shot(phone, f"pin-wrong-{lang}")
    phone.fill("input[name=pin]", world.pins[serial])
    phone.click("form:has(input[name=pin]) button")
    phone.wait_for_load_state()
    v = phone.locator("#verdict")
    assert v.get_attribute("data-verdict") == "pin_ok" and ok_text in v.inner_text()
    shot(phone, f"pin-right-{lang}")
    # Someone else enters the same PIN later: warned that it was already verified.
    phone.goto(f"{world.url}/01/{world.gtin}/21/{serial}?lang={lang}")
    phone.fill("input[name=pin]", world.pins[serial])
    phone.click("form:has(input[name=pin]) button")
    phone.wait_for_load_state()
    v = phone.locator("#verdict")
    assert v.get_attribute("data-verdict") == "pin_used" and used_text in v.inner_text()
    shot(phone, f"pin-used-{lang}")


def test_report_button(phone, world):
    open_label(phone, world, world.labels["counterfeit"])
    phone.click("button.r")
    phone.wait_for_load_state()
    assert phone.locator("#reported").is_visible()
    shot(phone, "reported-zh")
