"""Commitments in the signed body: PINs nobody can test offline, confidential fields behind salts. Pure.

PIN commitments (issue 14 item 4)
---------------------------------
``pin_commitment = SHA-256(0x05 || len(serial) || serial || len(pin) || pin || nonce)``
with a 128-bit ``nonce = HMAC-SHA256(batch_secret, "pin-nonce" || serial)[:16]``.
The producer draws one 32-byte ``batch_secret`` per batch and puts it in the
signed body only *sealed* (libsodium sealed box, X25519) to the verification
service's public key. Anyone reading the log sees the commitment and the sealed
box; without the nonce every PIN is equally consistent with them, so an offline
guess cannot be tested (``tests/test_commitments.py`` shows two PINs that fit
the same public data). The service opens the secret once per batch and checks
a PIN online (rate-limited) with one HMAC and one SHA-256 (~2 µs, against
~3.9 ms of argon2id for the v1/v2 ``pin_hash``), so PIN labels cost what plain
labels cost.

Confidential fields (issue 14 item 3)
-------------------------------------
``commit_confidential(fields)`` gives ``SHA-256(0x04 || salt(16) || avro(Confidential))``
and the salt. The commitment goes in the signed body (``sealed``), so the public
checks signatures and chains; the fields and the salt go only to entitled
readers, who check them with :func:`check_disclosure`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from ledger.encoding import codec
from ledger.errors import Refused

SECRET_BYTES = 32
NONCE_BYTES = 16  # 128 bits: guessing the nonce is as hard as guessing an AES-128 key
SALT_BYTES = 16
SEALED_SECRET_BYTES = 32 + 16 + SECRET_BYTES  # ephemeral X25519 key + MAC + secret
_PIN_DOMAIN = b"\x05"
_FIELDS_DOMAIN = b"\x04"
_NONCE_LABEL = b"pin-nonce\x00"
CONFIDENTIAL_FIELDS = ("consignee", "territory", "channel", "lat", "lon", "session")


def new_batch_secret() -> bytes:
    """A fresh per-batch PIN secret from the OS CSPRNG."""
    return os.urandom(SECRET_BYTES)


def pin_nonce(batch_secret: bytes, serial: str) -> bytes:
    """The label's 128-bit PIN nonce, derived from its batch's secret."""
    if len(batch_secret) != SECRET_BYTES:
        raise Refused("invalid_field", f"a batch secret is {SECRET_BYTES} bytes", field="pin_secret")
    return hmac.new(batch_secret, _NONCE_LABEL + serial.encode(), hashlib.sha256).digest()[:NONCE_BYTES]


def _lp(data: bytes) -> bytes:
    # Length-prefixed, so (serial, pin) pairs can never run into each other.
    return len(data).to_bytes(1, "big") + data


def pin_commitment(serial: str, pin: str, nonce: bytes) -> bytes:
    """The 32-byte commitment to ``pin`` for label ``serial`` under ``nonce``."""
    if len(nonce) != NONCE_BYTES:
        raise Refused("invalid_field", f"a PIN nonce is {NONCE_BYTES} bytes", field="nonce")
    return hashlib.sha256(_PIN_DOMAIN + _lp(serial.encode()) + _lp(pin.encode()) + nonce).digest()


def check_pin(serial: str, pin: str, nonce: bytes, commitment: bytes) -> bool:
    """True if ``pin`` is the PIN committed to (constant-time comparison)."""
    return hmac.compare_digest(pin_commitment(serial, pin, nonce), commitment)


# ---------------------------------------------------------------- sealing the batch secret


@dataclass(frozen=True)
class SealKey:
    """The verification service's X25519 key pair: batch secrets are sealed to its public half."""

    private: PrivateKey

    @property
    def public_key(self) -> bytes:
        return bytes(self.private.public_key)

    @classmethod
    def generate(cls) -> "SealKey":
        return cls(PrivateKey.generate())

    @classmethod
    def load_or_create(cls, path: Path) -> "SealKey":
        """The key in ``path`` (32 raw bytes, mode 0600), made on first use."""
        if path.exists():
            raw = path.read_bytes()
            if len(raw) != 32:
                raise Refused("invalid_key", f"{path} does not hold a 32-byte X25519 private key", field="seal-key")
            return cls(PrivateKey(raw))
        key = cls.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under a temporary name, then linked into place: two processes making it
        # at once (the projector and the CLI of one stack) end up with the one that won.
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(bytes(key.private))
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return cls.load_or_create(path)
        finally:
            os.unlink(tmp)
        return key

    def open(self, sealed: bytes) -> bytes:
        """The batch secret inside ``sealed``; refuses a box not sealed to this key."""
        try:
            secret = SealedBox(self.private).decrypt(bytes(sealed))
        except (CryptoError, TypeError, ValueError):
            raise Refused("bad_seal", "the batch's PIN secret is not sealed to this verification service's key", field="pin_secret") from None
        if len(secret) != SECRET_BYTES:
            raise Refused("bad_seal", f"the sealed PIN secret is not {SECRET_BYTES} bytes", field="pin_secret")
        return secret


def seal_secret(batch_secret: bytes, public_key: bytes) -> bytes:
    """``batch_secret`` sealed to the verification service's X25519 ``public_key`` (80 bytes)."""
    if len(public_key) != 32:
        raise Refused("invalid_key", "the verification service's seal key is 32 bytes (X25519)", field="seal-key")
    return SealedBox(PublicKey(public_key)).encrypt(batch_secret)


# ---------------------------------------------------------------- confidential fields


def _confidential_bytes(fields: dict) -> bytes:
    unknown = set(fields) - set(CONFIDENTIAL_FIELDS)
    if unknown:
        raise Refused("invalid_field", f"not a confidential field: {', '.join(sorted(unknown))}", field="sealed")
    try:
        return codec("confidential").encode({name: fields.get(name) for name in CONFIDENTIAL_FIELDS})
    except (ValueError, TypeError) as exc:
        raise Refused("invalid_field", f"confidential fields: {exc}", field="sealed") from None


def commit_confidential(fields: dict, salt: bytes | None = None) -> tuple[bytes, bytes]:
    """``(commitment, salt)`` for the confidential ``fields`` (a fresh 128-bit salt unless given)."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    if len(salt) != SALT_BYTES:
        raise Refused("invalid_field", f"a salt is {SALT_BYTES} bytes", field="salt")
    return hashlib.sha256(_FIELDS_DOMAIN + salt + _confidential_bytes(fields)).digest(), salt


def check_disclosure(commitment: bytes, salt: bytes, fields: dict) -> bool:
    """True if ``fields`` with ``salt`` are exactly what ``commitment`` commits to."""
    try:
        got, _ = commit_confidential(fields, salt)
    except Refused:
        return False
    return hmac.compare_digest(got, commitment)
