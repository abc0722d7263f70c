"""What the consumer is told, as pure functions (no services): SMS parsing and lengths, reasons per language, who is warned."""

from __future__ import annotations

import re

import pytest

from ledger import gs1, shortcode
from ledger.errors import Refused
from projections.verdict import REASON_CODES, reason, verdict
from traceledger.shopper import pages, wording

SERIAL = next(s for s in iter(gs1.new_serial, None) if shortcode.has_short_code(s))
CODE = shortcode.to_short_code(SERIAL)
LONG_NAME = "电动自行车锂离子蓄电池组 48V 20Ah 国标新款长续航版本带快充功能适配多种车型" * 2


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" if c == " " else c for c in text)


@pytest.mark.parametrize("text, pin, lang", [
    (f"查询 {CODE}", None, "zh"),
    (f"查询：{shortcode.group(CODE)}。", None, "zh"),
    (full_width(shortcode.group(CODE)) + "。", None, "zh"),
    (f"你好，帮我查一下这个码：{'-'.join(shortcode.group(CODE).split())}，谢谢！", None, "zh"),
    (f"验证 {CODE} 12345678", "12345678", "zh"),
    (f"{CODE}，防伪码：12345678。", "12345678", "zh"),
    (f"{SERIAL.lower()}87654321", "87654321", "zh"),
    (f"查询 {SERIAL} 。", None, "zh"),
    (f"EN check {CODE} please", None, "en"),
    (f"https://id.example.cn/01/{gs1.normalize_gtin('6901234000016')}/21/{SERIAL}", None, "zh"),
], ids=["keyword", "grouped-full-stop", "full-width", "sentence", "verify-pin", "pin-after-comma", "lower-case-serial-pin",
        "serial-full-stop", "english", "link"])  # the serial is random: ids must not be, or xdist workers disagree
def test_sms_parsing_is_tolerant(text, pin, lang):
    assert wording.parse_sms(text) == (SERIAL, pin, lang)


@pytest.mark.parametrize("text, code", [
    ("", "empty"), ("你好", "unreadable"), ("1" * 33, "invalid_short_code"), (f"{SERIAL} 12", "invalid_pin"),
], ids=["empty", "unreadable", "too-long", "short-pin"])
def test_sms_that_cannot_be_read_is_refused(text, code):
    with pytest.raises(Refused) as exc:
        wording.parse_sms(text)
    assert exc.value.code == code


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("key", sorted(wording.SMS["zh"]))
def test_every_sms_reply_is_signed_and_one_segment(key, lang):
    cv = {"product": LONG_NAME, "scan_count": 12345, "first_scanned_at": "2026-12-01T02:03:04+00:00"}
    pin = {"attempts_left": 4, "retry_after": 3599, "pin_first_verified_at": "2026-12-01T02:03:04+00:00"}
    reply = wording.sms_reply(key, lang, cv, pin, mine_first="2026-12-01T02:03:04+00:00")
    assert reply.startswith(wording.SMS_SIGNATURE) and wording.ucs2_len(reply) <= 70, reply
    assert "{" not in reply


def test_reasons_are_codes_rendered_per_language():
    label = {"counterfeit": True, "recalled": True, "lot": "L2026B", "status": "holding"}
    v, reasons, codes = verdict(label, lot_recalled=True, recalled_containers=["006141411234567890"], recalled_inputs=[("C7", "cells")])
    assert v == "counterfeit" and len(reasons) == len(codes) == 5
    assert [c["code"] for c in codes] == ["flagged_counterfeit", "item_recalled", "lot_recalled", "container_recalled", "input_lot_recalled"]
    assert [c["arg"] for c in codes] == [None, None, "L2026B", "006141411234567890", "C7"]
    zh = [wording.reason_text(c, "zh") for c in codes]
    assert zh[2] == "批次 L2026B 已被召回" and all(not re.search(r"[a-z]{3,}", t) for t in zh)
    assert wording.reason_text(codes[2], "en") == "lot L2026B has been recalled"
    assert verdict(None)[2] == [{"code": "never_issued", "arg": None}]
    assert verdict({**label, "counterfeit": False, "recalled": False, "status": "decommissioned"})[2][0]["code"] == "decommissioned"
    assert wording.reason_text({"code": "something new", "arg": None}, "zh") == "此码状态异常"
    assert wording.error_text("bad_check_digit", "zh").startswith("数字码有误")
    with pytest.raises(ValueError):
        reason("not_a_code")


@pytest.mark.parametrize("lang", wording.LANGS)
def test_every_reason_code_is_worded_in_every_language(lang):
    """A reason the view can carry never falls through to "status abnormal" (the codes are the view's, not patterns)."""
    for code in REASON_CODES:
        text = wording.reason_text({"code": code, "arg": "X1"}, lang)
        assert text != wording.TEXT[lang]["r_other"] and "{" not in text


def test_the_consumer_view_takes_the_view_s_codes_not_its_sentences():
    view = {"serial": SERIAL, "verdict": "recalled", "reasons": ["wording the pages never parse"],
            "reason_codes": [{"code": "lot_recalled", "arg": "L2"}], "gtin": "0" * 14, "lot": "L2"}
    cv = wording.consumer_view(view)
    assert cv["reason_codes"] == [{"code": "lot_recalled", "arg": "L2"}]
    assert wording.consumer_view(view, lot="L9")["reason_codes"][-1] == {"code": "lot_mismatch", "arg": None}


@pytest.mark.parametrize("code, zh, en", [
    ("decommissioned", "已注销", "withdrawn"), ("integrity", "完整性", "failed a check"), ("lot_mismatch", "不符", "differs"),
])
def test_a_suspicious_sms_and_call_say_why(code, zh, en):
    cv = {"product": LONG_NAME, "reason_codes": [{"code": code, "arg": None}]}
    for lang, word in (("zh", zh), ("en", en)):
        reply = wording.sms_reply("suspicious", lang, cv)
        assert word in reply and wording.ucs2_len(reply) <= 70, reply
        assert word in wording.voice_verdict("suspicious", lang, cv)


@pytest.mark.parametrize("cv, pin, own, scanned, key", [
    ({"verdict": "genuine", "scan_count": 1}, None, {"mine": 1, "returning": False}, True, "genuine"),
    ({"verdict": "genuine", "scan_count": 1}, None, {"mine": 1, "returning": True}, True, "seen"),
    ({"verdict": "genuine", "scan_count": 3}, None, {"mine": 3, "returning": True}, True, "seen"),  # all of them mine
    ({"verdict": "genuine", "scan_count": 2}, None, {"mine": 1, "returning": True}, True, "queried"),  # someone else too
    ({"verdict": "genuine", "scan_count": 1}, None, {"mine": 0, "returning": False}, True, "genuine"),  # two apps, one network
    ({"verdict": "genuine", "scan_count": 5, "pin_protected": True}, None, None, True, "pin_needed"),
    ({"verdict": "genuine", "pin_protected": True}, {"pin_result": "first_use", "mine": True}, None, True, "pin_ok"),
    ({"verdict": "genuine", "pin_protected": True}, {"pin_result": "first_use", "mine": True, "returning": True}, None, True, "pin_seen"),
    ({"verdict": "genuine", "pin_protected": True}, {"pin_result": "already_used"}, None, True, "pin_used"),
    ({"verdict": "genuine", "pin_protected": True}, {"pin_result": "wrong"}, None, True, "pin_wrong"),
    ({"verdict": "recalled", "pin_protected": True}, None, None, True, "recalled"),
    ({"verdict": "unknown"}, None, None, True, "unknown_scanned"),
    ({"verdict": "unknown"}, None, None, False, "unknown"),
])
def test_who_is_warned(cv, pin, own, scanned, key):
    assert wording.display_key(cv, pin, own=own, scanned=scanned) == key


def test_every_page_state_has_words_colour_and_icon_in_both_languages():
    for key in pages.COLOURS:
        for lang in wording.LANGS:
            assert wording.TEXT[lang][key] and wording.TEXT[lang][key + "_sub"]
    assert set(wording.TEXT["zh"]) == set(wording.TEXT["en"])


def test_spoken_names_and_digits():
    assert wording.spoken_digits("12345678", "zh") == "1 2 3 4，5 6 7 8"
    assert wording.speakable_name("电动车电池", "en") == "this product" and wording.speakable_name("电动车电池", "zh") == "电动车电池"
    phrase = wording.voice_verdict("genuine", "en", {"product": "电动车电池"})
    assert "this product" in phrase and phrase.endswith(".")


@pytest.mark.parametrize("serial", ["H8MDA2DJ638YCX2SN30S", "YZXX8JR8GX6S8AZ0VE16", "CX5XGZD92EXDND6PVPJJ"])
def test_a_serial_holding_a_keyword_s_letters_is_read_whole(serial):
    """CX and YZ (pinyin of 查询, 验证) are keywords only as words: they also occur inside serials (found in make test)."""
    assert wording.parse_sms(f"{serial} 12345678") == (serial, "12345678", "zh")
    assert wording.parse_sms(f"cx {serial.lower()}") == (serial, None, "zh")


def test_a_suspended_or_revoked_certificate_turns_a_good_verdict_into_a_warning():
    valid, suspended, revoked = ({"status": s, "scheme": "CCC", "status_at": "2026-12-01T02:00:00+00:00"} for s in ("valid", "suspended", "revoked"))
    assert wording.certified_key("genuine", [valid]) == "genuine"
    assert wording.certified_key("genuine", [valid, suspended]) == "cert_suspended"
    assert wording.certified_key("pin_ok", [suspended, revoked]) == "cert_revoked"  # revoked first
    assert wording.certified_key("queried", [revoked]) == "cert_revoked"
    for key in ("recalled", "counterfeit", "suspicious", "pin_needed", "pin_used", "unknown"):
        assert wording.certified_key(key, [revoked]) == key  # these say more
    assert wording.certified_key("genuine", [{"cert_id": "CCC 123", "status": None}]) == "genuine"  # unsigned: no status to judge by
    cv = {"product": LONG_NAME, "certificate_warning": revoked}
    for lang in wording.LANGS:
        reply = wording.sms_reply("cert_revoked", lang, cv)
        assert "CCC" in reply and wording.ucs2_len(reply) <= 70
        assert "CCC" in wording.voice_verdict("cert_suspended", lang, cv)
