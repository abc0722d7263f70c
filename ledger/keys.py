"""Ed25519 keys of actors: key files, key ids, signing and verifying.

The ledger only ever holds *public* keys. Private keys live in key files on
the actor's side (the CLI signs client-side).

Key id: lowercase hex SHA-256 of the raw 32-byte public key.

Key file (JSON, mode 0600)::

    {"type": "traceledger-ed25519-private", "seed": "<64 hex>",
     "public_key": "<64 hex>", "key_id": "<64 hex>", "actor": "<id or null>"}

``FILE.pub`` beside it holds the same without the seed (mode 0644).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from ledger.errors import Refused

PRIVATE_TYPE = "traceledger-ed25519-private"
PUBLIC_TYPE = "traceledger-ed25519-public"


def key_id_of(public_key: bytes) -> str:
    return hashlib.sha256(public_key).hexdigest()


@dataclass(frozen=True)
class KeyPair:
    signing_key: SigningKey
    actor: str | None = None

    @classmethod
    def generate(cls, actor: str | None = None) -> "KeyPair":
        return cls(SigningKey.generate(), actor)

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self.signing_key.sign(message).signature

    def with_actor(self, actor: str) -> "KeyPair":
        return KeyPair(self.signing_key, actor)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write the private key file (0600) and ``<path>.pub``."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; refusing to overwrite a key")
        path.parent.mkdir(parents=True, exist_ok=True)
        public = {"public_key": self.public_key.hex(), "key_id": self.key_id, "actor": self.actor}
        private = {"type": PRIVATE_TYPE, "seed": bytes(self.signing_key).hex(), **public}
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(private, fh, indent=2)
            fh.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        pub_path = Path(str(path) + ".pub")
        pub_path.write_text(json.dumps({"type": PUBLIC_TYPE, **public}, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "KeyPair":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            if data.get("type") != PRIVATE_TYPE:
                raise ValueError("not a traceledger private key file")
            seed = bytes.fromhex(data["seed"])
            pair = cls(SigningKey(seed), data.get("actor"))
        except FileNotFoundError:
            raise Refused("invalid_key_file", f"key file {path} not found", field="key") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise Refused("invalid_key_file", f"{path}: {exc}", field="key") from None
        if data.get("key_id") not in (None, pair.key_id):
            raise Refused("invalid_key_file", f"{path}: key_id does not match the seed", field="key")
        return pair


def load_public_key(path: str | os.PathLike) -> bytes:
    """The public key in a key file: a ``.pub`` file or a private key file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        if data.get("type") == PRIVATE_TYPE:
            return KeyPair.load(path).public_key
        public = bytes.fromhex(data["public_key"])
        if len(public) != 32:
            raise ValueError("public_key must be 32 bytes")
    except FileNotFoundError:
        raise Refused("invalid_key_file", f"key file {path} not found", field="key") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Refused("invalid_key_file", f"{path}: {exc}", field="key") from None
    if data.get("key_id") not in (None, key_id_of(public)):
        raise Refused("invalid_key_file", f"{path}: key_id does not match the public key", field="key")
    return public


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True if ``signature`` is ``public_key``'s Ed25519 signature of ``message``."""
    if len(signature) != 64 or len(public_key) != 32:
        return False
    try:
        VerifyKey(public_key).verify(message, signature)
    except (BadSignatureError, ValueError):
        return False
    return True
