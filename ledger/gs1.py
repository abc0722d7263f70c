"""GS1 identifiers: GTIN check digits, AI (21) serials, AI (10) lots, Digital Link URIs.

Serials are unguessable: 100 bits from the OS CSPRNG rendered as 20 characters
of Crockford base32 (digits and upper-case letters without I, L, O, U), which
sits inside GS1 AI (21)'s character set (CSET 82) and its 20-character limit.
"""

from __future__ import annotations

import base64
import re
import secrets
from functools import lru_cache
from urllib.parse import quote

from ledger.errors import Refused

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
SERIAL_BITS = 100
SERIAL_LEN = 20

# GS1 General Specifications, figure 7.11-1: the 82 characters allowed in AIs 10 and 21.
_CSET82 = re.compile(r"""[!"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}""")
_DIGITS = re.compile(r"[0-9]+")


def gtin_check_digit(body: str) -> int:
    """The check digit for the digits ``body`` (a GTIN without its last digit)."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        total += int(ch) * (3 if i % 2 == 0 else 1)
    return (10 - total % 10) % 10


def normalize_gtin(gtin: str) -> str:
    """Validate a GTIN-8/12/13/14 and return it as GTIN-14; refuse bad input."""
    if not isinstance(gtin, str):
        raise Refused("invalid_gtin", "GTIN must be 8, 12, 13 or 14 digits", field="gtin")
    return _normalize_gtin_text(gtin)


@lru_cache(maxsize=1024)  # a batch of labels names one GTIN thousands of times; refusals are not cached
def _normalize_gtin_text(gtin: str) -> str:
    if not _DIGITS.fullmatch(gtin) or len(gtin) not in (8, 12, 13, 14):
        raise Refused("invalid_gtin", "GTIN must be 8, 12, 13 or 14 digits", field="gtin")
    if gtin_check_digit(gtin[:-1]) != int(gtin[-1]):
        raise Refused(
            "invalid_gtin",
            f"GTIN {gtin} has a wrong check digit (expected {gtin_check_digit(gtin[:-1])})",
            field="gtin",
        )
    return gtin.zfill(14)


def validate_serial(serial: str, field: str = "serial") -> str:
    if not isinstance(serial, str) or not _CSET82.fullmatch(serial):
        raise Refused(
            "invalid_serial",
            "serial must be 1-20 characters of GS1 AI (21)'s character set",
            field=field,
        )
    return serial


def validate_lot(lot: str, field: str = "lot") -> str:
    if not isinstance(lot, str) or not _CSET82.fullmatch(lot):
        raise Refused("invalid_lot", "lot must be 1-20 characters of GS1 AI (10)'s character set", field=field)
    return lot


# RFC 4648 base32 letters -> Crockford's, position for position.
_RFC4648_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", CROCKFORD.encode())


def new_serial() -> str:
    """A fresh unguessable serial (100 random bits, 20 Crockford base32 characters)."""
    return serial_of(secrets.randbits(SERIAL_BITS))


def serial_of(n: int) -> str:
    """The serial of the 100-bit number ``n``: its 5-bit groups, most significant first, in Crockford base32."""
    # Shifted to 104 bits (13 bytes), the top 100 are ``n`` and base32 reads them 5 at a time.
    return base64.b32encode((n << 4).to_bytes(13, "big")).translate(_RFC4648_TO_CROCKFORD)[:SERIAL_LEN].decode()


def digital_link_uri(gtin: str, serial: str, host: str = "id.traceledger.example") -> str:
    """GS1 Digital Link URI ``https://<host>/01/<GTIN-14>/21/<serial>``."""
    gtin14 = normalize_gtin(gtin)
    validate_serial(serial)
    return f"https://{host}/01/{gtin14}/21/{quote(serial, safe='')}"


def lot_key(gtin: str, lot: str) -> str:
    """Subject id of a lot: ``<GTIN-14>/<lot>`` (GTIN has fixed width, so this parses)."""
    return f"{normalize_gtin(gtin)}/{validate_lot(lot)}"


def split_lot_key(key: str) -> tuple[str, str]:
    if not isinstance(key, str) or len(key) < 16 or key[14] != "/":
        raise Refused("invalid_lot", "lot key must be '<GTIN-14>/<lot>'", field="subject")
    return normalize_gtin(key[:14]), validate_lot(key[15:])


def validate_sscc(sscc: str, field: str = "sscc") -> str:
    """An SSCC (GS1 AI 00): 18 digits, extension digit + company prefix + serial reference + check digit."""
    if not isinstance(sscc, str) or len(sscc) != 18 or not _DIGITS.fullmatch(sscc):
        raise Refused("invalid_sscc", "SSCC must be 18 digits", field=field)
    if gtin_check_digit(sscc[:-1]) != int(sscc[-1]):
        raise Refused("invalid_sscc", f"SSCC {sscc} has a wrong check digit (expected {gtin_check_digit(sscc[:-1])})", field=field)
    return sscc


def is_sscc(code: str) -> bool:
    """True for 18 digits (a container); serials from :func:`new_serial` always contain a letter or differ in length."""
    return isinstance(code, str) and len(code) == 18 and code.isdigit()


def make_sscc(extension: int, company_prefix: str, reference: int) -> str:
    """Build an SSCC from its parts, adding the check digit."""
    body = f"{extension}{company_prefix}{reference:0{16 - len(company_prefix)}d}"
    if len(body) != 17:
        raise Refused("invalid_sscc", "company prefix and reference do not fit 17 digits", field="sscc")
    return body + str(gtin_check_digit(body))
