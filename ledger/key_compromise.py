"""Labels issued with a key declared compromised since T answer ``suspicious`` (issue 15 item 7).

event.v4's ``ActorKeyCompromised {key_id, since}`` (a registrar or regulator, on the
producer's actor chain) says a key was in other hands from ``since`` on. From the
declaration the key signs nothing more (the ledger refuses it); what it signed
before the declaration stays on the log, and a label whose ``Issued`` it signed at
or after ``since`` may be a thief's: its consumer view answers ``suspicious``
instead of ``genuine`` (recalled and counterfeit stay what they are). Labels the
key issued before ``since`` stay genuine.

:class:`CompromiseCheck` asks the write model (the registry every signed request
reads): the producer's actor state, cached for :data:`CACHE_SECONDS` (a declaration
takes effect within that), and only for a producer with a compromised key the
label's first stored event (its ``Issued``, whose key and time
:func:`ledger.lifecycle.signed_while_compromised` judges). So the common case, a
producer with no compromised key, costs no query per view after the first.
:func:`mark` is the pure step the consumer view applies.

Not covered: labels issued in a batch (event.v3 ``BatchIssued``) have no ``Issued``
of their own; their batch's key is not looked up yet.
"""

from __future__ import annotations

import time
from datetime import datetime

from ledger.events import decode_signed
from ledger.lifecycle import ActorState, signed_while_compromised
from ledger.service import Ledger
from ledger.store import chain_id

CACHE_SECONDS = 5.0
REASON = "the key that issued this code was declared compromised from {since}: the item may be a copy made with a stolen key"


class CompromiseCheck:
    """When a label was issued with a key compromised at the time (None: it was not)."""

    def __init__(self, ledger: Ledger, cache_seconds: float = CACHE_SECONDS):
        self.ledger, self.cache_seconds = ledger, cache_seconds
        self._actors: dict[str, tuple[float, ActorState | None]] = {}

    def actor(self, actor_id: str) -> ActorState | None:
        now = time.monotonic()
        hit = self._actors.get(actor_id)
        if hit is None or now - hit[0] > self.cache_seconds:
            hit = (now, self.ledger.actor(actor_id))
            self._actors[actor_id] = hit
        return hit[1]

    def needs_lookup(self, producer: str | None) -> bool:
        """False when the cache already tells that ``producer`` has no compromised key (no I/O: the event loop may ask)."""
        hit = self._actors.get(producer) if producer else None
        if hit is None or time.monotonic() - hit[0] > self.cache_seconds:
            return producer is not None
        return hit[1] is not None and bool(hit[1].compromised)

    def since(self, serial: str, producer: str | None) -> datetime | None:
        """``since`` of the compromised key that issued ``serial``, if it issued it at or after then."""
        actor = self.actor(producer) if producer else None
        if actor is None or not actor.compromised:
            return None
        stored = self.ledger.app.recorder.select_events(chain_id("label", serial), limit=1)
        if not stored:
            return None
        event = decode_signed(*self.ledger.app.signed_parts(stored[0])).event
        if event.kind != "Issued" or event.actor != actor.actor_id:
            return None
        return signed_while_compromised(event, actor)


def mark(view: dict, since: datetime | None) -> dict:
    """``view`` answering ``suspicious`` when its label was issued with a compromised key (a genuine one only)."""
    if since is None or view.get("verdict") != "genuine":
        return view
    return {**view, "verdict": "suspicious", "reasons": [*view.get("reasons", []), REASON.format(since=since.isoformat())],
            "key_compromised_since": since.isoformat()}
