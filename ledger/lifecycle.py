"""The rules of a subject's life: pure functions, no I/O.

``fold`` applies an already-accepted event to a subject's state (used when
replaying a chain). ``authorize`` decides whether a new event may be appended:
chain link, signer's key and role, ownership, legal state transition. The
ledger, the verification projector and the auditor all use these same
functions, so they cannot disagree about what is legal.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Callable

from ledger.errors import Refused
from ledger.events import ASSOCIATION_KINDS, BATCH_KINDS, CERTIFICATE_KINDS, DECLARATION_KINDS, GENESIS_HASH, TRANSACTION_KIND, Event
from ledger.gs1 import is_sscc
from ledger.keys import key_id_of


@dataclass(frozen=True)
class ActorState:
    actor_id: str
    role: str
    name: str
    public_key: bytes
    gtin_prefixes: tuple[str, ...] = ()
    revoked: bool = False
    former_keys: tuple[str, ...] = ()  # key ids this actor signed with before its rotations
    schemes: tuple[str, ...] = ()  # a certifier's certification schemes (event.v4), e.g. ("CCC",)
    # (key id, since) of each key declared compromised (event.v4 ActorKeyCompromised)
    compromised: tuple[tuple[str, datetime], ...] = ()
    seq: int = 0
    head: bytes = GENESIS_HASH

    @cached_property  # asked for every event an actor signs; a hash of a field that never changes
    def key_id(self) -> str:
        return key_id_of(self.public_key)

    @property
    def active(self) -> bool:
        return not self.revoked

    def compromised_since(self, key_id: str) -> datetime | None:
        """When ``key_id`` (one of this actor's keys) is declared compromised from, or None."""
        return next((since for key, since in self.compromised if key == key_id), None)

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
    container: str | None = None  # the SSCC it travels in now (one at a time), None when loose
    seq: int = 0
    head: bytes = GENESIS_HASH


@dataclass(frozen=True)
class LotState:
    gtin: str
    lot: str
    recalled: bool = False
    reason: str | None = None
    producer: str | None = None  # who commissioned or transformed it (None: only ever recalled)
    product: str | None = None
    certificates: tuple[str, ...] = ()  # e.g. CCC certificate numbers
    inputs: tuple[str, ...] = ()  # lot keys consumed to make this lot (Transformed)
    seq: int = 0
    head: bytes = GENESIS_HASH


@dataclass(frozen=True)
class ContainerState:
    """A case or pallet (SSCC). Field names match LabelState's so custody rules are shared."""

    sscc: str
    level: str  # case | pallet
    producer: str  # the actor who created (commissioned) the container
    status: str = "issued"  # issued | in_transit | received | decommissioned
    custodian: str | None = None
    consignee: str | None = None
    territory: str | None = None
    channel: str | None = None
    recalled: bool = False
    counterfeit: bool = False  # never set: containers are not flagged, kept for the shared Shipped rule
    container: str | None = None  # the pallet this case is on, if any
    contents: int = 0  # children inside now
    seq: int = 0
    head: bytes = GENESIS_HASH


@dataclass(frozen=True)
class AlertState:
    """The signed part of an alert's life; the detector raises and updates it, people move it on."""

    alert_id: str
    alert_kind: str
    serial: str | None
    producer: str | None
    status: str = "acknowledged"  # raised (event.v4 AlertRaised) | acknowledged | resolved
    resolution: str | None = None
    seq: int = 0
    head: bytes = GENESIS_HASH


@dataclass(frozen=True)
class BatchState:
    """A batch event (event.v3): one per batch subject; its labels' states live per label."""

    batch_id: str
    kind: str
    actor: str
    count: int
    labels_root: bytes
    seq: int = 0
    head: bytes = GENESIS_HASH


@dataclass(frozen=True)
class CertificateState:
    """A certificate (event.v4, subject ``<scheme>/<number>``): who issued it to whom, and whether it holds now."""

    cert_id: str
    scheme: str
    number: str
    issuer: str  # the certifier that issued it (and alone moves it on)
    holder: str
    valid_until: str
    status: str = "valid"  # valid | suspended | revoked (final)
    seq: int = 0
    head: bytes = GENESIS_HASH


@dataclass(frozen=True)
class ProductState:
    """A GTIN's master data chain (event.v4, subject = GTIN-14): described and committed to by its owner."""

    gtin: str
    producer: str
    seq: int = 0
    head: bytes = GENESIS_HASH


SubjectState = ActorState | LabelState | LotState | AlertState | ContainerState | BatchState | CertificateState | ProductState
ActorLookup = Callable[[str], "ActorState | None"]
# (subject_type, subject) -> that subject's current state, for rules that look across chains.
SubjectLookup = Callable[[str, str], "SubjectState | None"]

# Aggregation kinds: a container event and its children's events are one all-or-nothing batch.
AGGREGATION_KINDS = frozenset({"Packed", "Unpacked", "PackedInto", "UnpackedFrom"})
# Deepest containment the rules and views follow (unit in case on pallet is 2).
MAX_NESTING = 4


def child_type(code: str) -> str:
    """Subject type of a container's child: an SSCC is a container, anything else a label serial."""
    return "container" if is_sscc(code) else "label"


# ---------------------------------------------------------------- folding


def fold(state: SubjectState | None, event: Event, event_hash: bytes) -> SubjectState:
    """The state after ``event`` (assumed legal). Pure."""
    new = _fold(state, event)
    # ``dataclasses.replace`` re-runs __init__ over every field (~20 µs for LabelState),
    # on every event folded; the states are plain frozen dataclasses (no __post_init__,
    # no init=False fields), so a shallow copy with the two fields set is the same value.
    out = copy.copy(new)
    object.__setattr__(out, "seq", event.seq)
    object.__setattr__(out, "head", event_hash)
    return out


def _fold(state, event: Event):
    p, kind = event.payload, event.kind
    if kind == "ActorRegistered":
        return ActorState(
            actor_id=event.subject,
            role=p["role"],
            name=p["name"],
            public_key=p["public_key"],
            gtin_prefixes=tuple(p["gtin_prefixes"]),
            schemes=tuple(p.get("schemes") or ()),
        )
    if kind == "ActorProfileChanged":
        return state  # the profile is public data for read models; no rule depends on it
    if kind == "ActorKeyRotated":
        return replace(state, public_key=p["public_key"], former_keys=(*state.former_keys, state.key_id))
    if kind == "ActorKeyCompromised":
        others = tuple(c for c in state.compromised if c[0] != p["key_id"])
        return replace(state, compromised=(*others, (p["key_id"], p["since"])))
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
    if kind in ("Scanned", "ReportedFake", *ASSOCIATION_KINDS, *DECLARATION_KINDS, TRANSACTION_KIND):
        return state  # read models keep what these say; no rule depends on it
    if kind == "QualityCommitted":  # on a lot or a product: read models keep the text
        return state or ProductState(gtin=event.subject, producer=event.actor)
    if kind == "ProductDescribed":
        return state or ProductState(gtin=event.subject, producer=event.actor)
    if kind == "CertificateIssued":
        return CertificateState(cert_id=event.subject, scheme=p["scheme"], number=p["number"], issuer=event.actor, holder=p["holder"], valid_until=p["valid_until"])
    if kind in CERTIFICATE_KINDS:
        return replace(state, status={"CertificateSuspended": "suspended", "CertificateReinstated": "valid", "CertificateRevoked": "revoked"}[kind])
    if kind == "AlertRaised":
        return AlertState(alert_id=event.subject, alert_kind=p["alert_kind"], serial=p.get("serial"), producer=p.get("producer"), status="raised")
    if kind == "AlertAcknowledged":
        if state is not None:  # a raised alert (event.v4): kind, serial and producer are the raised ones
            return replace(state, status="acknowledged")
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
    if kind.startswith("Batch"):
        return BatchState(batch_id=event.subject, kind=kind, actor=event.actor, count=p["count"], labels_root=p["labels_root"])
    if kind == "ContainerCreated":
        return ContainerState(sscc=event.subject, level=p["level"], producer=event.actor, custodian=event.actor)
    if kind == "Packed":
        return replace(state, contents=state.contents + len(p["children"]))
    if kind == "Unpacked":
        return replace(state, contents=state.contents - len(p["children"]))
    if kind == "PackedInto":
        return replace(state, container=p["container"])
    if kind == "UnpackedFrom":
        # The child leaves in the hands of the container's custodian (who signed) and keeps
        # the container's shipment, so territory/channel rules still apply to it.
        moved = event.actor != state.custodian
        return replace(
            state,
            container=None,
            custodian=event.actor,
            status="received" if moved else state.status,
            consignee=None,
            territory=p.get("territory") if p.get("territory") is not None else state.territory,
            channel=p.get("channel") if p.get("channel") is not None else state.channel,
        )
    if kind in ("LotCommissioned", "Transformed"):
        gtin, lot = event.subject[:14], event.subject[15:]
        base = state or LotState(gtin=gtin, lot=lot, producer=event.actor)
        if kind == "LotCommissioned":
            return replace(base, producer=base.producer or event.actor, product=p["product"], certificates=tuple(p["certificates"]))
        return replace(base, producer=base.producer or event.actor, inputs=base.inputs + tuple(i for i in p["inputs"] if i not in base.inputs))
    raise ValueError(f"unknown event kind {kind}")


# ---------------------------------------------------------------- authority


# The kinds that may start a chain; every other kind needs an existing subject.
# AlertAcknowledged still opens an alert's chain: see ``_authorize_alert`` for why.
OPENING_KINDS = frozenset({
    "Issued", *BATCH_KINDS, "ActorRegistered", "Recalled", "AlertRaised", "AlertAcknowledged", "ContainerCreated", "LotCommissioned", "Transformed",
    "CertificateIssued", "ProductDescribed", "QualityCommitted",
})
# Kinds that open a chain only of one subject type (a label is never opened by a recall).
_OPENS_ONLY = {"Recalled": "lot", "QualityCommitted": "product"}


def check_link(state: SubjectState | None, event: Event) -> None:
    """Event n must sit on top of event n-1 of the same subject."""
    if state is None:
        if event.seq != 0 or event.kind not in OPENING_KINDS or _OPENS_ONLY.get(event.kind, event.subject_type) != event.subject_type:
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
    if signer.compromised and signer.compromised_since(event.key_id) is not None:
        raise Refused("compromised_key", f"key {event.key_id[:16]}… of {event.actor} is declared compromised: it signs nothing more", field="key_id")
    return signer


def signed_while_compromised(event: Event, signer: ActorState) -> datetime | None:
    """When the key that signed ``event`` counts as compromised from, if ``event`` is at or after it; else None.

    Pass the signer's *latest* state: a compromise is declared after the fact
    (ActorKeyCompromised, event.v4), and what the key signed from ``since`` on, before
    the declaration, was accepted then but is suspect now (e.g. labels issued after T
    answer ``suspicious``). ``occurred_at`` is the signer's own claim, so an event
    dated before ``since`` by a thief holding the key still counts as clean here; the
    time it reached the log (its log index) is the reader's stronger check.
    """
    since = signer.compromised_since(event.key_id) if signer.compromised else None
    return since if since is not None and event.occurred_at >= since else None


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
    subjects: SubjectLookup | None = None,
) -> None:
    """Refuse ``event`` unless ``signer`` may append it to ``state``'s chain.

    ``subjects`` gives other chains' current states for the rules that look
    across chains (a child's container, a transformation's input lots). The
    ledger and the auditor, which see events in global order, pass it; a
    reader that sees partitions in no common order (the verification
    projector) leaves it None and checks each chain's own rules only.
    """
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
        need(state.compromised_since(key_id_of(event.payload["public_key"])) is None, "that key is declared compromised", "compromised_key", "public_key")
    elif kind == "ActorKeyCompromised":
        _authorize_compromise(state, event, role, need)
    elif kind == "ActorProfileChanged":
        need(role == "registrar" or signer.actor_id == event.subject, "only the registrar or the actor itself changes its profile")
        need(not state.revoked, f"actor {event.subject} is revoked", "revoked", "subject")
    elif kind in CERTIFICATE_KINDS:
        _authorize_certificate(state, event, signer, actors, need)
    elif kind in ASSOCIATION_KINDS:
        need(state.status != "decommissioned", f"{event.subject_type} {event.subject} is decommissioned", "invalid_transition", "subject")
        need(signer.actor_id == state.custodian, f"only the custodian ({state.custodian}) associates or disassociates {event.subject}")
    elif kind == TRANSACTION_KIND:
        # event.v5: binding an item to a business transaction changes nothing about it, but says the
        # signer deals in it: only whoever holds it now or made it does, while it exists.
        need(state.status != "decommissioned", f"{event.subject_type} {event.subject} is decommissioned", "invalid_transition", "subject")
        need(signer.actor_id in (state.custodian, state.producer),
             f"only the custodian ({state.custodian}) or the producer ({state.producer}) records transactions of {event.subject}")
    elif kind in DECLARATION_KINDS:
        # Who signed the event declared in error is not in the chain's state: its owner
        # (producer, or custodian now) or a regulator declares; readers match the event id.
        owners = {getattr(state, "producer", None), getattr(state, "custodian", None)} - {None}
        need(signer.role == "regulator" or signer.actor_id in owners, f"only the {event.subject_type}'s producer, its custodian or a regulator declares its events in error")
    elif kind in ("ProductDescribed", "QualityCommitted"):
        gtin = event.subject[:14]  # a product's GTIN, or a lot key's
        need(role == "producer" and signer.may_issue(gtin), f"only the producer whose GS1 prefixes cover {gtin} describes it or commits to its quality")
    elif kind == "ActorRevoked":
        need(role == "registrar", "only a registrar revokes actors")
        need(not state.revoked, f"actor {event.subject} is already revoked", "invalid_transition", "subject")
    elif kind == "BatchIssued":
        need(role == "producer", "only a producer issues labels")
        need(signer.may_issue(event.payload["gtin"]), f"GTIN {event.payload['gtin']} is outside {signer.actor_id}'s GS1 company prefixes", fld="gtin")
        _check_certificates(event, signer, subjects, need)
    elif kind.startswith("Batch"):
        raise Refused("not_supported", f"{kind} is in event.v3 but not accepted by this ledger yet (issue 16: batch issuance only)", field="payload")
    elif kind == "Issued":
        # check_link lets an existing label's next event through; issuing it again would reset it.
        need(state is None, f"label {event.subject} is already issued", "label_exists", "subject")
        need(role == "producer", "only a producer issues labels")
        need(signer.may_issue(event.payload["gtin"]), f"GTIN {event.payload['gtin']} is outside {signer.actor_id}'s GS1 company prefixes", fld="gtin")
        _check_certificates(event, signer, subjects, need)
    elif kind == "Shipped":
        need(state.container is None, f"{event.subject} is packed in container {state.container}; ship the container or unpack it first", "packed", "subject")
        need(state.status in ("issued", "received"), f"{event.subject_type} is {state.status}; only an issued or received {event.subject_type} can be shipped", "invalid_transition", "subject")
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
    elif kind in ("AlertRaised", "AlertAcknowledged", "AlertResolved"):
        _authorize_alert(state, event, signer, actors, need)
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
        need(state.status != "decommissioned", f"{event.subject_type} is already decommissioned", "invalid_transition", "subject")
        need(state.container is None, f"{event.subject} is packed in container {state.container}; unpack it first", "packed", "subject")
        need(getattr(state, "contents", 0) == 0, f"container {event.subject} still holds {getattr(state, 'contents', 0)} items; unpack them first", "not_empty", "subject")
        need(signer.actor_id in (state.custodian, state.producer), "only the custodian or the producer decommissions a label")
    elif kind in AGGREGATION_KINDS or kind == "ContainerCreated":
        _authorize_aggregation(state, event, signer, subjects, need)
    elif kind in ("LotCommissioned", "Transformed"):
        _authorize_lot(state, event, signer, subjects, need)
    else:  # pragma: no cover - validate_event refuses unknown kinds first
        raise Refused("invalid_field", f"unknown event kind {kind}", field="payload")


def _authorize_certificate(state: CertificateState | None, event: Event, signer: ActorState, actors: ActorLookup, need) -> None:
    """A certificate's life: its certifier (holding the scheme) issues, suspends, reinstates, revokes (final)."""
    kind, p = event.kind, event.payload
    scheme = p["scheme"] if kind == "CertificateIssued" else state.scheme
    need(signer.role == "certifier" and scheme in signer.schemes, f"only a certifier holding scheme {scheme} signs its certificates")
    if kind == "CertificateIssued":
        need(state is None, f"certificate {event.subject} is already issued", "already_exists", "subject")
        need(event.subject == f"{p['scheme']}/{p['number']}", f"a certificate's subject is '<scheme>/<number>' ({p['scheme']}/{p['number']})", "invalid_field", "subject")
        holder = actors(p["holder"])
        need(holder is not None and holder.active, f"holder {p['holder']} is not an active registered actor", "unknown_actor", "holder")
        return
    need(signer.actor_id == state.issuer, f"only the certificate's issuer ({state.issuer}) moves it on")
    allowed = {"CertificateSuspended": ("valid",), "CertificateReinstated": ("suspended",), "CertificateRevoked": ("valid", "suspended")}[kind]
    need(state.status in allowed, f"certificate {event.subject} is {state.status}", "invalid_transition", "subject")


def _check_certificates(event: Event, signer: ActorState, subjects: SubjectLookup | None, need) -> None:
    """Issued / BatchIssued (event.v4) link certificates that exist, are the producer's own and are not revoked.

    Checked where other chains are at hand (the ledger, the auditor); the projector,
    reading partitions in no common order, checks each chain's own rules only.
    """
    if subjects is None:
        return
    for cert_id in event.payload.get("certificates") or ():
        cert = subjects("certificate", cert_id)
        need(cert is not None, f"certificate {cert_id} has not been issued", "unknown_subject", "certificates")
        need(cert.holder == signer.actor_id, f"certificate {cert_id} is held by {cert.holder}, not {signer.actor_id}", "not_authorized", "certificates")
        need(cert.status != "revoked", f"certificate {cert_id} is revoked", "invalid_transition", "certificates")


def _authorize_compromise(state: ActorState, event: Event, role: str, need) -> None:
    """ActorKeyCompromised: a registrar or regulator declares one of the actor's keys compromised since T."""
    p = event.payload
    need(role in ("registrar", "regulator"), "only a registrar or a regulator declares a key compromised")
    need(p["key_id"] in (state.key_id, *state.former_keys), f"key {p['key_id'][:16]}… was never a key of {event.subject}", "invalid_field", "key_id")
    need(p["since"] <= event.occurred_at, "since is after the declaration: a compromise is declared once it happened", "invalid_field", "since")
    known = state.compromised_since(p["key_id"])
    # A later declaration may only move T earlier (an investigation finds more); never forgive.
    need(known is None or p["since"] < known, f"key {p['key_id'][:16]}… is already declared compromised since {known}", "invalid_transition", "key_id")


def _authorize_alert(state: AlertState | None, event: Event, signer: ActorState, actors: ActorLookup, need) -> None:
    """AlertRaised opens an alert (the detector); its producer or a regulator acknowledges and resolves it.

    An alert chain opened by AlertAcknowledged (no AlertRaised) is still accepted:
    every alert written under event.v2/v3 starts that way and must still replay,
    and until the detector signs AlertRaised the write door binds such alerts to
    their producer with ``ledger.alert_owners``. Once AlertRaised opened a chain,
    its producer, kind and serial are signed history: the rules below hold them
    fixed, so the auditor checks ownership from the log alone.
    """
    p, role = event.payload, signer.role
    if event.kind == "AlertRaised":
        need(role == "detector", "only a detector raises alerts")
        need(state is None, f"alert {event.subject} is already raised", "invalid_transition", "subject")
        if p.get("producer") is not None:
            owner = actors(p["producer"])
            need(owner is not None and owner.role == "producer", f"producer {p['producer']} is not a registered producer", "unknown_actor", "producer")
        return
    producer = state.producer if state is not None else p.get("producer")
    # Only the labels' producer (named on the chain) or a regulator moves an alert; null producer: regulators only.
    mover = role == "regulator" or (role == "producer" and producer is not None and signer.actor_id == producer)
    if event.kind == "AlertAcknowledged":
        if state is not None:
            need(state.status == "raised", f"alert {event.subject} is already {state.status}", "invalid_transition", "subject")
            need(p.get("producer") == state.producer, "an alert's producer cannot change", "invalid_field", "producer")
            need((p.get("alert_kind"), p.get("serial")) == (state.alert_kind, state.serial),
                 f"alert {event.subject} is {state.alert_kind} on {state.serial}", "invalid_field", "alert_kind")
        need(mover, "only a regulator or the producer of the alert's labels acknowledges it")
        return
    need(state.status in ("raised", "acknowledged"), f"alert {event.subject} is {state.status}; only an open alert is resolved", "invalid_transition", "subject")
    need(p.get("producer") == state.producer, "an alert's producer cannot change", "invalid_field", "producer")
    need(mover, "only a regulator or the producer of the alert's labels resolves it")


def _may_hold(state, signer: ActorState, what: str, need) -> None:
    """``state`` (a label or container) can be handled by ``signer`` right now: its custodian, not moving, not gone."""
    need(state.status in ("issued", "received"), f"{what} is {state.status}; only an issued or received item is packed or unpacked", "invalid_transition", "subject")
    need(signer.actor_id == state.custodian, f"only the custodian ({state.custodian}) packs or unpacks {what}")


def _authorize_aggregation(state, event: Event, signer: ActorState, subjects: SubjectLookup | None, need) -> None:
    """ContainerCreated, Packed/Unpacked (on the container), PackedInto/UnpackedFrom (on each child)."""
    kind, p, role = event.kind, event.payload, signer.role
    if kind == "ContainerCreated":
        need(state is None, f"container {event.subject} already exists", "already_exists", "subject")
        need(role in ("producer", "distributor", "retailer"), "only a producer, distributor or retailer creates containers")
        # An SSCC is extension digit + GS1 company prefix + reference: an actor with prefixes uses its own.
        need(not signer.gtin_prefixes or signer.may_issue(event.subject), f"SSCC {event.subject} is outside {signer.actor_id}'s GS1 company prefixes", fld="subject")
        return
    if kind in ("Packed", "Unpacked"):
        _may_hold(state, signer, f"container {event.subject}", need)
        need(not state.recalled or kind == "Unpacked", f"container {event.subject} is recalled; nothing more is packed into it", "invalid_transition", "subject")
        need(state.container is None, f"container {event.subject} is itself packed in {state.container}; unpack it first", "packed", "subject")
        if subjects is None:
            return
        for child in p["children"]:
            ctype = child_type(child)
            need(child != event.subject, "a container cannot contain itself", "invalid_field", "children")
            c = subjects(ctype, child)
            need(c is not None, f"{ctype} {child} does not exist", "unknown_subject", "children")
            if kind == "Packed":
                # None, or this container when the child's own PackedInto came first in the batch.
                need(c.container in (None, event.subject), f"{ctype} {child} is already in container {c.container}", "already_packed", "children")
                need(c.custodian == signer.actor_id, f"{child} is in the custody of {c.custodian}, not {signer.actor_id}", "not_authorized", "children")
                need(c.status in ("issued", "received"), f"{child} is {c.status}; only an issued or received item is packed", "invalid_transition", "children")
                need(not getattr(c, "counterfeit", False), f"{child} is flagged counterfeit", "invalid_transition", "children")
            else:
                need(c.container == event.subject, f"{ctype} {child} is not in container {event.subject}", "not_packed", "children")
        return
    # PackedInto / UnpackedFrom, on the child's own chain.
    container_id = p["container"]
    need(container_id != event.subject, "a container cannot contain itself", "invalid_field", "container")
    if kind == "PackedInto":
        need(state.container is None, f"{event.subject} is already in container {state.container}; one container at a time", "already_packed", "subject")
        _may_hold(state, signer, event.subject, need)
        need(not getattr(state, "counterfeit", False), f"{event.subject} is flagged counterfeit", "invalid_transition", "subject")
    else:
        need(state.container == container_id, f"{event.subject} is not in container {container_id}", "not_packed", "container")
    if subjects is None:
        return
    box = subjects("container", container_id)
    need(box is not None, f"container {container_id} does not exist", "unknown_subject", "container")
    need(box.custodian == signer.actor_id, f"only the container's custodian ({box.custodian}) packs into or unpacks {container_id}")
    if kind == "PackedInto":
        need(not box.recalled, f"container {container_id} is recalled", "invalid_transition", "container")
        ancestor, depth = box, 0
        while ancestor is not None and depth <= MAX_NESTING:  # no cycles, bounded depth
            need(ancestor.sscc != event.subject, f"{event.subject} would end up inside itself", "invalid_field", "container")
            ancestor = subjects("container", ancestor.container) if ancestor.container else None
            depth += 1
        need(depth <= MAX_NESTING, f"containers nest at most {MAX_NESTING} deep", "invalid_field", "container")
    else:
        # The child keeps the container's shipment: exactly what the container was shipped for.
        need((p.get("territory"), p.get("channel")) == (box.territory, box.channel),
             f"territory/channel must be the container's ({box.territory}, {box.channel})", "invalid_field", "territory")


def _authorize_lot(state, event: Event, signer: ActorState, subjects: SubjectLookup | None, need) -> None:
    """LotCommissioned (a supplier's lot with its certificates) and Transformed (output lot <- input lots)."""
    kind, p = event.kind, event.payload
    gtin = event.subject[:14]
    need(signer.role == "producer" and signer.may_issue(gtin), f"only a producer whose GS1 prefixes cover {gtin} declares this lot")
    need(state is None or not state.recalled, f"lot {event.subject} is recalled", "invalid_transition", "subject")
    if kind == "LotCommissioned":
        need(state is None or state.product is None, f"lot {event.subject} is already commissioned", "already_exists", "subject")
        return
    need(event.subject not in p["inputs"], "a lot cannot be made from itself", "invalid_field", "inputs")
    if subjects is None:
        return
    for key in p["inputs"]:
        lot = subjects("lot", key)
        need(lot is not None and (lot.product is not None or lot.inputs), f"input lot {key} is unknown: commission it (LotCommissioned) first", "unknown_lot", "inputs")
        need(not lot.recalled, f"input lot {key} is recalled", "invalid_transition", "inputs")
        # No cycles: the output must not already be among the input's ancestors.
        seen, frontier = set(), [key]
        while frontier:
            current = frontier.pop()
            need(current != event.subject, f"lot {event.subject} is already an ancestor of {key}: a cycle", "invalid_field", "inputs")
            if current in seen:
                continue
            seen.add(current)
            ancestor = subjects("lot", current)
            frontier.extend(ancestor.inputs if ancestor else ())
