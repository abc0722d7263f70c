"""Scratch-off PINs: generated from the OS CSPRNG, stored only as a salted slow hash.

A double-layer label hides a short digit PIN under a scratch-off coating. The
producer generates the PINs at issuance (client-side), puts only
:func:`hash_pin`'s result in the signed ``Issued`` event, and hands the PINs in
clear to the printer. The API checks a presented PIN with :func:`verify_pin`.

Why these parameters
--------------------
``pin_hash`` travels on Kafka, which every party reads, so anyone holding the
topic can guess a label's PIN offline; the hash cost per guess is the whole
defence against that, while issuance pays it once per label. Measured on the
project's 2-core machines (one core, PyNaCl 1.6 / libsodium argon2id):

==============================  =========  =======================================
parameters                      per hash   100,000 labels
==============================  =========  =======================================
scrypt n=2^11 r=8 (2 MiB)       ~5.2 ms    ~520 core-s
argon2id t=1 m=8 MiB            ~7.2 ms    ~720 core-s
**argon2id t=2 m=4 MiB**        ~3.9 ms    ~390 core-s (~3.5 min on 2 cores)
argon2id t=2 m=8 MiB            ~11.5 ms   ~1150 core-s
==============================  =========  =======================================

We use argon2id (memory-hard, so GPUs gain less than on a plain hash) with
``t=2, m=4 MiB``: issuing 100,000 PIN labels costs about three and a half
minutes of hashing on two cores (the hashing runs in threads; libsodium drops
the GIL), and guessing one label's 8-digit PIN offline costs on average
5·10^7 × 3.9 ms ≈ 2.3 core-days: far more than a copied label is worth.
Ten digits (``--pin-digits 10``) make that ×100 at no issuance cost. The
online path is bounded by the per-label and per-client rate limits.

The hashed message is ``serial ":" pin``, so a hash is bound to its label:
copying one label's ``pin_hash`` onto another serial does not carry its PIN.
Labels issued in a batch (event.v3) carry a PIN *commitment* instead
(:mod:`ledger.commitments`: SHA-256 over serial, PIN and a 128-bit nonce only the
verification service can derive), which nobody can test offline and which costs
~2 µs to make; :func:`verify_pin` checks both forms.

The stored string is libsodium's PHC form ``$argon2id$v=19$m=…,t=…,p=1$salt$hash``,
so verification reads the parameters from the string and they can be raised
later without breaking labels already issued.
"""

from __future__ import annotations

import os
import secrets
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id

from ledger import commitments
from ledger.errors import Refused

DEFAULT_DIGITS = 8
MIN_DIGITS, MAX_DIGITS = 6, 12
OPSLIMIT = 2
MEMLIMIT = 4 * 1024 * 1024
PREFIX = "$argon2id$"
COMMITMENT_PREFIX = "pc1$"


def new_pin(digits: int = DEFAULT_DIGITS) -> str:
    """A fresh PIN of ``digits`` decimal digits, uniform, from the OS CSPRNG."""
    if not MIN_DIGITS <= digits <= MAX_DIGITS:
        raise Refused("invalid_option", f"PINs have {MIN_DIGITS}-{MAX_DIGITS} digits", field="pin-digits")
    return str(secrets.randbelow(10**digits)).zfill(digits)


def _message(serial: str, pin: str) -> bytes:
    return f"{serial}:{pin}".encode()


def hash_pin(serial: str, pin: str) -> str:
    """The salted slow hash of ``pin`` for label ``serial`` (a PHC string, ~90 chars)."""
    return argon2id.str(_message(serial, pin), opslimit=OPSLIMIT, memlimit=MEMLIMIT).decode("ascii")


def normalize_pin(text: str) -> str:
    """The digits a person typed: full-width digits, spaces and dashes tolerated.

    Refuses anything that is not 6-12 digits after that (never echoing it back:
    it may be a real PIN).
    """
    if not isinstance(text, str):
        raise Refused("invalid_pin", "the PIN must be digits", field="pin")
    cleaned = unicodedata.normalize("NFKC", text)
    cleaned = "".join(ch for ch in cleaned if ch not in " -\t")
    if not (cleaned.isascii() and cleaned.isdigit() and MIN_DIGITS <= len(cleaned) <= MAX_DIGITS):
        raise Refused("invalid_pin", f"the PIN is {MIN_DIGITS}-{MAX_DIGITS} digits", field="pin")
    return cleaned


def commitment_record(nonce: bytes | None, commitment: bytes) -> str:
    """What the read model keeps for a batch label's PIN (event.v3): ``pc1$<nonce>$<commitment>``, hex.

    The nonce comes from the batch's sealed secret, opened by the verification service;
    it is never on the public log. Without it (``None``: the secret could not be opened)
    the label still shows as PIN-protected and no PIN checks.
    """
    return f"{COMMITMENT_PREFIX}{nonce.hex() if nonce else ''}${commitment.hex()}"


def _verify_commitment(serial: str, pin: str, record: str) -> bool:
    try:
        nonce_hex, commitment_hex = record[len(COMMITMENT_PREFIX):].split("$")
        nonce, commitment = bytes.fromhex(nonce_hex), bytes.fromhex(commitment_hex)
    except ValueError:
        return False
    if len(nonce) != commitments.NONCE_BYTES or len(commitment) != 32:
        return False
    return commitments.check_pin(serial, pin, nonce, commitment)


def verify_pin(serial: str, pin: str, pin_hash: str) -> bool:
    """True if ``pin`` is the PIN of label ``serial`` whose stored hash is ``pin_hash``.

    An event.v1/v2 ``pin_hash`` costs one slow hash (~4 ms); call it off the event loop.
    A batch label's commitment record (:func:`commitment_record`) costs ~2 µs. A
    malformed ``pin_hash`` (not one of ours) never matches.
    """
    if isinstance(pin_hash, str) and pin_hash.startswith(COMMITMENT_PREFIX):
        return _verify_commitment(serial, pin, pin_hash)
    if not isinstance(pin_hash, str) or not pin_hash.startswith(PREFIX):
        return False
    try:
        return argon2id.verify(pin_hash.encode("ascii"), _message(serial, pin))
    except (nacl.exceptions.InvalidkeyError, nacl.exceptions.CryptoError, UnicodeEncodeError, ValueError):
        return False


def pins_for(serials: Iterable[str], digits: int = DEFAULT_DIGITS, *, workers: int | None = None) -> dict[str, tuple[str, str]]:
    """A fresh PIN and its hash for each serial: ``{serial: (pin, pin_hash)}``.

    Hashes in a thread per core: libsodium releases the GIL, so a batch of
    1,000 takes ~2 s on two cores instead of ~4 s.
    """
    serials = list(serials)
    chosen = [new_pin(digits) for _ in serials]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        hashes = list(pool.map(hash_pin, serials, chosen))
    return {s: (p, h) for s, p, h in zip(serials, chosen, hashes)}
