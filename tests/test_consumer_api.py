"""Consumer channels over real HTTP: resolver JSON and page, PINs, SMS and voice, bad input."""

from __future__ import annotations

import hashlib
import io

import httpx
import psycopg
import pytest
from click.testing import CliRunner
from kafka import KafkaProducer
from PIL import Image

from ledger import batches, gs1, shortcode
from ledger.events import SignedEvent
from ledger.service import Ledger
from tests.conftest import wait_for
from tests.consumer_world import (  # noqa: F401  (world: the module-scoped fixture)
    BRAND_HOTLINE,
    CERT_OK,
    CERT_REVOKED,
    PRODUCT_EN,
    PRODUCT_ZH,
    RECALL_NOTICE,
    V4_CONSUMER,
    world,
)
from tests.helpers import issued_payload
from tests.pipeline import topic_records
from traceledger.auth import authorization_header
from traceledger.cli import cli

JSON = {"accept": "application/json"}
BROWSER = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
# Another shopper: the API trusts loopback as a proxy, so X-Forwarded-For names the client.
SOMEONE_ELSE = {"x-forwarded-for": "198.51.100.7"}


def link(w, serial: str, extra: str = "") -> str:
    return f"{w.url}/01/{w.gtin}/21/{serial}{extra}"


def channels(w, serial: str) -> list[str]:
    with psycopg.connect(w.settings.pg_conninfo) as conn:
        return [r[0] for r in conn.execute("SELECT channel FROM scan_inbox WHERE serial = %s AND kind = 'scan' ORDER BY id", (serial,))]


def scans_with_pin(w, serial: str) -> list[tuple[str, str | None]]:
    """(channel, pin_result) of every scan of ``serial`` in the inbox, in order."""
    with psycopg.connect(w.settings.pg_conninfo) as conn:
        return [tuple(r) for r in conn.execute(
            "SELECT channel, pin_result FROM scan_inbox WHERE serial = %s AND kind = 'scan' ORDER BY id", (serial,))]


SIG = "【防伪查询】"  # every SMS reply is signed, as Chinese carriers require


def ucs2(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# ---------------------------------------------------------------- resolver


def test_resolver_json_is_the_consumer_view_and_counts_the_query(world):
    serial = world.labels["genuine0"]
    r = httpx.get(link(world, serial), headers=JSON)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    v = r.json()
    assert v["verdict"] == "genuine" and v["display"] == "genuine" and v["scan_count"] == 1
    assert v["producer"] == "Acme" and v["product"] == "E-bike battery 48V" and v["lot"] == "L1"
    assert v["short_code"] == shortcode.to_short_code(serial)
    assert [t["event"] for t in v["trail"]] == ["Issued", "Shipped"]
    assert v["trail"][0]["place"] == {"code": "4403", "zh": "广东深圳", "en": "Shenzhen, Guangdong"}
    # Privacy: no custodian/consignee, no actor ids in the trail, no coordinates.
    text = r.text
    assert "distributor" not in text and "custodian" not in text and "lat" not in v
    again = httpx.get(link(world, serial), headers=JSON | SOMEONE_ELSE).json()
    assert again["scan_count"] == 2 and again["display"] == "queried" and again["first_scanned_at"] == v["first_scanned_at"]
    # The first shopper asking again within the window is recorded, but not counted again in public.
    mine_again = httpx.get(link(world, serial), headers=JSON).json()
    assert mine_again["scan_count"] == 2
    assert channels(world, serial) == ["app", "app", "app"]


def test_page_is_chinese_by_default_english_on_request(world):
    serial = world.labels["genuine1"]
    zh = httpx.get(link(world, serial), headers=BROWSER)
    assert zh.status_code == 200 and zh.headers["content-type"].startswith("text/html")
    assert '<html lang="zh-CN">' in zh.text and "正品" in zh.text and 'data-verdict="genuine"' in zh.text
    assert "http" not in zh.text.split("<main>")[0].replace('href="/', "")  # no external assets in the head
    en = httpx.get(link(world, serial), headers=BROWSER | {"accept-language": "en-US,en;q=0.9,zh;q=0.5"}, cookies=zh.cookies)
    assert '<html lang="en">' in en.text and "Genuine" in en.text  # same browser: a reload is not a new query
    toggled = httpx.get(link(world, serial, "?lang=en"), headers=BROWSER | SOMEONE_ELSE)
    assert "Caution: this code has been queried 2\u00a0times" in toggled.text
    assert channels(world, serial) == ["web", "web"]


@pytest.mark.parametrize("purpose, verdict", [("recalled", "recalled"), ("counterfeit", "counterfeit")])
def test_recalled_and_counterfeit(world, purpose, verdict):
    v = httpx.get(link(world, world.labels[purpose]), headers=JSON).json()
    assert v["verdict"] == verdict and v["reasons"]
    page = httpx.get(link(world, world.labels[purpose]), headers=BROWSER).text
    assert f'data-verdict="{verdict}"' in page and ("已召回" if verdict == "recalled" else "假冒商品") in page


def test_the_view_carries_reason_codes_and_an_own_recall_shows_its_hazard(world):
    own = httpx.get(link(world, world.labels["recalled_own"]), headers=JSON).json()
    assert own["verdict"] == "recalled" and own["reason_codes"] == [{"code": "item_recalled", "arg": None}]
    lot = httpx.get(f"{world.url}/v1/labels/{world.labels['recalled']}").json()
    assert lot["reason_codes"] == [{"code": "lot_recalled", "arg": "L2"}] and lot["reasons"] == ["lot L2 has been recalled"]
    for lang, words in (("zh", "召回原因"), ("en", "Why it was recalled")):
        page = httpx.get(link(world, world.labels["recalled_own"], f"?lang={lang}"), headers=BROWSER).text
        assert 'id="hazard">charger plug may overheat<' in page and words in page
    retired = httpx.get(link(world, world.labels["decommissioned"]), headers=JSON).json()
    assert retired["verdict"] == "suspicious" and retired["reason_codes"] == [{"code": "decommissioned", "arg": None}]
    page = httpx.get(link(world, world.labels["decommissioned"]), headers=BROWSER).text
    assert "此码已被注销" in page
    assert sms(world, world.labels["decommissioned"]).text.startswith(SIG + "可疑：此码已注销")
    assert "this code was never issued" not in str(own)


def test_unknown_serial_is_a_verdict(world):
    v = httpx.get(link(world, "NEVERISSUED"), headers=JSON)
    assert v.status_code == 200 and v.json()["verdict"] == "unknown"
    page = httpx.get(link(world, "NEVERISSUED"), headers=BROWSER).text
    assert "未查到 · 谨防假冒" in page and 'data-verdict="unknown_scanned"' in page  # a scanned code is no typo
    typed = httpx.get(world.url + "/", params={"code": "0000 0000 0000 0000 000Z"}, headers=BROWSER).text
    assert "未查到此码" in typed and 'data-verdict="unknown"' in typed  # a typed one may be


@pytest.mark.parametrize("extra, verdict", [
    ("?17=290630", "genuine"), ("?17=290600", "genuine"), ("?10=L1", "genuine"),
    ("?17=300101", "suspicious"), ("?10=L9", "suspicious"), ("?17=290600&10=L9", "suspicious"),
])
def test_lot_and_expiry_given_with_the_link_are_checked(world, extra, verdict):
    v = httpx.get(link(world, world.labels["genuine2"], extra), headers=JSON).json()
    assert v["verdict"] == verdict, v
    if verdict == "suspicious":
        assert v["problems"]


def test_lot_in_the_path_and_a_wrong_gtin(world):
    serial = world.labels["genuine3"]
    v = httpx.get(f"{world.url}/01/{world.gtin}/10/L2/21/{serial}", headers=JSON).json()
    assert v["verdict"] == "suspicious" and "lot_mismatch" in v["problems"]
    other = "00000000000017"  # valid check digit, another product
    v = httpx.get(f"{world.url}/01/{other}/21/{serial}", headers=JSON).json()
    assert v["verdict"] == "suspicious" and "gtin_mismatch" in v["problems"]


BAD_LINKS = [
    ("/01/{g}/21/" + "A" * 21, "invalid_serial"),
    ("/01/{g}/21/%F0%9F%99%82", "invalid_serial"),
    ("/01/{g}/21/x';DROP TABLE labels;--", "invalid_serial"),
    ("/01/{g}/21/%FF%FE", "invalid_serial"),
    ("/01/{g}/21/A%00B", "invalid_serial"),
    ("/01/{g}/21/ABC?10=L%00", "invalid_lot"),
    ("/01/06901234000010/21/ABC", "invalid_gtin"),  # wrong check digit
    ("/01/12345/21/ABC", "invalid_gtin"),
    ("/01/{g}", "invalid_link"),
    ("/01/{g}/10/L1", "invalid_link"),
    ("/01/{g}/99/X/21/ABC", "invalid_link"),
    ("/01/{g}/21/ABC?17=991399", "invalid_expiry"),
    ("/01/{g}/21/ABC?10=%F0%9F%99%82", "invalid_lot"),
]


@pytest.mark.parametrize("path, code", BAD_LINKS)
def test_bad_links_get_a_clear_answer(world, path, code):
    url = world.url + path.format(g=world.gtin)
    r = httpx.get(url, headers=JSON)
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json"), r.text
    assert r.json()["code"] == code and r.json()["detail"]
    page = httpx.get(url, headers=BROWSER)
    assert page.status_code == 400 and 'id="error"' in page.text and "<form" in page.text


# ---------------------------------------------------------------- manual entry


def test_manual_entry_form_and_redirect(world):
    home = httpx.get(world.url + "/", headers=BROWSER)
    assert home.status_code == 200 and 'name="code"' in home.text
    serial = world.labels["genuine4"]
    spaced = shortcode.group(shortcode.to_short_code(serial))
    r = httpx.get(world.url + "/", params={"code": spaced}, headers=BROWSER)
    assert r.status_code == 303 and r.headers["location"] == f"/01/{world.gtin}/21/{serial}?lang=zh"
    r = httpx.get(world.url + "/", params={"code": serial.lower(), "lang": "en"}, headers=BROWSER)
    assert r.status_code == 303 and r.headers["location"].endswith("?lang=en")
    typo = spaced[:-1] + str((int(spaced[-1]) + 1) % 10)
    r = httpx.get(world.url + "/", params={"code": typo}, headers=BROWSER)
    assert r.status_code == 400 and "校验位" in r.text and "check digit" not in r.text
    r = httpx.get(world.url + "/", params={"code": typo, "lang": "en"}, headers=BROWSER)
    assert r.status_code == 400 and "check digit" in r.text
    for junk in ["😀😀", "'; DROP TABLE labels;--", "A" * 300]:
        r = httpx.get(world.url + "/", params={"code": junk}, headers=BROWSER)
        assert r.status_code == 400 and 'id="error"' in r.text
    r = httpx.get(world.url + "/", params={"code": "0000 0000 0000 0000 000Z"}, headers=BROWSER)
    assert r.status_code == 200 and 'data-verdict="unknown"' in r.text


# ---------------------------------------------------------------- PINs


def test_pin_first_use_then_already_verified(world):
    serial = world.labels["pin0"]
    url = f"{world.url}/v1/labels/{serial}/pin"
    assert httpx.get(link(world, serial), headers=JSON).json()["pin_protected"] is True
    wrong = httpx.post(url, json={"pin": "000000000"})
    assert wrong.status_code == 200 and wrong.json()["pin_result"] == "wrong" and wrong.json()["attempts_left"] == 4
    first = httpx.post(url, json={"pin": world.pins[serial]}).json()
    assert first["pin_result"] == "first_use" and first["display"] == "pin_ok" and first["pin_first_verified_at"]
    again = httpx.post(url, json={"pin": " ".join(world.pins[serial])}).json()  # spaced: still the PIN
    assert again["pin_result"] == "already_used" and again["pin_uses"] == 2
    assert again["pin_first_verified_at"] == first["pin_first_verified_at"] and again["display"] == "pin_used"


def test_pin_bad_input(world):
    serial = world.labels["pin1"]
    for pin in ["12", "😀" * 8, "'; DROP TABLE pin_uses;--", "9" * 40]:
        r = httpx.post(f"{world.url}/v1/labels/{serial}/pin", json={"pin": pin})
        assert r.status_code in (400, 422) and r.headers["content-type"].startswith("application/problem+json"), r.text
    r = httpx.post(f"{world.url}/v1/labels/{world.labels['genuine5']}/pin", json={"pin": "12345678"})
    assert r.status_code == 400 and r.json()["code"] == "not_pin_protected"
    r = httpx.post(f"{world.url}/v1/labels/NEVERISSUED/pin", json={"pin": "12345678"})
    assert r.status_code == 200 and r.json()["verdict"] == "unknown"
    r = httpx.post(f"{world.url}/v1/labels/{serial}/pin", content=b"\xff\xfe\x00junk", headers={"content-type": "application/json"})
    assert r.status_code in (400, 422) and r.headers["content-type"].startswith("application/problem+json")


def test_wrong_pins_are_rate_limited_per_label(world):
    serial = world.labels["pin2"]
    url = f"{world.url}/v1/labels/{serial}/pin"
    lefts = [httpx.post(url, json={"pin": "99999999" if world.pins[serial] != "99999999" else "88888888"}).json()["attempts_left"] for _ in range(5)]
    assert lefts == [4, 3, 2, 1, 0]
    limited = httpx.post(url, json={"pin": world.pins[serial]})  # even the right PIN is not checked now
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 3000
    assert limited.json()["code"] == "too_many_attempts"
    with psycopg.connect(world.settings.pg_conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM pin_uses WHERE serial = %s", (serial,)).fetchone()[0] == 0


def test_page_pin_form_right_and_wrong(world):
    """Every form post is answered by a 303 to the page (POST-redirect-GET); the GET shows the outcome."""
    serial = world.labels["pin3"]
    with httpx.Client(headers=BROWSER, follow_redirects=False) as me:
        page = me.get(link(world, serial))
        assert 'name="pin"' in page.text and 'data-verdict="pin_needed"' in page.text and "正品" not in page.text
        wrong = me.post(link(world, serial), data={"action": "pin", "pin": "1234567", "lang": "en"})
        assert wrong.status_code == 303 and wrong.headers["location"].endswith("?lang=en")
        shown = me.get(link(world, serial, "?lang=en"))
        assert 'data-verdict="pin_wrong"' in shown.text and "4\u00a0tries left" in shown.text and 'name="pin"' in shown.text
        right = me.post(link(world, serial), data={"action": "pin", "pin": world.pins[serial]})
        assert right.status_code == 303
        ok = me.get(link(world, serial, "?lang=zh"))
        assert 'data-verdict="pin_ok"' in ok.text and "防伪码验证通过" in ok.text and 'name="pin"' not in ok.text
        assert 'data-verdict="pin_ok"' in me.get(link(world, serial, "?lang=zh")).text  # a reload: still verified, no warning
    with httpx.Client(headers=BROWSER | SOMEONE_ELSE) as other:
        assert 'data-verdict="pin_needed"' in other.get(link(world, serial)).text  # no PIN entered yet: no verdict
        again = other.post(link(world, serial), data={"action": "pin", "pin": world.pins[serial], "lang": "en"}, follow_redirects=True)
        assert 'data-verdict="pin_used"' in again.text and "already verified" in again.text and "by web page" in again.text
    junk = httpx.post(link(world, serial), content=b"\xff\xfe%%%\x00", headers=BROWSER | {"content-type": "application/x-www-form-urlencoded"})
    assert junk.status_code == 303


def test_report_a_suspected_fake(world):
    serial = world.labels["counterfeit"]
    with httpx.Client(headers=BROWSER) as me:
        form = me.get(link(world, serial, "?lang=en&report=1"))
        assert 'id="r-place"' in form.text and '<label for="r-price">' in form.text
        bad = me.get(link(world, serial, "?lang=en&report=review&place=Market&price=cheap"))
        assert "Enter the price as a number" in bad.text and "Send report" not in bad.text
        review = me.get(link(world, serial, "?lang=en&report=review&place=Night+market&price=35&phone="))
        assert "Please confirm your report" in review.text and "Night market" in review.text
        sent = me.post(link(world, serial), data={"action": "report", "lang": "en", "place": "Night market", "price": "35", "phone": ""})
        assert sent.status_code == 303 and "reported=R-" in sent.headers["location"]
        done = me.get(world.url + sent.headers["location"])
        public_id = sent.headers["location"].split("reported=")[1].split("#")[0]
        assert 'id="reported"' in done.text and public_id in done.text
    r = httpx.post(f"{world.url}/v1/labels/{serial}/reports", json={"note": "bought at a market stall"})
    assert r.status_code == 201 and r.json()["report_id"]
    with psycopg.connect(world.settings.pg_conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM consumer_reports WHERE serial = %s", (serial,)).fetchone()[0] == 2
        place, price = conn.execute("SELECT place, price FROM consumer_report_details WHERE public_id = %s", (public_id,)).fetchone()
    assert (place, price) == ("Night market", "35")


# ---------------------------------------------------------------- SMS


def sms(w, text, sender="+8613800000000", **kw):
    return httpx.post(f"{w.url}/v1/channels/sms", data={"from": sender, "text": text}, **kw)


def test_sms_answers_verdict_first_in_one_segment(world):
    serial = world.labels["genuine5"]
    code = shortcode.to_short_code(serial)
    wide = "　".join("".join(chr(ord(c) + 0xFEE0) for c in g) for g in shortcode.group(code).split())
    r = sms(world, wide)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert r.text.startswith(SIG + "正品：") and ucs2(r.text) <= 70
    again = sms(world, f"  {serial.lower()}  ", sender="+8613800000001")  # other senders: each counts once
    assert again.text.startswith(SIG + "注意：此码已查询2次") and ucs2(again.text) <= 70
    en = sms(world, "EN " + shortcode.group(code), sender="+8613800000002", headers={"accept": "application/json"})
    assert en.json()["reply"].startswith(SIG + "Caution: queried 3 times") and ucs2(en.json()["reply"]) <= 70
    assert sms(world, serial, sender="+8613800000002").text.startswith(SIG + "注意：此码已查询3次")  # the same sender again: not counted
    assert channels(world, serial) == ["sms", "sms", "sms", "sms"]
    with psycopg.connect(world.settings.pg_conninfo) as conn:
        sessions = [r[0] for r in conn.execute("SELECT session FROM scan_inbox WHERE serial = %s ORDER BY id", (serial,))]
    assert len(set(sessions)) == 3 and sessions[2] == sessions[3]  # a stable pseudonym per sender...
    assert not any("1380000000" in s for s in sessions)  # ...not the number


def test_sms_other_verdicts_and_pins(world):
    assert sms(world, world.labels["recalled"]).text.startswith(SIG + "已召回")
    assert sms(world, world.labels["counterfeit"]).text.startswith(SIG + "假冒")
    unknown = sms(world, shortcode.to_short_code("00000000000000000001"))
    assert unknown.text.startswith(SIG + "未查到此码，谨防假冒")
    serial = world.labels["pin4"]
    code = shortcode.to_short_code(serial)
    assert sms(world, f"{code} 11111111" if world.pins[serial] != "11111111" else f"{code} 22222222").text.startswith(SIG + "防伪码错误")
    assert sms(world, f"{code} {world.pins[serial]}").text.startswith(SIG + "正品，防伪码首次验证通过")
    mine = sms(world, f"{serial}{world.pins[serial]}").text  # the same sender again: their own PIN, no warning
    assert mine.startswith(SIG + "正品：您已于") and ucs2(mine) <= 70
    used = sms(world, f"{serial}{world.pins[serial]}", sender="+8613800000099").text
    assert used.startswith(SIG + "警告：此防伪码已于") and ucs2(used) <= 70


@pytest.mark.parametrize("template", [
    "查询 {c}", "查询：{c}。", "{c}。", "验证{c}", "你好，请帮我查一下这个码 {c} 谢谢！", "CX {c}", "{w}", "查询,{d}",
])
def test_sms_is_tolerant_of_what_people_type(world, template):
    serial = world.labels["genuine3"]
    code = shortcode.to_short_code(serial)
    wide = "".join(chr(ord(c) + 0xFEE0) for c in code) + "。"
    text = template.format(c=shortcode.group(code), w=wide, d="-".join(shortcode.group(code).split()))
    r = sms(world, text, sender="+8613811112222")
    assert r.text.startswith((SIG + "正品", SIG + "注意：此码已查询")) and ucs2(r.text) <= 70, (text, r.text)  # read, not refused


def test_a_repeated_sms_never_warns_and_a_pin_label_asks_for_its_pin(world):
    serial = world.labels["fresh0"]
    first = sms(world, serial, sender="+8613855550000").text
    assert first.startswith(SIG + "正品") and "首次查询" in first
    again = sms(world, serial, sender="+8613855550000").text
    assert again.startswith(SIG + "正品") and "您" in again and "已查询过" in again and "注意" not in again
    other = sms(world, serial, sender="+8613855550001").text  # a second sender: the warning is due
    assert other.startswith(SIG + "注意：此码已查询")
    ask = sms(world, world.labels["pin2"], sender="+8613855550002").text
    assert ask.startswith(SIG + "此码已登记") and "防伪码" in ask and ucs2(ask) <= 70
    en = sms(world, "EN " + world.labels["pin2"], sender="+8613855550002").text
    assert en.startswith(SIG + "Registered. Scratch") and ucs2(en) <= 70


@pytest.mark.parametrize("text, start", [
    ("", "无法识别"), ("😀😀😀", "无法识别"), ("'; DROP TABLE labels;--", "无法识别"), ("1" * 40, "数字码有误"), ("1" * 50, "无法识别"),
    ("1" * 33, "无法识别"), ("hello", "无法识别"), ("\x00\x01\x02", "无法识别"),
])
def test_sms_junk_gets_a_helpful_reply(world, text, start):
    r = sms(world, text)
    assert r.status_code == 200 and r.text.startswith(SIG + start) and ucs2(r.text) <= 70


def test_sms_typo_in_check_digit_and_binary_body(world):
    code = shortcode.to_short_code(world.labels["genuine0"])
    typo = code[:-1] + str((int(code[-1]) + 1) % 10)
    assert "校验位" in sms(world, typo).text
    r = httpx.post(f"{world.url}/v1/channels/sms", content=b"\xff\xfe\x00\x80junk=%%%", headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.text.startswith(SIG + "无法识别")


# ---------------------------------------------------------------- voice


def voice(w, call_id, digits=None, **extra):
    data = {"call_id": call_id, "from": "+8613900000000", **extra}
    if digits is not None:
        data["digits"] = digits
    r = httpx.post(f"{w.url}/v1/channels/voice", data=data)
    assert r.status_code == 200, r.text
    return r.json()


def test_voice_flow_with_pin(world):
    serial = world.labels["pin5"]
    code = shortcode.to_short_code(serial)
    first = voice(world, "call-1")
    assert first["expect"] == "code" and "32位数字码" in first["prompt"] and not first["hangup"]
    short = voice(world, "call-1", "1234#")
    assert short["expect"] == "code" and "位数不对" in short["prompt"]
    assert short["phrases"][0] == "您输入的是：1 2 3 4。"  # keyed digits are read back, one by one
    typo = voice(world, "call-1", code[:-1] + str((int(code[-1]) + 1) % 10) + "#")
    assert typo["expect"] == "code" and "按错了一位" in typo["prompt"]
    ask_pin = voice(world, "call-1", code + "#")
    assert ask_pin["expect"] == "pin" and "防伪码" in ask_pin["prompt"]
    wrong = voice(world, "call-1", ("1111111" if world.pins[serial] != "1111111" else "2222222") + "#")
    assert wrong["expect"] == "pin" and "防伪码错误" in wrong["prompt"]
    done = voice(world, "call-1", world.pins[serial] + "#")
    assert done["hangup"] and done["phrases"][0].startswith("您输入的是：")
    # The verdict is a phrase of its own, then a pause, then the goodbye.
    assert done["phrases"][1].startswith("正品，防伪码首次验证通过") and done["phrases"][-1] == "感谢您的查询，再见。"
    assert voice(world, "call-1", "1#")["hangup"]
    # The code lookup is a scan, and so is each PIN check, carrying its outcome.
    assert scans_with_pin(world, serial) == [("voice", None), ("voice", "wrong"), ("voice", "first_use")]


def test_voice_plain_label_in_english_and_bad_input(world):
    serial = world.labels["recalled"]
    assert voice(world, "call-2", lang="en")["prompt"].startswith("Welcome")
    done = voice(world, "call-2", shortcode.to_short_code(serial) + "#")
    assert done["hangup"] and done["phrases"][0].startswith("You keyed: ") and done["phrases"][1].startswith("RECALLED")
    assert done["phrases"][-1] == "Thank you, goodbye."
    zh_name = voice(world, "call-4", lang="en") and voice(world, "call-4", shortcode.to_short_code(world.labels["certified"]) + "#")
    assert "this product" in zh_name["prompt"] and "电动" not in zh_name["prompt"]  # an English call never reads Chinese letters
    zh_call = voice(world, "call-5") and voice(world, "call-5", shortcode.to_short_code(world.labels["certified"]) + "#")
    assert "电动自行车锂电池" in zh_call["prompt"]
    for junk in ["😀", "'; DROP", "9" * 200]:
        out = voice(world, "call-3", junk)
        assert out["expect"] in ("code", None)
    r = httpx.post(f"{world.url}/v1/channels/voice", data={"digits": "1"})
    assert r.status_code == 400 and r.json()["field"] == "call_id"
    r = httpx.post(f"{world.url}/v1/channels/voice", data={"call_id": "x" * 65})
    assert r.status_code == 400


# ---------------------------------------------------------------- issuance with PINs


def test_issue_with_pins_keeps_the_pin_out_of_the_ledger_kafka_and_logs(world, tmp_path):
    import csv as csvmod

    from click.testing import CliRunner

    from ledger import pins
    from tests.pipeline import topic_records
    from traceledger.cli import cli

    key = tmp_path / "acme.key"
    world.cast.keys["acme"].save(key)
    out = tmp_path / "pins.csv"
    r = CliRunner().invoke(cli, ["issue", "--api", world.url, "--key", str(key), "--gtin", world.gtin, "--lot", "P1",
                                 "--product", "Charger", "--count", "3", "--pins", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = list(csvmod.DictReader(open(out)))
    assert len(rows) == 3 and all(len(row["pin"]) == 8 and row["pin"].isdigit() for row in rows)
    world.sync()
    records = topic_records(world.settings, world.settings.label_topic)
    log_text = world.service.log_path.read_text()
    # Issued in one batch event (the CLI's default): Kafka carries its signed body and, beside
    # it, the manifest of PIN commitments (ledger/commitments.py), never a PIN.
    issued = [rec for rec in records if rows[0]["serial"].encode() in (dict(rec.headers or ()).get("manifest") or b"")]  # the world has batches too
    assert len(issued) == 1
    manifest = dict(issued[0].headers)["manifest"]
    assert all(row["serial"].encode() in manifest for row in rows)
    on_kafka = b"".join(rec.value + b"".join(v for _, v in rec.headers or ()) for rec in records)
    for row in rows:
        assert row["pin"].encode() not in on_kafka
        assert row["pin"] not in log_text
    with psycopg.connect(world.settings.pg_conninfo) as conn:
        stored = conn.execute("SELECT pin_hash FROM verification.labels WHERE serial = %s", (rows[0]["serial"],)).fetchone()[0]
    assert pins.verify_pin(rows[0]["serial"], rows[0]["pin"], stored)
    ok = httpx.post(f"{world.url}/v1/labels/{rows[1]['serial']}/pin", json={"pin": rows[1]["pin"]}).json()
    assert ok["pin_result"] == "first_use"


# ---------------------------------------------------------------- last: restarts, the client limit


def test_pin_first_use_survives_an_api_restart(world):
    serial = world.labels["pin0"]  # verified in test_pin_first_use_then_already_verified
    before = httpx.post(f"{world.url}/v1/labels/{serial}/pin", json={"pin": world.pins[serial]}).json()
    world.service.stop()
    world.service.start()

    def healthy():
        try:
            return httpx.get(f"{world.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, 60, what="the API after a restart")
    after = httpx.post(f"{world.url}/v1/labels/{serial}/pin", json={"pin": world.pins[serial]}).json()
    assert after["pin_result"] == "already_used" and after["pin_first_verified_at"] == before["pin_first_verified_at"]
    assert after["pin_uses"] == before["pin_uses"] + 1


def test_wrong_pins_are_rate_limited_per_client_across_labels(world):
    from ledger.channel_state import CLIENT_FAILURES, LABEL_FAILURES

    with psycopg.connect(world.settings.pg_conninfo) as conn:
        failed = conn.execute("SELECT count(*) FROM pin_attempts WHERE outcome = 'wrong' AND client LIKE 'ip:%%'").fetchone()[0]
    targets = [world.labels[f"pin{i}"] for i in range(6)] + [world.labels["recalled_pin"]]
    statuses = []
    for serial in targets:
        for _ in range(LABEL_FAILURES):
            if failed >= CLIENT_FAILURES + 2:
                break
            r = httpx.post(f"{world.url}/v1/labels/{serial}/pin", json={"pin": "000000"})
            statuses.append(r.status_code)
            failed += r.status_code == 200 and r.json().get("pin_result") == "wrong"
    assert 429 in statuses
    fresh = world.labels["pin1"]
    r = httpx.post(f"{world.url}/v1/labels/{fresh}/pin", json={"pin": world.pins[fresh]})
    assert r.status_code == 429  # this client is out of tries, whatever the label


# ---------------------------------------------------------------- check with my location


@pytest.mark.parametrize("lat, lon", [
    ("NaN", "1"), ("91", "0"), ("0", "181"), ("1e3", "2"), ("", ""), ("22.5", ""), ("../../etc", "1"), ("2" * 40, "1"), ("22,5", "114"),
], ids=["nan", "lat-range", "lon-range", "exponent", "empty", "half", "path", "long", "comma"])
def test_a_bad_position_records_nothing(world, lat, lon):
    serial = world.labels["fresh4"]
    r = httpx.post(link(world, serial), data={"action": "locate", "lat": lat, "lon": lon, "lang": "en"}, headers=BROWSER)
    assert r.status_code == 303 and "located=bad" in r.headers["location"]
    with psycopg.connect(world.settings.pg_conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM scan_inbox WHERE serial = %s AND lat IS NOT NULL", (serial,)).fetchone()[0] == 0
    page = httpx.get(world.url + r.headers["location"], headers=BROWSER).text
    assert "not valid: nothing was recorded" in page and "<script" not in page


def test_a_position_for_an_unknown_code_records_nothing(world):
    r = httpx.post(link(world, "NEVERISSUED"), data={"action": "locate", "lat": "22.54", "lon": "114.06"}, headers=BROWSER)
    assert r.status_code == 303 and "located=bad" in r.headers["location"]
    with psycopg.connect(world.settings.pg_conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM scan_inbox WHERE serial = 'NEVERISSUED' AND lat IS NOT NULL").fetchone()[0] == 0


# ---------------------------------------------------------------- a photo in a report (#17 item 6)


def png(colour=(10, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (80, 60), colour).save(out, "PNG")
    return out.getvalue()


def send_report(w, serial: str, photo: bytes | None, filename: str = "photo.png", ctype: str = "image/png", lang: str = "en"):
    files = {"photo": (filename, photo, ctype)} if photo is not None else None
    data = {"action": "report", "lang": lang, "place": "Night market", "price": "35", "phone": ""}
    return httpx.post(link(w, serial), data=data, files=files, headers=BROWSER, timeout=30)


def reports_of(w, serial: str) -> int:
    with psycopg.connect(w.settings.pg_conninfo) as conn:
        return conn.execute("SELECT count(*) FROM consumer_reports WHERE serial = %s", (serial,)).fetchone()[0]


def signed(w, path: str, actor: str | None) -> httpx.Response:
    headers = {"authorization": authorization_header(w.cast.keys[actor], "GET", path)} if actor else {}
    return httpx.get(w.url + path, headers=headers)


def test_a_report_s_photo_is_kept_by_hash_for_regulators_only(world):
    serial = world.labels["genuine5"]
    upload = png()
    sent = send_report(world, serial, upload, filename="../../../etc/passwd")  # the name is never used
    assert sent.status_code == 303 and "reported=R-" in sent.headers["location"]
    public_id = sent.headers["location"].split("reported=")[1].split("#")[0]
    with psycopg.connect(world.settings.pg_conninfo) as conn:
        sha256 = conn.execute("SELECT photo_sha256 FROM consumer_report_details WHERE public_id = %s", (public_id,)).fetchone()[0]
        stored = conn.execute("SELECT bytes FROM report_photos WHERE sha256 = %s", (sha256,)).fetchone()[0]
        row = conn.execute("SELECT reason FROM scan_inbox WHERE serial = %s AND kind = 'report' ORDER BY id DESC LIMIT 1", (serial,)).fetchone()
    assert hashlib.sha256(bytes(stored)).hexdigest() == sha256 and bytes(stored) != upload  # re-encoded, named by what is kept
    assert sha256 not in str(row) and "passwd" not in str(row)  # the ledger's entry carries neither photo nor name
    path = f"/v1/report-photos/{sha256}"
    got = signed(world, path, "regulator")
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg" and hashlib.sha256(got.content).hexdigest() == sha256
    assert got.headers["x-content-type-options"] == "nosniff" and "sandbox" in got.headers["content-security-policy"]
    assert got.headers["content-disposition"] == f'attachment; filename="{sha256}.jpg"'
    assert signed(world, path, None).status_code == 401  # anonymous: not other people's photos
    assert signed(world, path, "acme").status_code == 403  # nor the brand's
    assert signed(world, path, "gateway").status_code == 403
    assert signed(world, "/v1/report-photos/" + "0" * 64, "regulator").status_code == 404
    assert signed(world, "/v1/report-photos/" + "A" * 64, "regulator").status_code == 400


@pytest.mark.parametrize("name, photo, err", [
    ("gif", b"GIF89a" + b"\x00" * 64, "report_bad_photo_type"),
    ("svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "report_bad_photo_type"),
    ("html-as-jpeg", b"\xff\xd8\xff\xe0<html><script>alert(1)</script>", "report_bad_photo_type"),
    ("oversize", b"\xff\xd8\xff" + b"\x00" * (3 * 1024 * 1024), "report_bad_photo_size"),
], ids=["gif", "svg", "html-as-jpeg", "oversize"])
def test_a_bad_photo_sends_no_report_and_says_why(world, name, photo, err):
    serial = world.labels["genuine5"]
    before = reports_of(world, serial)
    sent = send_report(world, serial, photo, ctype="image/jpeg")
    assert sent.status_code == 303 and f"err={err}" in sent.headers["location"]
    page = httpx.get(world.url + sent.headers["location"], headers=BROWSER).text
    assert 'id="report-error"' in page and ("2 MB" if err.endswith("size") else "JPEG or PNG") in page
    assert reports_of(world, serial) == before


def test_a_polyglot_photo_is_kept_without_its_payload(world):
    serial = world.labels["genuine5"]
    sent = send_report(world, serial, png((1, 2, 3)) + b"<html><script>alert(1)</script></html>PK\x03\x04", ctype="text/html")
    assert sent.status_code == 303 and "reported=R-" in sent.headers["location"]
    public_id = sent.headers["location"].split("reported=")[1].split("#")[0]
    with psycopg.connect(world.settings.pg_conninfo) as conn:
        stored = conn.execute("SELECT p.bytes FROM report_photos p JOIN consumer_report_details d ON d.photo_sha256 = p.sha256 "
                              "WHERE d.public_id = %s", (public_id,)).fetchone()[0]
    assert bytes(stored).startswith(b"\xff\xd8\xff") and b"<script" not in bytes(stored) and b"PK\x03\x04" not in bytes(stored)


# ---------------------------------------------------------------- event.v4: certificates, names, hotline, quality, recall remedy


needs_v4 = pytest.mark.skipif(not V4_CONSUMER, reason="event.v4 step B (certificates, profiles, products) is not in the schema yet")


def v4_link(w, purpose: str, extra: str = "") -> str:
    return f"{w.url}/01/{w.gtin_v4}/21/{w.labels[purpose]}{extra}"


@needs_v4
def test_certificates_with_status_names_hotline_quality_and_sellers(world):
    zh = httpx.get(v4_link(world, "v4_certified", "?lang=zh"), headers=BROWSER).text
    assert 'data-verdict="genuine"' in zh
    certs = zh[zh.index('id="certs"'):zh.index("</section>", zh.index('id="certs"'))]
    assert "CCC 2024011101234567" in certs and "有效" in certs and "中国质量认证中心" in certs and "A1–A9" in certs and "2029-01-10" in certs
    assert f'id="d-product">{PRODUCT_ZH}<' in zh and 'id="d-brand">艾克美<' in zh and 'id="d-producer">艾克美电池有限公司<' in zh
    assert f'href="tel:4008201234">{BRAND_HOTLINE}</a>' in zh  # tap-to-call
    assert 'id="d-produced">2026-11-20<' in zh  # the signed production date, not the day it was registered
    assert "假一赔十" in zh and "GB 43854-2024" in zh and "艾克美京东自营旗舰店" in zh and "北京" in zh
    assert 'id="product-image"' in zh and f'data-sha256="{bytes(range(32)).hex()}"' in zh
    en = httpx.get(v4_link(world, "v4_certified", "?lang=en"), headers=BROWSER).text
    assert f'id="d-product">{PRODUCT_EN}<' in en and "Acme Batteries Ltd." in en and "valid" in en and "Authorised sellers" in en
    view = httpx.get(v4_link(world, "v4_certified"), headers=JSON).json()
    assert view["hotline"] == BRAND_HOTLINE and view["producer_names"] == {"zh": "艾克美电池有限公司", "en": "Acme Batteries Ltd."}
    assert "Acme e-bike lithi" in sms(world, f"EN {world.labels['v4_certified']}").text  # the signed English name on an English SMS


@needs_v4
@pytest.mark.parametrize("purpose, key, zh, en", [
    ("v4_revoked", "cert_revoked", "CCC\u00a0证书", "certificate was revoked"),
    ("v4_suspended", "cert_suspended", "证书", "certificate is suspended"),
])
def test_a_suspended_or_revoked_certificate_turns_genuine_into_a_warning(world, purpose, key, zh, en):
    page = httpx.get(v4_link(world, purpose, "?lang=zh"), headers=BROWSER).text
    assert f'data-verdict="{key}"' in page and zh in page and "正品" not in page.split('id="verdict"')[1].split("</div>")[0]
    assert ("撤销" if key == "cert_revoked" else "暂停") in page
    assert en in httpx.get(v4_link(world, purpose, "?lang=en"), headers=BROWSER).text
    reply = sms(world, world.labels[purpose]).text
    assert reply.startswith(SIG + "注意：此产品的CCC证书已" + ("被撤销" if key == "cert_revoked" else "暂停")) and ucs2(reply) <= 70
    assert httpx.get(v4_link(world, purpose), headers=JSON).json()["verdict"] == "genuine"  # the ledger's verdict; the page warns


@needs_v4
def test_a_recall_names_its_hazard_remedy_hotline_and_notice(world):
    zh = httpx.get(v4_link(world, "v4_recalled", "?lang=zh"), headers=BROWSER).text
    assert 'data-verdict="recalled"' in zh and 'id="hazard">充电时电芯可能过热起火<' in zh
    assert 'id="remedy">更换：免费更换电池组<' in zh and 'href="tel:4008201234"' in zh
    assert f'href="{RECALL_NOTICE}"' in zh and "SAMR-2026-0123" in zh and 'href="tel:12315"' in zh
    en = httpx.get(v4_link(world, "v4_recalled", "?lang=en"), headers=BROWSER).text
    assert 'id="hazard">cells may overheat and catch fire while charging<' in en and "replacement: free replacement" in en


def _section(page: str, marker: str) -> str:
    """The HTML from ``marker`` to the end of its section ('' when the page has none)."""
    if marker not in page:
        return ""
    start = page.index(marker)
    return page[start:page.index("<" if marker.startswith(('id="d-', "data-")) else "</section>", start)]


def _facts(view: dict, serial: str) -> dict:
    """A JSON view without what differs between two labels by construction (serial and its codes, times, trail, scans)."""
    return {k: v for k, v in view.items() if serial not in str(v) and k not in ("issued_at", "trail", "head", "last_event_at", "recalled_at", "first_scanned_at", "short_code", "scan_count", "display")}


@needs_v4
@pytest.mark.parametrize("single, batch, verdict", [("v4_certified", "batch_certified", "genuine"),
                                                    ("v4_suspended", "batch_suspended", "cert_suspended"),
                                                    ("v4_revoked", "batch_revoked", "cert_revoked")])
def test_a_batch_issued_label_shows_what_a_single_issued_one_shows(world, single, batch, verdict):
    """Issue 17: the CLI issues in batches; its labels' pages name the batch's certificates (with their
    status now: the same warning) and production date, exactly as a label with its own Issued."""
    pages = {p: httpx.get(v4_link(world, p, "?lang=zh"), headers=BROWSER).text for p in (single, batch)}
    views = {p: httpx.get(v4_link(world, p), headers=JSON).json() for p in (single, batch)}
    assert f'data-verdict="{verdict}"' in pages[batch]  # its first scan (the single twin may have been scanned by other tests)
    for marker in ('id="certs"', 'id="d-produced"', 'id="d-producer"', 'id="d-product"'):
        assert _section(pages[batch], marker) == _section(pages[single], marker), marker
    assert 'id="d-produced">2026-11-20<' in pages[batch] and "CCC 20240111012" in _section(pages[batch], 'id="certs"')
    assert _facts(views[batch], world.labels[batch]) == _facts(views[single], world.labels[single])


@needs_v4
def test_a_batch_recall_shows_its_hazard_on_each_recalled_labels_page(world):
    page = httpx.get(v4_link(world, "batch_recalled", "?lang=zh"), headers=BROWSER).text
    assert 'data-verdict="recalled"' in page and 'id="hazard">cells may swell in storage<' in page
    assert 'id="d-produced">2026-11-20<' in page and 'href="tel:12315"' in page
    with psycopg.connect(world.settings.pg_conninfo) as conn:  # only the recalled label of the batch, once
        rows = conn.execute("SELECT subject FROM verification.recalls WHERE subject_type = 'label' AND reason = %s",
                            ("cells may swell in storage",)).fetchall()
    assert [r[0] for r in rows] == [world.labels["batch_recalled"]]


@needs_v4
@pytest.mark.parametrize("cert, code", [(CERT_REVOKED, "invalid_transition"), ("CCC/2099000000000009", "unknown_subject")])
def test_a_batch_cannot_link_a_revoked_or_unknown_certificate(world, cert, code):
    """Attack: a producer batch-issues labels showing a certificate it lost (or never had): refused whole, nothing written."""
    serials = [gs1.new_serial() for _ in range(3)]
    payload = issued_payload(world.gtin_v4, lot="L7", product="E-bike battery 48V", expiry="2029-06-30", region="440300")
    b = batches.issuance(payload | {"certificates": [cert]}, serials, actor="acme", key=world.cast.keys["acme"])
    ledger = Ledger(world.settings)
    try:
        result = ledger.append_batch(b.signed, b.manifest)
    finally:
        ledger.close()
    assert result.status == "refused" and result.as_dict()["code"] == code, result.as_dict()
    world.sync()
    with psycopg.connect(world.settings.pg_conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM verification.subject_facts WHERE subject = ANY(%s)", (serials,)).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM verification.labels WHERE serial = ANY(%s)", (serials,)).fetchone() == (0,)


@needs_v4
def test_printed_sheets_take_the_hotline_from_the_producers_signed_profile(world, tmp_path):
    serial = world.labels["batch_certified"]
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text(f"serial,gtin,lot,expiry,uri\n{serial},{world.gtin_v4},L7,2029-06-30,{v4_link(world, 'batch_certified')}\n")

    def print_with(*args):
        return CliRunner().invoke(cli, ["labels", "print", "--csv", str(csv_path), "--out", str(tmp_path / "out"), "--api", world.url, *args])

    r = print_with("--producer", "acme")
    assert r.exit_code == 0, r.output
    assert f"客服 {BRAND_HOTLINE}" in "".join(p.read_text() for p in (tmp_path / "out").glob("*.svg"))
    r = print_with("--producer", "acme", "--hotline", "400-000-0000")  # given: it wins
    assert r.exit_code == 0 and "客服 400-000-0000" in "".join(p.read_text() for p in (tmp_path / "out").glob("*.svg"))
    r = print_with("--producer", "nobody")
    assert r.exit_code != 0 and "nobody is not registered" in r.output


@needs_v4
def test_the_certificate_cli_issues_suspends_reinstates_and_revokes(world, tmp_path):
    """`traceledger certificate …` signs with the certifier's key client-side; the read model follows each step."""
    key = tmp_path / "cqc.key"
    world.cast.keys["cqc"].save(key)
    runner = CliRunner()

    def run(*args):
        out = runner.invoke(cli, ["certificate", *args, "--api", world.url, "--key", str(key), "--json"])
        return out.exit_code, out.output

    cert = "CCC/2025099900000001"
    code, out = run("issue", "--scheme", "CCC", "--number", "2025099900000001", "--holder", "acme", "--scope", "48V 电池组",
                    "--gtin", world.gtin_v4, "--valid-from", "2025-09-01", "--valid-until", "2030-12-31", "--issuer-name-zh", "中国质量认证中心")
    assert code == 0, out

    def status() -> tuple:
        world.sync()
        with psycopg.connect(world.settings.pg_conninfo) as conn:
            return conn.execute("SELECT status, issuer, holder, scope FROM verification.certificates WHERE cert_id = %s", (cert,)).fetchone()

    assert status() == ("valid", "cqc", "acme", "48V 电池组")
    assert run("suspend", cert, "--reason", "inspection", "--until", "2026-06-30")[0] == 0 and status()[0] == "suspended"
    assert run("reinstate", cert, "--reason", "passed re-inspection")[0] == 0 and status()[0] == "valid"
    assert run("revoke", cert, "--reason", "misused")[0] == 0 and status()[0] == "revoked"
    code, out = run("reinstate", cert, "--reason", "please")  # revoked is final
    assert code != 0 and "revoked" in out and status()[0] == "revoked"
    other = tmp_path / "acme.key"
    world.cast.keys["acme"].save(other)
    forged = runner.invoke(cli, ["certificate", "issue", "--scheme", "CCC", "--number", "2025099900000002", "--holder", "acme", "--scope", "自我认证",
                                 "--valid-from", "2025-09-01", "--valid-until", "2030-12-31", "--api", world.url, "--key", str(other), "--json"])
    assert forged.exit_code != 0 and "certifier" in forged.output  # a brand cannot certify itself


@needs_v4
def test_forged_certificate_and_product_records_on_kafka_are_quarantined(world):
    """Records the ledger never accepted, put on the topic by an outsider: the projector checks certificates and products
    as it checks labels (signer's role and scheme, signature, chain) and keeps none of them; a replay changes nothing."""
    cast = world.cast

    def snapshot():
        with psycopg.connect(world.settings.pg_conninfo) as conn:
            return (conn.execute("SELECT cert_id, status, seq FROM verification.certificates ORDER BY cert_id").fetchall(),
                    conn.execute("SELECT gtin, name_zh, seq FROM verification.products ORDER BY gtin").fetchall())

    world.sync()
    before = snapshot()
    self_certified = cast.event("acme", "certificate", "CCC/2026000000000009", "CertificateIssued", {
        "scheme": "CCC", "number": "2026000000000009", "holder": "acme", "scope": "anything", "gtins": [], "gtin_prefixes": [],
        "valid_from": "2026-01-01", "valid_until": "2030-01-01", "issuer_name_zh": None, "issuer_name_en": None})
    damaged = cast.event("cqc", "certificate", CERT_OK, "CertificateRevoked", {"reason": "forged"}, advance=False)
    damaged_value = SignedEvent.from_parts(damaged.body, bytes(64)).envelope
    stolen_product = cast.event("other-producer", "product", world.gtin_v4, "ProductDescribed", {
        "name_zh": "假冒的名字", "name_en": None, "brand_zh": None, "brand_en": None, "image_sha256": None, "image_url": None,
        "authorised_sellers": []}, advance=False)
    real = [r for r in topic_records(world.settings, world.settings.label_topic) if r.key == CERT_OK.encode()]
    producer = KafkaProducer(**world.settings.kafka_client_config(), acks="all")
    try:
        for key, value in ((self_certified.event.subject, self_certified.envelope), (CERT_OK, damaged_value),
                           (world.gtin_v4, stolen_product.envelope), (CERT_OK, real[0].value)):
            producer.send(world.settings.label_topic, key=key.encode(), value=value, headers=list(real[0].headers or [])).get(timeout=30)
    finally:
        producer.close()
    world.sync()
    assert snapshot() == before
    with psycopg.connect(world.settings.pg_conninfo) as conn:
        codes = [r[0] for r in conn.execute("SELECT code FROM verification.quarantine ORDER BY id DESC LIMIT 3")]
    assert sorted(codes) == ["bad_signature", "not_authorized", "not_authorized"], codes


@needs_v4
def test_the_phone_reads_the_signed_name_in_the_call_s_language_and_the_brand_hotline(world):
    code = shortcode.to_short_code(world.labels["v4_certified"])
    en = voice(world, "call-v4-en", lang="en") and voice(world, "call-v4-en", code + "#")
    assert "Acme e-bike lithium battery" in en["prompt"] and "The brand's service line is 4 0 0 8, 2 0 1 2, 3 4." in en["phrases"]
    zh = voice(world, "call-v4-zh") and voice(world, "call-v4-zh", code + "#")
    assert PRODUCT_ZH in zh["prompt"] and "品牌客服电话：4 0 0 8，2 0 1 2，3 4。" in zh["phrases"]
    assert zh["phrases"][-1] == "感谢您的查询，再见。"
