"""Signed checkpoints of the global log, as transparency-dev signed notes. Pure.

A checkpoint says "the log of ``origin`` has ``size`` leaves and this root".
Its text follows the transparency-dev checkpoint format, with the time as an
extension line, and it is signed as a ``golang.org/x/mod/sumdb/note`` note::

    traceledger.example/log            <- origin
    1234                               <- tree size, decimal
    mRnN1q3o...=                       <- base64 of the 32-byte root hash
    timestamp 1718000000123            <- extension: unix milliseconds
                                       <- blank line ends the signed text
    — traceledger.example/log AbCd...  <- base64(key hash (4 bytes) || Ed25519 signature)

The key hash is the first 4 bytes of SHA-256(name || "\\n" || 0x01 || public key),
as in the note format, so the same note verifies with Go tooling given the
verifier key string :func:`verifier_key` returns. Parsing refuses anything
malformed loudly (:class:`CheckpointError` names what is wrong); it never
guesses.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from dataclasses import dataclass

from ledger.keys import KeyPair, key_id_of, verify_signature

ALG_ED25519 = b"\x01"
SIG_PREFIX = "\u2014 "  # EM DASH + space, as the note format wants
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_TIMESTAMP = re.compile(r"timestamp (0|[1-9][0-9]{0,18})")
_NAME = re.compile(r"[^\s+]+")
MAX_NOTE = 16 * 1024


class CheckpointError(ValueError):
    """A checkpoint note that is malformed or whose signature does not verify."""


def note_key_hash(name: str, public_key: bytes) -> bytes:
    """4-byte key hash of an Ed25519 note key (sumdb/note ``keyHash``)."""
    return hashlib.sha256(name.encode() + b"\n" + ALG_ED25519 + public_key).digest()[:4]


def verifier_key(name: str, public_key: bytes) -> str:
    """The note verifier key string ``<name>+<hash hex>+<base64(0x01||key)>``."""
    return f"{name}+{note_key_hash(name, public_key).hex()}+{base64.b64encode(ALG_ED25519 + public_key).decode()}"


def parse_verifier_key(vkey: str) -> tuple[str, bytes]:
    """(name, raw public key) from a verifier key string; refuses a bad one."""
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3 or not _NAME.fullmatch(parts[0]):
        raise CheckpointError("verifier key must be <name>+<hash>+<base64 key>")
    try:
        raw = base64.b64decode(parts[2], validate=True)
    except binascii.Error:
        raise CheckpointError("verifier key: key is not base64") from None
    if len(raw) != 33 or raw[:1] != ALG_ED25519:
        raise CheckpointError("verifier key: not an Ed25519 key")
    if note_key_hash(parts[0], raw[1:]).hex() != parts[1]:
        raise CheckpointError("verifier key: key hash does not match name and key")
    return parts[0], raw[1:]


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    timestamp_ms: int
    note: str = ""  # the full signed note, when known
    key_id: str = ""  # traceledger key id (SHA-256 hex of the public key) that signed it

    def body(self) -> str:
        """The signed text (ends with a newline)."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\ntimestamp {self.timestamp_ms}\n"

    def as_dict(self) -> dict:
        """The API form: ``{"size", "root" (hex), "timestamp", "note", "key_id", "origin"}``."""
        return {
            "origin": self.origin,
            "size": self.size,
            "root": self.root.hex(),
            "timestamp": self.timestamp_ms,
            "note": self.note,
            "key_id": self.key_id,
        }


def sign_checkpoint(key: KeyPair, origin: str, size: int, root: bytes, timestamp_ms: int | None = None) -> Checkpoint:
    """A checkpoint of (size, root) signed with the log key, named by ``origin``."""
    if not _NAME.fullmatch(origin):
        raise CheckpointError(f"origin {origin!r} must be non-empty without spaces or '+'")
    if size < 0 or len(root) != 32:
        raise CheckpointError("checkpoint needs size >= 0 and a 32-byte root")
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    cp = Checkpoint(origin, size, root, ts)
    text = cp.body()
    sig = key.sign(text.encode())
    line = f"{SIG_PREFIX}{origin} {base64.b64encode(note_key_hash(origin, key.public_key) + sig).decode()}\n"
    return Checkpoint(origin, size, root, ts, note=text + "\n" + line, key_id=key.key_id)


def parse_checkpoint(note: str | bytes, public_key: bytes, *, origin: str | None = None) -> Checkpoint:
    """Parse and verify a signed checkpoint note against the log's public key.

    ``origin`` (if given) must match the note's origin line. Raises
    :class:`CheckpointError` naming the first thing wrong.
    """
    if isinstance(note, bytes):
        if len(note) > MAX_NOTE:
            raise CheckpointError(f"note is longer than {MAX_NOTE} bytes")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise CheckpointError("note is not UTF-8") from None
    if len(note) > MAX_NOTE:
        raise CheckpointError(f"note is longer than {MAX_NOTE} characters")
    if "\r" in note or any(ord(c) < 0x20 and c != "\n" for c in note):
        raise CheckpointError("note contains control characters")
    if not note.endswith("\n"):
        raise CheckpointError("note does not end with a newline")
    split = note.find("\n\n")
    if split < 0:
        raise CheckpointError("note has no blank line before its signatures")
    text, sigs = note[: split + 1], note[split + 2 :]
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("checkpoint needs origin, size and root lines")
    cp_origin, size_s, root_s, extensions = lines[0], lines[1], lines[2], lines[3:]
    if not cp_origin or cp_origin != cp_origin.strip():
        raise CheckpointError("checkpoint origin line is empty or padded")
    if origin is not None and cp_origin != origin:
        raise CheckpointError(f"checkpoint is for origin {cp_origin!r}, expected {origin!r}")
    if not _DECIMAL.fullmatch(size_s):
        raise CheckpointError(f"checkpoint size {size_s!r} is not a decimal number")
    try:
        root = base64.b64decode(root_s, validate=True)
    except binascii.Error:
        raise CheckpointError("checkpoint root is not base64") from None
    if len(root) != 32 or base64.b64encode(root).decode() != root_s:
        raise CheckpointError("checkpoint root must be the canonical base64 of 32 bytes")
    stamps = [m for m in (_TIMESTAMP.fullmatch(x) for x in extensions) if m]
    if len(stamps) != 1:
        raise CheckpointError("checkpoint must carry exactly one 'timestamp <unix ms>' extension line")
    if any(not x for x in extensions):
        raise CheckpointError("checkpoint has an empty extension line")
    # Signatures: every line well-formed; ours must be among them and verify.
    expected_hash = note_key_hash(cp_origin, public_key)
    verified = False
    sig_lines = sigs.split("\n")
    if sig_lines[-1] != "" or len(sig_lines) < 2:
        raise CheckpointError("note has no signature lines")
    for line in sig_lines[:-1]:
        if not line.startswith(SIG_PREFIX):
            raise CheckpointError(f"malformed signature line {line[:40]!r}")
        fields = line[len(SIG_PREFIX) :].split(" ")
        if len(fields) != 2 or not _NAME.fullmatch(fields[0]):
            raise CheckpointError(f"malformed signature line {line[:40]!r}")
        try:
            blob = base64.b64decode(fields[1], validate=True)
        except binascii.Error:
            raise CheckpointError("signature is not base64") from None
        if len(blob) < 5:
            raise CheckpointError("signature is too short")
        if fields[0] == cp_origin and blob[:4] == expected_hash:
            if not verify_signature(public_key, text.encode(), blob[4:]):
                raise CheckpointError(f"checkpoint signature by {cp_origin} does not verify: forged or altered")
            verified = True
    if not verified:
        raise CheckpointError(f"checkpoint carries no signature by the log key of {cp_origin}")
    return Checkpoint(cp_origin, int(size_s), root, int(stamps[0].group(1)), note=note, key_id=key_id_of(public_key))
