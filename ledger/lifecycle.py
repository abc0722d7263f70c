"""The rules of a subject's life: pure functions, no I/O.

``fold`` applies an already-accepted event to a subject's state (used when
replaying a chain). ``authorize`` decides whether a new event may be appended:
chain link, signer's key and role, ownership, legal state transition. The
ledger, the verification projector and the auditor all use these same
functions, so they cannot disagree about what is legal.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Callable

from ledger.errors import Refused
from ledger.events import GENESIS_HASH, Event
from ledger.keys import key_id_of


@dataclass(frozen=True)
class ActorState:
    actor_id: str
    role: str
    name: str
    public_key: bytes
    gtin_prefixes: tuple[str, ...] = ()
    revoked: bool = False
    seq: int = 0
    head: bytes = GENESIS_HASH

    @property
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    @property
    def active(self) -> bool:
        return not self.revoked

    def may_issue(self, gtin: str) -> bool:
        """GTIN-14 starts with an indicator digit, then the company prefix."""
        return any(gtin[1:].startswith(p) for p in self.gtin_prefixes)


@dataclass(frozen=True)
class LabelState:
    serial: str
    gtin: str
    lot: str
    product: str
    producer: str
    expiry: str | None = None
    pin_hash: str | None = None
    status: str = "issued"  # issued | in_transit | received | decommissioned
    custodian: str | None = None
    consignee: str | None = None
    territory: str | None = None
    channel: str | None = None
    recalled: bool = False
    counterfeit: bool = False
    issued_at: datetime | None = None
    seq: int = 0
    head: bytes = GENESIS_HASH


@dataclass(frozen=True)
class LotState:
    gtin: str
    lot: str
    recalled: bool = False
    reason: str | None = None
    seq: int = 0
    head: bytes = GENESIS_HASH


@dataclass(frozen=True)
class AlertState:
    """The signed part of an alert's life; the detector raises and updates it, people move it on."""

    alert_id: str
    alert_kind: str
    serial: str | None
    producer: str | None
    status: str = "acknowledged"  # acknowledged | resolved
    resolution: str | None = None
    seq: int = 0
    head: bytes = GENESIS_HASH


SubjectState = ActorState | LabelState | LotState | AlertState
ActorLookup = Callable[[str], "ActorState | None"]


# ---------------------------------------------------------------- folding


def fold(state: SubjectState | None, event: Event, event_hash: bytes) -> SubjectState:
    """The state after ``event`` (assumed legal). Pure."""
    new = _fold(state, event)
    return replace(new, seq=event.seq, head=event_hash)


def _fold(state, event: Event):
    p, kind = event.payload, event.kind
    if kind == "ActorRegistered":
        return ActorState(
            actor_id=event.subject,
            role=p["role"],
            name=p["name"],
            public_key=p["public_key"],
            gtin_prefixes=tuple(p["gtin_prefixes"]),
        )
    if kind == "ActorKeyRotated":
        return replace(state, public_key=p["public_key"])
    if kind == "ActorRevoked":
        return replace(state, revoked=True)
    if kind == "Issued":
        return LabelState(
            serial=event.subject,
            gtin=p["gtin"],
            lot=p["lot"],
            product=p["product"],
            producer=event.actor,
            expiry=p.get("expiry"),
            pin_hash=p.get("pin_hash"),
            custodian=event.actor,
            issued_at=event.occurred_at,
        )
    if kind == "Shipped":
        return replace(
            state,
            status="in_transit",
            consignee=p["consignee"],
            territory=p["territory"],
            channel=p["channel"],
        )
    if kind == "Received":
        return replace(state, status="received", custodian=state.consignee, consignee=None)
    if kind in ("Scanned", "ReportedFake"):
        return state
    if kind == "AlertAcknowledged":
        return AlertState(alert_id=event.subject, alert_kind=p["alert_kind"], serial=p.get("serial"), producer=p.get("producer"))
    if kind == "AlertResolved":
        return replace(state, status="resolved", resolution=p["resolution"])
    if kind == "FlaggedCounterfeit":
        return replace(state, counterfeit=True)
    if kind == "Recalled":
        if event.subject_type == "lot":
            gtin, lot = event.subject[:14], event.subject[15:]
            base = state or LotState(gtin=gtin, lot=lot)
            return replace(base, recalled=True, reason=p["reason"])
        return replace(state, recalled=True)
    if kind == "Decommissioned":
        return replace(state, status="decommissioned", consignee=None)
    raise ValueError(f"unknown event kind {kind}")


# ---------------------------------------------------------------- authority


# The kinds that may start a chain; every other kind needs an existing subject.
OPENING_KINDS = frozenset({"Issued", "ActorRegistered", "Recalled", "AlertAcknowledged", "ContainerCreated", "LotCommissioned", "Transformed"})


def check_link(state: SubjectState | None, event: Event) -> None:
    """Event n must sit on top of event n-1 of the same subject."""
    if state is None:
        if event.seq != 0 or event.kind not in OPENING_KINDS or (event.kind == "Recalled" and event.subject_type != "lot"):
            raise Refused("unknown_subject", f"{event.subject_type} {event.subject} does not exist", field="subject")
        return
    expected = state.seq + 1
    if event.seq < expected:
        raise Refused(
            "stale_head",
            f"{event.subject} already has event {event.seq}; the chain head is {state.seq}",
            field="seq",
        )
    if event.seq > expected:
        raise Refused("chain_gap", f"{event.subject} expects seq {expected}, got {event.seq}", field="seq")
    if event.prev_hash != state.head:
        raise Refused("prev_hash_mismatch", f"prev_hash is not the hash of {event.subject}'s event {state.seq}", field="prev_hash")


def signer_of(event: Event, actors: ActorLookup) -> ActorState:
    """The active actor whose current key is ``event.key_id``, or refuse."""
    signer = actors(event.actor)
    if signer is None:
        raise Refused("unknown_actor", f"actor {event.actor} is not registered", field="actor")
    if signer.revoked:
        raise Refused("revoked", f"actor {event.actor} has been revoked", field="actor")
    if signer.key_id != event.key_id:
        raise Refused("revoked_key", f"key {event.key_id[:16]}… is not the current key of {event.actor}", field="key_id")
    return signer


def is_bootstrap(event: Event) -> bool:
    """The ledger's first event: a registrar registering itself with its own key."""
    p = event.payload
    return (
        event.kind == "ActorRegistered"
        and event.seq == 0
        and event.subject == event.actor
        and p.get("role") == "registrar"
        and key_id_of(p.get("public_key", b"")) == event.key_id
    )


def authorize(
    state: SubjectState | None,
    event: Event,
    signer: ActorState,
    actors: ActorLookup,
) -> None:
    """Refuse ``event`` unless ``signer`` may append it to ``state``'s chain."""
    check_link(state, event)
    kind, role = event.kind, signer.role

    def need(ok: bool, detail: str, code: str = "not_authorized", fld: str | None = "actor") -> None:
        if not ok:
            raise Refused(code, detail, field=fld)

    if kind == "ActorRegistered":
        need(role == "registrar", "only a registrar registers actors")
        need(state is None, f"actor {event.subject} is already registered", "already_registered", "subject")
    elif kind == "ActorKeyRotated":
        need(role == "registrar" or signer.actor_id == event.subject, "only the registrar or the actor itself rotates a key")
        need(not state.revoked, f"actor {event.subject} is revoked", "revoked", "subject")
    elif kind == "ActorRevoked":
        need(role == "registrar", "only a registrar revokes actors")
        need(not state.revoked, f"actor {event.subject} is already revoked", "invalid_transition", "subject")
    elif kind == "Issued":
        need(role == "producer", "only a producer issues labels")
        need(signer.may_issue(event.payload["gtin"]), f"GTIN {event.payload['gtin']} is outside {signer.actor_id}'s GS1 company prefixes", fld="gtin")
    elif kind == "Shipped":
        need(state.status in ("issued", "received"), f"label is {state.status}; only an issued or received label can be shipped", "invalid_transition", "subject")
        need(not state.counterfeit, "label is flagged counterfeit", "invalid_transition", "subject")
        need(signer.actor_id == state.custodian, f"only the custodian ({state.custodian}) ships this label")
        consignee = actors(event.payload["consignee"])
        need(consignee is not None and consignee.active, f"consignee {event.payload['consignee']} is not an active registered actor", "unknown_actor", "consignee")
        need(consignee.role in ("distributor", "retailer", "producer"), "consignee must be a distributor, retailer or producer", "not_authorized", "consignee")
    elif kind == "Received":
        need(state.status == "in_transit", f"label is {state.status}, not in transit", "invalid_transition", "subject")
        need(signer.actor_id == state.consignee, f"only the consignee ({state.consignee}) receives this label")
    elif kind == "Scanned":
        need(role in ("gateway", "retailer", "distributor", "regulator", "producer"), f"a {role} does not record scans")
    elif kind == "ReportedFake":
        need(role in ("gateway", "regulator"), "only a gateway (for a consumer) or a regulator records a report of a fake")
    elif kind == "AlertAcknowledged":
        need(state is None, f"alert {event.subject} is already acknowledged", "invalid_transition", "subject")
        need(role == "regulator" or (role == "producer" and signer.actor_id == event.payload.get("producer")), "only a regulator or the producer of the alert's labels acknowledges it")
    elif kind == "AlertResolved":
        need(state.status == "acknowledged", f"alert {event.subject} is {state.status}; only an acknowledged alert is resolved", "invalid_transition", "subject")
        need(event.payload.get("producer") == state.producer, "an alert's producer cannot change", "invalid_field", "producer")
        need(role == "regulator" or (role == "producer" and signer.actor_id == state.producer), "only a regulator or the producer of the alert's labels resolves it")
    elif kind == "FlaggedCounterfeit":
        need(role == "regulator", "only a regulator flags counterfeits")
        need(not state.counterfeit, "label is already flagged counterfeit", "invalid_transition", "subject")
    elif kind == "Recalled":
        if event.subject_type == "lot":
            gtin = event.subject[:14]
            need(role == "regulator" or (role == "producer" and signer.may_issue(gtin)), "only a regulator or the lot's producer recalls a lot")
        else:
            need(role == "regulator" or signer.actor_id == state.producer, "only a regulator or the label's producer recalls it")
        need(state is None or not state.recalled, "already recalled", "invalid_transition", "subject")
    elif kind == "Decommissioned":
        need(state.status != "decommissioned", "label is already decommissioned", "invalid_transition", "subject")
        need(signer.actor_id in (state.custodian, state.producer), "only the custodian or the producer decommissions a label")
    else:  # pragma: no cover - validate_event refuses unknown kinds first
        raise Refused("invalid_field", f"unknown event kind {kind}", field="payload")
