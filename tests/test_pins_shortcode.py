"""Unit tests: scratch-off PINs (CSPRNG, slow salted hash) and the numeric short code."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import gs1, pins, shortcode
from ledger.errors import Refused

serials = st.builds(lambda n: "".join(gs1.CROCKFORD[(n >> (5 * i)) & 31] for i in reversed(range(20))), st.integers(0, 2**100 - 1))


# ---------------------------------------------------------------- PINs


def test_new_pins_are_digits_of_the_asked_length_and_vary():
    got = {pins.new_pin() for _ in range(200)}
    assert all(len(p) == 8 and p.isdigit() for p in got)
    assert len(got) > 190  # 10^8 possibilities: collisions in 200 are all but impossible
    assert len(pins.new_pin(12)) == 12
    with pytest.raises(Refused):
        pins.new_pin(4)


def test_hash_verifies_only_the_right_pin_for_the_right_label():
    serial, other = gs1.new_serial(), gs1.new_serial()
    h = pins.hash_pin(serial, "12345678")
    assert h.startswith("$argon2id$v=19$m=4096,t=2,p=1$") and "12345678" not in h
    assert len(h) <= 256  # the Issued payload's pin_hash limit
    assert pins.verify_pin(serial, "12345678", h)
    assert not pins.verify_pin(serial, "12345679", h)
    assert not pins.verify_pin(other, "12345678", h)  # bound to its label


def test_same_pin_hashes_differently_each_time():
    serial = gs1.new_serial()
    assert pins.hash_pin(serial, "00000000") != pins.hash_pin(serial, "00000000")


@pytest.mark.parametrize("bad", ["", "not a hash", "$argon2id$v=19$m=4096,t=2,p=1$garbage", "$2b$12$bcrypt", "€", None])
def test_a_malformed_stored_hash_never_matches(bad):
    assert pins.verify_pin("ABC", "12345678", bad) is False


def test_hash_cost_is_a_few_milliseconds():
    # Documents the chosen cost (t=2, m=4 MiB ≈ 4 ms); generous bound for a noisy shared machine.
    start = time.perf_counter()
    for _ in range(5):
        pins.hash_pin("S", "12345678")
    per = (time.perf_counter() - start) / 5
    assert 0.0005 < per < 0.1


@pytest.mark.parametrize("typed, want", [("12345678", "12345678"), ("１２３４ ５６７８", "12345678"), ("1234-5678", "12345678")])
def test_normalize_pin_tolerates_how_people_type(typed, want):
    assert pins.normalize_pin(typed) == want


@pytest.mark.parametrize("typed", ["123", "1234567890123", "12ab5678", "😀😀😀😀😀😀", "'; DROP TABLE x;--", "١٢٣٤٥٦٧٨"])
def test_normalize_pin_refuses_junk(typed):
    with pytest.raises(Refused) as exc:
        pins.normalize_pin(typed)
    assert exc.value.field == "pin" and typed not in exc.value.detail


# ---------------------------------------------------------------- short codes


@given(serials)
def test_short_code_round_trips_exactly(serial):
    code = shortcode.to_short_code(serial)
    assert len(code) == 32 and code.isdigit()
    assert shortcode.from_short_code(code) == serial
    assert shortcode.from_short_code(shortcode.group(code)) == serial


@settings(max_examples=30)
@given(serials)
def test_every_single_digit_typo_is_caught(serial):
    code = shortcode.to_short_code(serial)
    for i in range(len(code)):
        for d in "0123456789":
            if d != code[i]:
                with pytest.raises(Refused):
                    shortcode.from_short_code(code[:i] + d + code[i + 1 :])


@settings(max_examples=30)
@given(serials)
def test_every_adjacent_transposition_is_caught(serial):
    code = shortcode.to_short_code(serial)
    for i in range(len(code) - 1):
        if code[i] != code[i + 1]:
            swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
            with pytest.raises(Refused):
                shortcode.from_short_code(swapped)


def test_full_width_and_spaced_codes_are_read():
    code = shortcode.to_short_code("BBVA4K9SMZ8XFCT451MY")
    wide = "".join(chr(ord(c) + 0xFEE0) for c in code)
    assert shortcode.from_short_code(wide) == "BBVA4K9SMZ8XFCT451MY"
    assert shortcode.from_short_code("-".join(shortcode.group(code).split())) == "BBVA4K9SMZ8XFCT451MY"


@pytest.mark.parametrize("bad", ["1" * 33, "1" * 31, "", "abc", "9" * 31 + "0", "😀" * 32])
def test_bad_short_codes_are_refused(bad):
    with pytest.raises(Refused):
        shortcode.from_short_code(bad)


def test_too_large_number_is_refused_even_with_a_good_check_digit():
    body = "9" * 31
    with pytest.raises(Refused) as exc:
        shortcode.from_short_code(body + str(shortcode.damm(body)))
    assert exc.value.code == "invalid_short_code"


def test_only_ledger_form_serials_have_a_short_code():
    assert not shortcode.has_short_code("HTTP1")
    with pytest.raises(Refused):
        shortcode.to_short_code("HTTP1")


def test_normalize_serial_is_forgiving_like_crockford():
    assert shortcode.normalize_serial(" bbva-4k9s mz8x fct4 5lmy ") == "BBVA4K9SMZ8XFCT451MY"
    assert shortcode.normalize_serial("ＢＢＶＡ４Ｋ９ＳＭＺ８ＸＦＣＴ４５１ＭＹ") == "BBVA4K9SMZ8XFCT451MY"
    assert shortcode.normalize_serial("o0Ii") == "0011"
