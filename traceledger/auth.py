"""Who is asking: requests signed with a registered actor's Ed25519 key.

Producers and regulators authenticate to the API with the same key they sign
ledger events with, so there are no passwords or tokens to issue, rotate or
leak separately: registering, rotating or revoking a key on the ledger is
also what grants, moves or withdraws API access.

A signed request carries one header::

    Authorization: TraceLedger-Ed25519 actor="acme", ts="1795830000", nonce="<random>", sig="<base64url>"

``sig`` is Ed25519 over ``traceledger-request\\n<METHOD>\\n<path?query>\\n<ts>\\n<nonce>``
by the actor's *current* key. A signature is good from ``MAX_SKEW_SECONDS``
before the server's clock to ``MAX_FUTURE_SECONDS`` after it: long enough for a
slow phone or a clock a little ahead, short enough that a leaked header soon
expires. ``nonce`` (16-64 base64url characters, fresh per request) is signed
too, and the API remembers each actor's nonces until their header expires
(:mod:`ledger.request_nonces`): a header replayed within its window is refused
(``replayed_request``, 401), so a captured request cannot be sent twice.

Shared by the client (signing) and the API (checking; its FastAPI dependency
is :func:`traceledger.api.dependencies.caller`), so it imports only the ledger.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from dataclasses import dataclass
from typing import Callable, NamedTuple

from ledger.errors import Refused
from ledger.keys import KeyPair, verify_signature
from ledger.lifecycle import ActorState

SCHEME = "TraceLedger-Ed25519"
MAX_SKEW_SECONDS = 300  # how old a signed request may be
MAX_FUTURE_SECONDS = 60  # how far ahead of the server's clock (a header dated later is refused)
# The problem codes a signed request is refused with as 401 (not authenticated).
UNAUTHENTICATED_CODES = frozenset({"unauthenticated", "replayed_request"})
_PARAM = re.compile(r'\s*([a-z]+)="([^"]*)"\s*')
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")


class SignedHeader(NamedTuple):
    """The parts of a signed request's Authorization value."""

    actor: str
    ts: int
    nonce: str
    sig: bytes

    @property
    def expires_at(self) -> int:
        """Unix time after which this header is refused as stale (its nonce can be forgotten then)."""
        return self.ts + MAX_SKEW_SECONDS


@dataclass(frozen=True)
class Caller:
    """An authenticated actor: who, and in which role."""

    actor_id: str
    role: str

    @property
    def is_regulator(self) -> bool:
        return self.role == "regulator"

    def may_see_producer(self, producer: str | None) -> bool:
        """Regulators see everything; a producer sees what concerns its own labels."""
        return self.is_regulator or (self.role == "producer" and producer == self.actor_id)


def request_message(method: str, target: str, ts: int, nonce: str) -> bytes:
    """The bytes a request signature covers. ``target`` is the path plus ``?query`` if any."""
    return f"traceledger-request\n{method.upper()}\n{target}\n{ts}\n{nonce}".encode()


def authorization_header(key: KeyPair, method: str, target: str, *, now: float | None = None, nonce: str | None = None) -> str:
    """The ``Authorization`` value for one request signed by ``key`` (which must name its actor); a fresh nonce unless given."""
    if not key.actor:
        raise ValueError("the key must name its actor")
    ts = int(now if now is not None else time.time())
    nonce = nonce or secrets.token_urlsafe(18)
    sig = base64.urlsafe_b64encode(key.sign(request_message(method, target, ts, nonce))).decode().rstrip("=")
    return f'{SCHEME} actor="{key.actor}", ts="{ts}", nonce="{nonce}", sig="{sig}"'


def parse_header(value: str) -> SignedHeader:
    """The parts of an Authorization value; refuse anything malformed."""
    scheme, _, rest = value.partition(" ")
    if scheme != SCHEME:
        raise Refused("unauthenticated", f"Authorization must use the {SCHEME} scheme", field="authorization")
    params = {}
    for part in rest.split(","):
        match = _PARAM.fullmatch(part)
        if not match:
            raise Refused("unauthenticated", "Authorization parameters must be name=\"value\" pairs", field="authorization")
        params[match.group(1)] = match.group(2)
    try:
        actor, ts, nonce = params["actor"], int(params["ts"]), params["nonce"]
        sig = base64.urlsafe_b64decode(params["sig"] + "=" * (-len(params["sig"]) % 4))
    except (KeyError, ValueError, binascii.Error):
        raise Refused("unauthenticated", "Authorization needs actor, ts (unix seconds), nonce and sig (base64url)", field="authorization") from None
    if len(sig) != 64:
        raise Refused("unauthenticated", "sig must be a 64-byte Ed25519 signature", field="authorization")
    if not _NONCE.fullmatch(nonce):
        raise Refused("unauthenticated", "nonce must be 16-64 base64url characters, fresh for each request", field="authorization")
    return SignedHeader(actor, ts, nonce, sig)


def verify_request(
    header: str,
    method: str,
    target: str,
    actors: Callable[[str], ActorState | None],
    *,
    now: float | None = None,
) -> Caller:
    """The caller a signed request comes from, or :class:`Refused` (code ``unauthenticated``).

    Whether its nonce was seen before is the API's check (:func:`traceledger.api.dependencies.caller`),
    made after this one so only a verified signature can spend a nonce.
    """
    actor_id, ts, nonce, sig = parse_header(header)
    now = time.time() if now is None else now
    if now - ts > MAX_SKEW_SECONDS:
        raise Refused("unauthenticated", f"request signature is older than {MAX_SKEW_SECONDS} s; check the clock", field="authorization")
    if ts - now > MAX_FUTURE_SECONDS:
        raise Refused("unauthenticated", f"request signature is dated more than {MAX_FUTURE_SECONDS} s in the future; check the clock",
                      field="authorization")
    actor = actors(actor_id)
    if actor is None or actor.revoked:
        raise Refused("unauthenticated", f"actor {actor_id} is not an active registered actor", field="authorization")
    if not verify_signature(actor.public_key, request_message(method, target, ts, nonce), sig):
        raise Refused("unauthenticated", f"signature does not verify with {actor_id}'s current key", field="authorization")
    return Caller(actor_id=actor.actor_id, role=actor.role)


def require(caller: Caller | None, *roles: str) -> Caller:
    """Refuse unless a caller signed the request (in one of ``roles``, if given)."""
    if caller is None:
        raise Refused("unauthenticated", f"sign the request with a registered key ({SCHEME})", field="authorization")
    if roles and caller.role not in roles:
        raise Refused("forbidden", f"a {caller.role} may not do this; needs {' or '.join(roles)}", field="authorization")
    return caller
