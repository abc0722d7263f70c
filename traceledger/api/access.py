"""Who may read what through the API: the README's "Who reads what" table, as code.

Public (no signature): signed checkpoints, leaf hashes, inclusion and
consistency proofs, a label's consumer view and its public proof bundle (leaf
hashes and proofs only), the actor directory (ids, roles, public keys: what
anyone needs to check a signature). Everything else needs a signed request
(:mod:`traceledger.auth`; 401 problem+json without one):

- a regulator reads everything;
- a producer reads every event on the chains it owns: its labels, lots,
  containers and the alerts about its products (whoever signed them);
- every actor reads the events it signed itself, and its own actor chain.

A subject's owner is read from the write model (``producer`` of the label's,
lot's, container's or alert's state), never from the request. A signed caller
asking for a subject it may not read gets 403 (``forbidden``), not 404: which
serials, lots and containers exist is no secret (the public consumer view
answers ``unknown`` for a serial never issued, and SSCCs and lots are printed on
the goods), so hiding existence would buy nothing and would make a wrong key
look like a wrong serial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from ledger.errors import Refused
from ledger.events import SignedEvent
from ledger.service import Ledger
from ledger.store import chain_id
from traceledger.auth import Caller

Subject = tuple[str, str]  # (subject type, subject)


def owners(ledger: Ledger, subjects: Iterable[Subject]) -> dict[Subject, str | None]:
    """The owning producer of each subject (None: unknown subject, or one nobody owns), one write-model query."""
    wanted = [s for s in dict.fromkeys(subjects) if s[0] != "actor"]
    chains = ledger.app.load_chains(chain_id(t, s) for t, s in wanted)
    out: dict[Subject, str | None] = {}
    for subject_type, subject in wanted:
        chain = chains.get(chain_id(subject_type, subject))
        out[(subject_type, subject)] = getattr(chain.state, "producer", None) if chain is not None else None
    return out


@dataclass
class Reader:
    """One signed caller's rights for one request (owners looked up once per subject)."""

    caller: Caller
    ledger: Ledger
    known: dict[Subject, str | None] = field(default_factory=dict)

    @property
    def sees_everything(self) -> bool:
        return self.caller.is_regulator

    def owns(self, subjects: Iterable[Subject]) -> set[Subject]:
        """Which of ``subjects`` the caller owns (actors: only itself; a lot no producer's chain claims:
        the producer whose GS1 prefixes cover its GTIN, the only one who could issue its labels)."""
        subjects = list(subjects)
        self.known.update(owners(self.ledger, [s for s in subjects if s not in self.known]))
        me = self.caller.actor_id
        mine = {s for s in subjects if (s[1] == me if s[0] == "actor" else self.known.get(s) == me)}
        unclaimed_lots = [s for s in subjects if s[0] == "lot" and self.known.get(s) is None]
        if unclaimed_lots and self.caller.role == "producer":
            actor = self.ledger.actor(me)
            mine |= {s for s in unclaimed_lots if actor is not None and actor.may_issue(s[1][:14])}
        return mine

    def may_read_subject(self, subject_type: str, subject: str) -> bool:
        """The whole history of this subject: a regulator, or its owner."""
        return self.sees_everything or (subject_type, subject) in self.owns([(subject_type, subject)])

    def require_subject(self, subject_type: str, subject: str, what: str) -> None:
        """Refuse (403) unless the caller may read this subject's history."""
        if not self.may_read_subject(subject_type, subject):
            raise Refused("forbidden", f"only a regulator or the {subject_type}'s producer may read {what}", field="authorization")

    def readable(self, events: list[SignedEvent | None]) -> list[bool]:
        """For each event: may the caller read its body (signed it, owns its subject, or is a regulator)?
        ``None`` stands for stored bytes that no longer decode: only a regulator reads those."""
        if self.sees_everything:
            return [True] * len(events)
        me = self.caller.actor_id
        owned = self.owns({(s.event.subject_type, s.event.subject) for s in events if s is not None and s.event.actor != me})
        return [s is not None and (s.event.actor == me or (s.event.subject_type, s.event.subject) in owned) for s in events]

    def readable_values(self, values: list[bytes]) -> list[bool]:
        """:meth:`readable` over stored envelopes (a regulator's answer decodes nothing)."""
        if self.sees_everything:
            return [True] * len(values)
        return self.readable([decoded(v) for v in values])


def decoded(value: bytes) -> SignedEvent | None:
    """The signed event of stored bytes, None if they no longer decode (tampering is the auditor's to report)."""
    try:
        return SignedEvent.from_envelope(value)
    except Exception:  # noqa: BLE001 - any decoding failure of a stored row
        return None


def reader(caller: Caller | None, ledger: Ledger) -> Reader:
    """The signed caller's rights; 401 (``unauthenticated``) for an anonymous request."""
    if caller is None:
        raise Refused("unauthenticated", "this resource holds confidential event data: sign the request with a registered key "
                      "(Authorization: TraceLedger-Ed25519, see traceledger/auth.py)", field="authorization")
    return Reader(caller, ledger)
