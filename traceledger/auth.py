"""Who is asking: requests signed with a registered actor's Ed25519 key.

Producers and regulators authenticate to the API with the same key they sign
ledger events with, so there are no passwords or tokens to issue, rotate or
leak separately: registering, rotating or revoking a key on the ledger is
also what grants, moves or withdraws API access.

A signed request carries one header::

    Authorization: TraceLedger-Ed25519 actor="acme", ts="1795830000", sig="<base64url>"

``sig`` is Ed25519 over ``traceledger-request\\n<METHOD>\\n<path?query>\\n<ts>``
by the actor's *current* key. A signature is good for ``MAX_SKEW_SECONDS``
either side of the server's clock: long enough for a slow phone, short enough
that a leaked header soon expires. Within that window a header can be
replayed for the same method and path, which is why only reads and
idempotent, ledger-checked writes accept it.

Shared by the client (signing) and the API (checking; its FastAPI dependency
is :func:`traceledger.api.dependencies.caller`), so it imports only the ledger.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from dataclasses import dataclass
from typing import Callable

from ledger.errors import Refused
from ledger.keys import KeyPair, verify_signature
from ledger.lifecycle import ActorState

SCHEME = "TraceLedger-Ed25519"
MAX_SKEW_SECONDS = 300
_PARAM = re.compile(r'\s*([a-z]+)="([^"]*)"\s*')


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


def request_message(method: str, target: str, ts: int) -> bytes:
    """The bytes a request signature covers. ``target`` is the path plus ``?query`` if any."""
    return f"traceledger-request\n{method.upper()}\n{target}\n{ts}".encode()


def authorization_header(key: KeyPair, method: str, target: str, *, now: float | None = None) -> str:
    """The ``Authorization`` value for one request signed by ``key`` (which must name its actor)."""
    if not key.actor:
        raise ValueError("the key must name its actor")
    ts = int(now if now is not None else time.time())
    sig = base64.urlsafe_b64encode(key.sign(request_message(method, target, ts))).decode().rstrip("=")
    return f'{SCHEME} actor="{key.actor}", ts="{ts}", sig="{sig}"'


def parse_header(value: str) -> tuple[str, int, bytes]:
    """``(actor, ts, signature)`` from an Authorization value; refuse anything malformed."""
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
        actor, ts = params["actor"], int(params["ts"])
        sig = base64.urlsafe_b64decode(params["sig"] + "=" * (-len(params["sig"]) % 4))
    except (KeyError, ValueError, binascii.Error):
        raise Refused("unauthenticated", "Authorization needs actor, ts (unix seconds) and sig (base64url)", field="authorization") from None
    if len(sig) != 64:
        raise Refused("unauthenticated", "sig must be a 64-byte Ed25519 signature", field="authorization")
    return actor, ts, sig


def verify_request(
    header: str,
    method: str,
    target: str,
    actors: Callable[[str], ActorState | None],
    *,
    now: float | None = None,
) -> Caller:
    """The caller a signed request comes from, or :class:`Refused` (code ``unauthenticated``)."""
    actor_id, ts, sig = parse_header(header)
    now = time.time() if now is None else now
    if abs(now - ts) > MAX_SKEW_SECONDS:
        raise Refused("unauthenticated", f"request signature is older or newer than {MAX_SKEW_SECONDS} s; check the clock", field="authorization")
    actor = actors(actor_id)
    if actor is None or actor.revoked:
        raise Refused("unauthenticated", f"actor {actor_id} is not an active registered actor", field="authorization")
    if not verify_signature(actor.public_key, request_message(method, target, ts), sig):
        raise Refused("unauthenticated", f"signature does not verify with {actor_id}'s current key", field="authorization")
    return Caller(actor_id=actor.actor_id, role=actor.role)


def require(caller: Caller | None, *roles: str) -> Caller:
    """Refuse unless a caller signed the request (in one of ``roles``, if given)."""
    if caller is None:
        raise Refused("unauthenticated", f"sign the request with a registered key ({SCHEME})", field="authorization")
    if roles and caller.role not in roles:
        raise Refused("forbidden", f"a {caller.role} may not do this; needs {' or '.join(roles)}", field="authorization")
    return caller
