"""Who may declare an event in error: the check the lifecycle rules cannot make alone.

An error declaration (event.v4 ``Corrected``/``Retracted``, EPCIS ``errorDeclaration``)
names the event it declares by its id. The lifecycle rules see a chain's folded
state, not its events' ids or signers, so they only say who may declare on a chain
at all (its producer, its custodian now, a regulator). This module adds what needs
the chain's events: the declared event must be on the same chain (stored, or earlier
in the same request) and signed by the declarer — a custodian cannot declare its
producer's ``Issued`` in error — unless a regulator declares. The ledger's write path
(:meth:`ledger.service.Ledger.append`) and the EPCIS capture door (which reports the
reason per EPCIS event before anything is written) both ask :func:`check`.
"""

from __future__ import annotations

from typing import Mapping

from ledger.errors import Refused
from ledger.events import DECLARATION_KINDS, Event, decode_signed
from ledger.lifecycle import ActorState
from ledger.store import LedgerApplication, chain_id

__all__ = ["NO_EVENTS", "check", "declared_event"]

NO_EVENTS: Mapping[str, Event] = {}


def declared_event(app: LedgerApplication, declaration: Event, earlier: Mapping[str, Event] = NO_EVENTS) -> Event | None:
    """The event ``declaration`` declares, from ``earlier`` (not stored yet) or its chain's stored events; None if neither has it."""
    wanted = declaration.payload["event_id"]
    if wanted in earlier:
        return earlier[wanted]
    stored = app.events.get(chain_id(declaration.subject_type, declaration.subject))
    return next((e for e in (decode_signed(x.body, x.signature).event for x in stored) if e.event_id == wanted), None)


def check(app: LedgerApplication, declaration: Event, signer: ActorState | None, earlier: Mapping[str, Event] = NO_EVENTS) -> None:
    """Raise :class:`Refused` unless ``declaration`` declares an event of its own chain that its signer signed (a regulator: any)."""
    if declaration.kind not in DECLARATION_KINDS:
        return
    d = declaration
    target = declared_event(app, d, earlier)
    if target is None or (target.subject_type, target.subject) != (d.subject_type, d.subject):
        raise Refused("unknown_event", f"{d.subject_type} {d.subject} has no event {d.payload['event_id']}: the declared event was "
                      "captured by another actor, or never", field="event_id")
    if target.actor != d.actor and (signer is None or signer.role != "regulator"):
        raise Refused("not_authorized", f"{d.subject}: the declared event was signed by {target.actor}; only its signer or a regulator "
                      "declares it in error", field="event_id")
