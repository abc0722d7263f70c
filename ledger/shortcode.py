"""The numeric short code of a serial: for phone keypads, SMS and the printed label.

A serial is 100 random bits written as 20 Crockford base32 characters. Its
short code is the same 100-bit number written in decimal, zero-padded to 31
digits (2^100 < 10^31), followed by one Damm check digit: 32 digits, printed
in groups of four (``1234 5678 … 9012``). Nothing is lost, so the code maps
back to the serial exactly, and no table is needed to look it up.

Why Damm: one check digit that catches every single-digit error and every
transposition of adjacent digits (the two commonest typing errors on a
keypad), with no letter "X" as ISO 7064 MOD 11-2 would need. A code with a
wrong check digit is refused before any lookup, so a typo answers "check the
digits" rather than "unknown: may be fake".

Only serials of the ledger's own form (20 Crockford characters) have a short
code; other AI (21) serials are valid on the ledger but have none.
"""

from __future__ import annotations

import re
import unicodedata

from ledger.errors import Refused
from ledger.gs1 import CROCKFORD, SERIAL_BITS, SERIAL_LEN

DIGITS = 31  # decimal digits of a 100-bit number
LENGTH = DIGITS + 1
_VALUE = {ch: i for i, ch in enumerate(CROCKFORD)}
_SERIAL = re.compile(f"[{CROCKFORD}]{{{SERIAL_LEN}}}")

# The Damm quasigroup of order 10 (weakly totally anti-symmetric).
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


def damm(digits: str) -> int:
    """The Damm check digit of a string of decimal digits."""
    interim = 0
    for ch in digits:
        interim = _DAMM[interim][ord(ch) - 48]
    return interim


def has_short_code(serial: str) -> bool:
    """True if ``serial`` is of the ledger's own 20-character Crockford form."""
    return isinstance(serial, str) and _SERIAL.fullmatch(serial) is not None


def to_short_code(serial: str) -> str:
    """The 32-digit short code of ``serial`` (no spaces)."""
    if not has_short_code(serial):
        raise Refused("invalid_serial", "only 20-character Crockford serials have a short code", field="serial")
    n = 0
    for ch in serial:
        n = (n << 5) | _VALUE[ch]
    body = str(n).zfill(DIGITS)
    return body + str(damm(body))


def group(code: str, size: int = 4) -> str:
    """A code in groups of ``size`` for printing and reading aloud."""
    return " ".join(code[i : i + size] for i in range(0, len(code), size))


def clean_digits(text: str) -> str:
    """The digits of what a person typed: full-width forms, spaces, dashes and dots dropped."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in text if ch not in " -.\t\u3000")


def from_short_code(code: str) -> str:
    """The serial a short code stands for; refuses a wrong length or check digit."""
    if not isinstance(code, str):
        raise Refused("invalid_short_code", "a short code is 32 digits", field="code")
    digits = clean_digits(code)
    if not (digits.isascii() and digits.isdigit()):
        raise Refused("invalid_short_code", "a short code has digits only", field="code")
    if len(digits) != LENGTH:
        raise Refused("invalid_short_code", f"a short code is {LENGTH} digits, this has {len(digits)}", field="code")
    if damm(digits) != 0:  # a Damm-checked number checks to 0
        raise Refused("bad_check_digit", "the short code's check digit does not match: a digit is mistyped", field="code")
    n = int(digits[:DIGITS])
    if n >> SERIAL_BITS:
        raise Refused("invalid_short_code", "this number is too large to be a short code", field="code")
    out = []
    for _ in range(SERIAL_LEN):
        out.append(CROCKFORD[n & 31])
        n >>= 5
    return "".join(reversed(out))


# Crockford's decoding is forgiving: O is 0, I and L are 1, case does not matter.
_CROCKFORD_ALIASES = str.maketrans({"O": "0", "I": "1", "L": "1"})


def normalize_serial(text: str) -> str:
    """A typed serial in canonical form: NFKC (full-width), upper case, O→0, I/L→1, separators dropped."""
    text = unicodedata.normalize("NFKC", text).upper()
    text = "".join(ch for ch in text if ch not in " -.\t\u3000")
    return text.translate(_CROCKFORD_ALIASES)
