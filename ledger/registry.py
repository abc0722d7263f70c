"""Who could sign what, when: actors replayed from their signed events.

Readers of Kafka (the verification projector, the auditor) rebuild the actor
registry from the actor topic and ask for an actor *as of* a log index, so a
key revoked later still vouches for what it signed before, and never after.
Every actor event is itself checked with the shared lifecycle rules.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Protocol

from ledger.errors import Refused
from ledger.events import SignedEvent
from ledger.keys import verify_signature
from ledger.lifecycle import ActorState, authorize, fold, is_bootstrap, signer_of


class ActorRegistry:
    """``trust_anchor``: the key id the ledger's founding registrar must have
    (a reader that pins it cannot be handed a whole forged history)."""

    def __init__(self, trust_anchor: str | None = None) -> None:
        # actor id -> ([log indexes], [states]) in log order
        self._history: dict[str, tuple[list[int], list[ActorState]]] = {}
        self.size = 0
        self.trust_anchor = trust_anchor

    def as_of(self, actor_id: str, log_index: int | None = None) -> ActorState | None:
        """The actor's state just before ``log_index`` (latest if None)."""
        entry = self._history.get(actor_id)
        if entry is None:
            return None
        indexes, states = entry
        if log_index is None:
            return states[-1]
        i = bisect_right(indexes, log_index - 1)
        return states[i - 1] if i else None

    def lookup(self, log_index: int | None):
        return lambda actor_id: self.as_of(actor_id, log_index)

    def public_keys(self) -> dict[str, bytes]:
        """Key id -> public key of every key any actor has had (whether valid at a given
        index is :meth:`as_of`'s business)."""
        return {s.key_id: s.public_key for _, states in self._history.values() for s in states}

    def apply(self, signed: SignedEvent, log_index: int) -> ActorState:
        """Verify and apply one actor event; raise :class:`Refused` if illegal."""
        e = signed.event
        if e.subject_type != "actor":
            raise Refused("invalid_field", "not an actor event", field="subject_type")
        current = self.as_of(e.subject, log_index)
        if current is not None and e.seq <= current.seq:
            raise Refused("duplicate", f"actor {e.subject} event {e.seq} already applied", field="seq")
        if is_bootstrap(e) and not self._history:
            if self.trust_anchor and e.key_id != self.trust_anchor:
                raise Refused(
                    "untrusted_registrar",
                    f"the ledger's founding registrar signs with key {e.key_id[:16]}…, not the pinned {self.trust_anchor[:16]}…",
                    field="key_id",
                )
            signer = fold(None, e, signed.hash)
        else:
            signer = signer_of(e, self.lookup(log_index))
        if not verify_signature(signer.public_key, signed.body, signed.signature):
            raise Refused("bad_signature", "actor event signature does not verify", field="signature")
        authorize(current, e, signer, self.lookup(log_index))
        new = fold(current, e, signed.hash)
        indexes, states = self._history.setdefault(e.subject, ([], []))
        indexes.append(log_index)
        states.append(new)
        self.size += 1
        return new


class ActorSource(Protocol):
    """What a projection needs of the actors: a registry, and a way to read newer actor events.

    The Kafka-fed implementation is ``consumers.actor_feed.ActorFeed``; projections
    depend only on this shape, so they never import a Kafka client.
    """

    registry: ActorRegistry

    def catch_up(self) -> int:
        """Apply actor events published since the last call; return how many."""
        ...
