"""Ledger events: the decoded form, field rules, signing and the signed envelope.

An event's canonical bytes (``body``) are the Avro single-object encoding of
``schemas/event.v*.avsc``. Its hash is SHA-256 of ``body``; because ``body``
contains ``prev_hash``, the hash covers the previous event's hash and the
event itself (one hash chain per subject). Its signature is Ed25519 over
``body`` by the key ``key_id`` of ``actor``. On Kafka and in the store the pair
travels as ``schemas/signed_event.v*.avsc``.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import cached_property, lru_cache
from typing import Any

from ledger import gs1, regions
from ledger.encoding import envelope_codec, event_codec
from ledger.envelope import split_envelope
from ledger.errors import Refused
from ledger.keys import KeyPair

GENESIS_HASH = bytes(32)

# event.v4 (issue 19): EPCIS association and error declarations on a subject's own chain.
ASSOCIATION_KINDS = ("Associated", "Disassociated")
DECLARATION_KINDS = ("Corrected", "Retracted")
# event.v5 (issue 19): an EPCIS TransactionEvent on a label's or container's own chain (state unchanged).
TRANSACTION_KIND = "TransactionRecorded"
TRANSACTION_ACTIONS = ("ADD", "OBSERVE", "DELETE")
LABEL_KINDS = (
    "Issued", "Shipped", "Received", "Scanned", "FlaggedCounterfeit", "Recalled", "Decommissioned",
    "ReportedFake", "PackedInto", "UnpackedFrom", *ASSOCIATION_KINDS, *DECLARATION_KINDS, TRANSACTION_KIND,
)
LOT_KINDS = ("Recalled", "LotCommissioned", "Transformed", "QualityCommitted", *DECLARATION_KINDS)
ACTOR_KINDS = ("ActorRegistered", "ActorKeyRotated", "ActorRevoked", "ActorKeyCompromised", "ActorProfileChanged")
# event.v4 (issue 17): a certification body's certificates, and a GTIN's product master data.
CERTIFICATE_KINDS = ("CertificateIssued", "CertificateSuspended", "CertificateReinstated", "CertificateRevoked")
PRODUCT_KINDS = ("ProductDescribed", "QualityCommitted")
# The transitions people sign on an alert; event.v4's AlertRaised (the detector's) opens the chain.
ALERT_KINDS = ("AlertAcknowledged", "AlertResolved")
CONTAINER_KINDS = (
    "ContainerCreated", "Packed", "Unpacked", "Shipped", "Received", "Recalled", "Decommissioned",
    "PackedInto", "UnpackedFrom", *ASSOCIATION_KINDS, *DECLARATION_KINDS, TRANSACTION_KIND,
)
# event.v3: one event, one signature, many labels (ledger/batches.py); subject = batch id.
BATCH_KINDS = ("BatchIssued", "BatchShipped", "BatchReceived", "BatchRecalled", "BatchDecommissioned")
KINDS_BY_SUBJECT = {
    "label": LABEL_KINDS,
    "lot": LOT_KINDS,
    "actor": ACTOR_KINDS,
    "alert": ("AlertRaised", *ALERT_KINDS),
    "container": CONTAINER_KINDS,
    "batch": BATCH_KINDS,
    "certificate": CERTIFICATE_KINDS,
    "product": PRODUCT_KINDS,
}
PIN_RESULTS = ("first_use", "reused", "wrong")
RESOLUTIONS = ("false_positive", "confirmed")
CONTAINER_LEVELS = ("case", "pallet")
MAX_CHILDREN = 10_000  # one Packed event; a pallet of 10,000 units fits, a bigger load is several events
ROLES = ("registrar", "producer", "distributor", "retailer", "regulator", "gateway", "detector", "certifier")
# event.v4: where a scan's or report's region came from (schemas/event.v4.avsc, PlaceSource).
PLACE_SOURCES = ("address", "number", "geolocation", "signed", "none")
SEVERITIES = ("low", "medium", "high")
REMEDIES = ("refund", "replace", "repair", "inspect")
MAX_CERTIFICATES = 20  # per label or lot
MAX_SCHEMES = 20
MAX_CERTIFIED_GTINS = 1000
MAX_SELLERS = 50
# event.v4 (issue 19): EPCIS fields
MAX_EPCIS_TEXT = 256  # an eventID, a bizTransaction, a source/destination, a certificationInfo value, a parent id
MAX_EPCIS_LIST = 20  # bizTransactionList, sourceList, destinationList, certificationInfo, correctiveEventIDs
MAX_SENSOR_BYTES = 16 * 1024
SOURCE_DEST_TYPES = ("owning_party", "possessing_party", "location")
# The kinds that carry read_point / biz_location / epcis_event_id (every label, container, lot and batch kind).
PLACED_KINDS = frozenset({
    "Issued", "Shipped", "Received", "Scanned", "FlaggedCounterfeit", "Recalled", "Decommissioned", "ReportedFake",
    "ContainerCreated", "Packed", "Unpacked", "PackedInto", "UnpackedFrom", "LotCommissioned", "Transformed",
    *BATCH_KINDS, *ASSOCIATION_KINDS, *DECLARATION_KINDS, TRANSACTION_KIND,
})

# The GS1 EPCIS 2.0 / CBV names each event kind maps to: (bizStep, disposition).
EPCIS_MAPPING = {
    "Issued": ("commissioning", "active"),
    "Shipped": ("shipping", "in_transit"),
    "Received": ("receiving", "in_progress"),
    "Scanned": ("inspecting", None),
    "FlaggedCounterfeit": ("inspecting", "non_conformant"),
    "Recalled": ("holding", "recalled"),
    "Decommissioned": ("decommissioning", "inactive"),
    "ReportedFake": ("inspecting", "non_conformant"),
    "ContainerCreated": ("commissioning", "active"),
    "Packed": ("packing", "in_progress"),
    "Unpacked": ("unpacking", "in_progress"),
    "PackedInto": ("packing", "in_progress"),
    "UnpackedFrom": ("unpacking", "in_progress"),
    "LotCommissioned": ("commissioning", "active"),
    # CBV has no "transforming" step; a TransformationEvent's output is commissioned.
    "Transformed": ("commissioning", "active"),
    "BatchIssued": ("commissioning", "active"),
    "BatchShipped": ("shipping", "in_transit"),
    "BatchReceived": ("receiving", "in_progress"),
    "BatchRecalled": ("holding", "recalled"),
    "BatchDecommissioned": ("decommissioning", "inactive"),
    # event.v4: EPCIS AssociationEvent ADD / DELETE (error declarations have no bizStep of their own)
    "Associated": ("assembling", "in_progress"),
    "Disassociated": ("disassembling", "in_progress"),
}
MAX_BATCH_COUNT = 8192  # ledger.batches.MAX_BATCH_LABELS (that module's doc says why)
SEALED_SECRET_BYTES = 80  # ledger.commitments.SEALED_SECRET_BYTES

_ACTOR_ID = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")
_KEY_ID = re.compile(r"[0-9a-f]{64}")
_REGION = re.compile(r"[0-9]{2,12}")
_CHANNEL = re.compile(r"[a-z][a-z0-9_]{0,31}")
_PREFIX = re.compile(r"[0-9]{6,12}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_EXPIRY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SCHEME = re.compile(r"[A-Z][A-Z0-9_-]{0,15}")  # e.g. CCC, CQC-ECO
_CERT_NUMBER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HOTLINE = re.compile(r"\+?[0-9][0-9 -]{2,23}")
_GLN = re.compile(r"[0-9]{13}")
# urn:epc:id:sgln:<company prefix>.<location reference>.<extension> (prefix + reference = 12 digits)
_SGLN_URN = re.compile(r"urn:epc:id:sgln:([0-9]{6,12})\.([0-9]{0,6})\.([!%-?A-Z_a-z\x22]{1,20})")
# a GS1 Digital Link of a location: https://<host>/414/<GLN>[/254/<extension>]
_SGLN_LINK = re.compile(r"https://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[^/\s]+)*/414/([0-9]{13})(?:/254/[!%-?A-Z_a-z\x22]{1,20})?")
_CBV_WORD = re.compile(r"[a-z][a-z0-9_]{0,31}")

MAX_TEXT = {
    "product": 200, "name": 200, "reason": 500, "session": 128, "pin_hash": 256, "note": 1000, "certificates": 64,
    # event.v4 (issue 17)
    "name_zh": 200, "name_en": 200, "website": 200, "scope": 500, "issuer_name_zh": 200, "issuer_name_en": 200,
    "brand_zh": 200, "brand_en": 200, "image_url": 500, "text_zh": 1000, "text_en": 1000, "standard": 100,
    "hazard_zh": 500, "hazard_en": 500, "remedy_text_zh": 500, "remedy_text_en": 500, "notice_url": 500,
    "recall_id": 64, "authorised_sellers.name_zh": 200, "authorised_sellers.name_en": 200,
}
MAX_CLOCK_SKEW_SECONDS = 300
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Event:
    """A ledger event, decoded. ``kind`` is the payload record's name."""

    event_id: str
    subject_type: str
    subject: str
    seq: int
    prev_hash: bytes
    occurred_at: datetime
    actor: str
    key_id: str
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict:
        return {
            "event_id": self.event_id,
            "subject_type": self.subject_type,
            "subject": self.subject,
            "seq": self.seq,
            "prev_hash": self.prev_hash,
            "occurred_at": self.occurred_at,
            "actor": self.actor,
            "key_id": self.key_id,
            "payload": (f"traceledger.v1.{self.kind}", self.payload),
        }

    @classmethod
    def from_record(cls, record: dict) -> "Event":
        name, payload = record["payload"]
        return cls(
            event_id=record["event_id"],
            subject_type=record["subject_type"],
            subject=record["subject"],
            seq=record["seq"],
            prev_hash=record["prev_hash"],
            occurred_at=record["occurred_at"],
            actor=record["actor"],
            key_id=record["key_id"],
            kind=name.rsplit(".", 1)[-1],
            payload=payload,
        )

    def encode(self) -> bytes:
        """The canonical bytes. Validates first: nothing invalid gets signed."""
        validate_event(self)
        try:
            return event_codec().encode(self.to_record())
        except (ValueError, TypeError, KeyError) as exc:  # wrong types in payload
            raise Refused("invalid_field", f"{self.kind}: {exc}", field="payload") from None

    def sign(self, key: KeyPair) -> "SignedEvent":
        if key.key_id != self.key_id:
            raise Refused("key_mismatch", "event names a different key_id than the signing key", field="key_id")
        body = self.encode()
        # The decoded form of ``body`` has every schema field (Avro fills defaults); so has this one.
        missing = payload_defaults(self.kind).keys() - self.payload.keys() if isinstance(self.payload, dict) else ()
        defaults = payload_defaults(self.kind)
        filled = {k: list(defaults[k]) if isinstance(defaults[k], list) else defaults[k] for k in missing}
        event = replace(self, payload={**self.payload, **filled}) if missing else self
        return SignedEvent(body=body, signature=key.sign(body), event=event)


@lru_cache(maxsize=None)
def payload_defaults(kind: str) -> dict[str, Any]:
    """The latest schema's default of each optional field of ``kind``'s payload (fields added by later versions)."""
    payload = next(f for f in event_codec().latest.schema["fields"] if f["name"] == "payload")["type"]
    record = next((r for r in payload if r["name"].rsplit(".", 1)[-1] == kind), None)
    return {f["name"]: f["default"] for f in (record or {}).get("fields", ()) if "default" in f}


@dataclass(frozen=True)
class SignedEvent:
    """Canonical body + signature, with the decoded event alongside."""

    body: bytes
    signature: bytes
    event: Event

    @cached_property
    def hash(self) -> bytes:
        return event_hash(self.body)

    @cached_property
    def envelope(self) -> bytes:
        """The Kafka record value: Avro single-object ``SignedEvent``."""
        return envelope_codec().encode({"body": self.body, "signature": self.signature})

    @classmethod
    def from_parts(cls, body: bytes, signature: bytes) -> "SignedEvent":
        """Decode and validate ``body`` (the signature is checked by the caller)."""
        if not isinstance(signature, (bytes, bytearray)) or len(signature) != 64:
            raise Refused("bad_signature", "signature must be 64 bytes", field="signature")
        event = Event.from_record(event_codec().decode(body))
        validate_event(event)
        return cls(body=bytes(body), signature=bytes(signature), event=event)

    @classmethod
    def from_envelope(cls, value: bytes) -> "SignedEvent":
        return cls.from_parts(*split_envelope(value))


@lru_cache(maxsize=20_000)
def decode_signed(body: bytes, signature: bytes) -> SignedEvent:
    """``SignedEvent.from_parts`` remembering recent results.

    The write path decodes an event when it checks it and again when its
    aggregate folds it a moment later; the second time is free. Results are
    immutable, so sharing them is safe.
    """
    return SignedEvent.from_parts(body, signature)


def event_hash(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()


def new_event(
    *,
    subject_type: str,
    subject: str,
    kind: str,
    payload: dict,
    actor: str,
    key_id: str,
    seq: int = 0,
    prev_hash: bytes = GENESIS_HASH,
    occurred_at: datetime | None = None,
    event_id: str | None = None,
) -> Event:
    """Build an event with a fresh id and the current time (microsecond precision)."""
    when = occurred_at or datetime.now(timezone.utc)
    return Event(
        event_id=event_id or str(uuid.uuid4()),
        subject_type=subject_type,
        subject=subject,
        seq=seq,
        prev_hash=prev_hash,
        occurred_at=when,
        actor=actor,
        key_id=key_id,
        kind=kind,
        payload=payload,
    )


# ---------------------------------------------------------------- field rules


def _text(value: Any, name: str, *, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or (required and not value.strip()):
        raise Refused("invalid_field", f"{name} must be a non-empty string", field=name)
    limit = MAX_TEXT.get(name, 64)
    if len(value) > limit:
        raise Refused("field_too_long", f"{name} is longer than {limit} characters", field=name)
    if _CONTROL.search(value):
        raise Refused("invalid_field", f"{name} contains control characters", field=name)


def _match(pattern: re.Pattern, value: Any, name: str, what: str, *, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise Refused("invalid_field", f"{name} must be {what}", field=name)


def validate_actor_id(value: Any, name: str = "actor") -> str:
    _match(_ACTOR_ID, value, name, "2-64 characters of a-z, 0-9, '.', '_', '-'")
    return value


def validate_region(value: Any, name: str = "region", *, required: bool = True) -> None:
    _match(_REGION, value, name, "a region code of 2-12 digits (GB/T 2260 prefix)", required=required)


def validate_territory(value: Any, name: str = "territory", *, required: bool = True) -> None:
    _match(regions.TERRITORY, value, name, f"region codes of 2-12 digits (GB/T 2260 prefixes), up to {regions.MAX_TERRITORY_CODES} comma-separated", required=required)


def validate_channel(value: Any, name: str = "channel") -> None:
    _match(_CHANNEL, value, name, "a channel name of a-z, 0-9, '_' (max 32)")


def _validate_subject(event: Event) -> None:
    if event.subject_type == "label":
        gs1.validate_serial(event.subject, "subject")
    elif event.subject_type == "lot":
        gtin, lot = gs1.split_lot_key(event.subject)
        if f"{gtin}/{lot}" != event.subject:
            raise Refused("invalid_lot", "lot key must use the GTIN-14 form", field="subject")
    elif event.subject_type == "actor":
        validate_actor_id(event.subject, "subject")
    elif event.subject_type == "alert":
        _uuid(event.subject, "subject")
    elif event.subject_type == "container":
        gs1.validate_sscc(event.subject, "subject")
    elif event.subject_type == "certificate":
        validate_certificate_id(event.subject, "subject")
    elif event.subject_type == "product":
        _gtin14(event.subject, "subject")
    elif event.subject_type == "batch":
        _uuid(event.subject, "subject")
        if event.seq != 0:
            raise Refused("invalid_field", "a batch is one event: its seq is 0", field="seq")
    else:
        raise Refused("invalid_field", f"unknown subject_type {event.subject_type!r}", field="subject_type")


# Exactly the strings ``str(uuid.UUID(s)) == s`` accepts (lower-case 8-4-4-4-12 hex),
# without building a UUID object per event.
_LOWER_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def validate_certificate_id(value: Any, name: str = "certificates") -> str:
    """A certificate's subject id: ``<scheme>/<number>``, e.g. ``CCC/2024011101234567``."""
    scheme, _, number = value.partition("/") if isinstance(value, str) else ("", "", "")
    if not (_SCHEME.fullmatch(scheme) and _CERT_NUMBER.fullmatch(number)):
        raise Refused("invalid_field", f"{name} must be certificate ids '<SCHEME>/<number>' (scheme A-Z 0-9 _ -, number up to 64 characters)", field=name)
    return value


def _uuid(value: Any, name: str) -> None:
    if not isinstance(value, str) or not _LOWER_UUID.fullmatch(value):
        raise Refused("invalid_field", f"{name} must be a lower-case UUID", field=name)


def _child_code(value: Any, name: str) -> None:
    """A child of a container: an SSCC (18 digits) or a label serial."""
    if isinstance(value, str) and value.isdigit() and len(value) == 18:
        gs1.validate_sscc(value, name)
    else:
        gs1.validate_serial(value, name)


def _lot_key(value: Any, name: str) -> None:
    gtin, lot = gs1.split_lot_key(value)
    if f"{gtin}/{lot}" != value:
        raise Refused("invalid_lot", f"{name}: lot key must use the GTIN-14 form", field=name)


def _code_list(values: Any, name: str, check, *, limit: int) -> None:
    if not isinstance(values, list) or not values:
        raise Refused("invalid_field", f"{name} must be a non-empty list", field=name)
    if len(values) > limit:
        raise Refused("field_too_long", f"{name} has more than {limit} entries", field=name)
    if len(set(values)) != len(values):
        raise Refused("invalid_field", f"{name} lists an entry twice", field=name)
    for value in values:
        check(value, name)


def validate_event(event: Event) -> None:
    """Field-level rules that need no ledger state. Raises :class:`Refused`."""
    _uuid(event.event_id, "event_id")
    _validate_subject(event)
    if event.kind not in KINDS_BY_SUBJECT.get(event.subject_type, ()):
        raise Refused("invalid_field", f"{event.kind} is not an event of a {event.subject_type}", field="payload")
    if not isinstance(event.seq, int) or event.seq < 0:
        raise Refused("invalid_field", "seq must be >= 0", field="seq")
    if not isinstance(event.prev_hash, bytes) or len(event.prev_hash) != 32:
        raise Refused("invalid_field", "prev_hash must be 32 bytes", field="prev_hash")
    if (event.seq == 0) != (event.prev_hash == GENESIS_HASH):
        raise Refused("chain_mismatch", "prev_hash must be the genesis value exactly when seq is 0", field="prev_hash")
    if not isinstance(event.occurred_at, datetime) or event.occurred_at.tzinfo is None:
        raise Refused("invalid_field", "occurred_at must be a timezone-aware time", field="occurred_at")
    if event.occurred_at < EARLIEST:
        raise Refused("invalid_field", "occurred_at is before 2000", field="occurred_at")
    validate_actor_id(event.actor)
    _match(_KEY_ID, event.key_id, "key_id", "64 lower-case hex digits")
    _validate_payload_once(event.kind, event.payload)


# Payloads that passed the field rules, by (kind, field, type, value): a batch of labels
# repeats one payload (same GTIN, lot, product, expiry) thousands of times, and the rules
# are a pure function of it. Types are part of the key so 1 and 1.0 never share an answer.
_VALID_PAYLOADS: dict[tuple, bool] = {}
_VALID_PAYLOADS_MAX = 4096


def _validate_payload_once(kind: str, p: dict) -> None:
    try:
        # event.v4 gives most payloads list fields, nearly always empty ([] certificates,
        # biz_transactions): a short list of plain values keys as a tuple (its type stays in
        # the key); a long one (a pallet's children) would make the remembered keys large.
        key = (kind, tuple((name, type(value), tuple(value) if type(value) is list and len(value) <= 20 else value) for name, value in p.items()))
        hash(key)
    except (TypeError, AttributeError):  # lists (children, inputs, ...) or not a dict: no shortcut
        _validate_payload(kind, p)
        return
    if key in _VALID_PAYLOADS:
        return
    _validate_payload(kind, p)
    if len(_VALID_PAYLOADS) >= _VALID_PAYLOADS_MAX:
        _VALID_PAYLOADS.clear()
    _VALID_PAYLOADS[key] = True


def _validate_batch(kind: str, p: dict) -> None:
    count = p.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_BATCH_COUNT:
        raise Refused("batch_too_large" if isinstance(count, int) and count > MAX_BATCH_COUNT else "invalid_field",
                      f"count must be 1..{MAX_BATCH_COUNT} labels per batch event", field="count")
    root = p.get("labels_root")
    if not isinstance(root, bytes) or len(root) != 32:
        raise Refused("invalid_field", "labels_root must be 32 bytes", field="labels_root")
    if kind == "BatchIssued":
        _validate_payload("Issued", {**{k: p.get(k) for k in ("gtin", "lot", "expiry", "product", "region", "certificates", "production_date")}, "pin_hash": None})
        secret = p.get("pin_secret")
        if secret is not None and (not isinstance(secret, bytes) or len(secret) != SEALED_SECRET_BYTES):
            raise Refused("invalid_field", f"pin_secret must be a {SEALED_SECRET_BYTES}-byte sealed box", field="pin_secret")
    elif kind in ("BatchShipped", "BatchReceived"):
        validate_region(p.get("region"), required=False)
        sealed = p.get("sealed")
        if sealed is not None and (not isinstance(sealed, bytes) or len(sealed) != 32):
            raise Refused("invalid_field", "sealed must be a 32-byte commitment", field="sealed")
    else:
        _text(p.get("reason"), "reason")


def _validate_payload(kind: str, p: dict) -> None:
    if not isinstance(p, dict):
        raise Refused("invalid_field", "payload must be a record", field="payload")
    if kind in PLACED_KINDS:
        _validate_epcis_fields(kind, p)
    if kind in BATCH_KINDS:
        _validate_batch(kind, p)
    elif kind == "Issued":
        if gs1.normalize_gtin(p.get("gtin")) != p.get("gtin"):
            raise Refused("invalid_gtin", "gtin must be written as GTIN-14", field="gtin")
        gs1.validate_lot(p.get("lot"))
        _match(_EXPIRY, p.get("expiry"), "expiry", "a date YYYY-MM-DD", required=False)
        if p.get("expiry") is not None:
            try:
                datetime.strptime(p["expiry"], "%Y-%m-%d")
            except ValueError:
                raise Refused("invalid_field", "expiry is not a calendar date", field="expiry") from None
        _text(p.get("product"), "product")
        validate_region(p.get("region"), required=False)
        _text(p.get("pin_hash"), "pin_hash", required=False)
        _validate_product_facts(p)
    elif kind == "Shipped":
        validate_actor_id(p.get("consignee"), "consignee")
        validate_territory(p.get("territory"))
        validate_channel(p.get("channel"))
        validate_region(p.get("region"), required=False)
    elif kind == "Received":
        validate_region(p.get("region"), required=False)
    elif kind == "Scanned":
        validate_channel(p.get("channel"))
        validate_region(p.get("region"), required=False)
        for name, limit in (("lat", 90.0), ("lon", 180.0)):
            v = p.get(name)
            if v is not None and (not isinstance(v, float) or abs(v) > limit or round(v, 2) != v):
                raise Refused("invalid_field", f"{name} must be coarse degrees (2 decimals) within ±{limit:g}", field=name)
        _text(p.get("session"), "session", required=False)
        if p.get("pin_result") not in (None, *PIN_RESULTS):
            raise Refused("invalid_field", f"pin_result must be one of {', '.join(PIN_RESULTS)}", field="pin_result")
        _validate_place(p)
    elif kind == "ReportedFake":
        validate_channel(p.get("channel"))
        validate_region(p.get("region"), required=False)
        _text(p.get("reason"), "reason")
        _text(p.get("session"), "session", required=False)
        _validate_place(p)
    elif kind == "AlertRaised":
        _match(_CHANNEL, p.get("alert_kind"), "alert_kind", "an alert kind (a-z, 0-9, '_')")
        if p.get("producer") is not None:
            validate_actor_id(p["producer"], "producer")
        if p.get("serial") is not None:
            gs1.validate_serial(p["serial"])
        if p.get("severity") not in SEVERITIES:
            raise Refused("invalid_field", f"severity must be one of {', '.join(SEVERITIES)}", field="severity")
        _digest(p.get("evidence_commitment"), "evidence_commitment")
    elif kind == "ActorKeyCompromised":
        _match(_KEY_ID, p.get("key_id"), "key_id", "64 lower-case hex digits")
        since = p.get("since")
        if not isinstance(since, datetime) or since.tzinfo is None:
            raise Refused("invalid_field", "since must be a timezone-aware time", field="since")
        if since < EARLIEST:
            raise Refused("invalid_field", "since is before 2000", field="since")
        _text(p.get("reason"), "reason")
    elif kind in ("AlertAcknowledged", "AlertResolved"):
        _text(p.get("note"), "note")
        if p.get("producer") is not None:
            validate_actor_id(p["producer"], "producer")
        if kind == "AlertAcknowledged":
            _match(_CHANNEL, p.get("alert_kind"), "alert_kind", "an alert kind (a-z, 0-9, '_')")
            if p.get("serial") is not None:
                gs1.validate_serial(p["serial"])
        elif p.get("resolution") not in RESOLUTIONS:
            raise Refused("invalid_field", f"resolution must be one of {', '.join(RESOLUTIONS)}", field="resolution")
    elif kind == "ContainerCreated":
        if p.get("level") not in CONTAINER_LEVELS:
            raise Refused("invalid_field", f"level must be one of {', '.join(CONTAINER_LEVELS)}", field="level")
        validate_region(p.get("region"), required=False)
    elif kind in ("Packed", "Unpacked"):
        _code_list(p.get("children"), "children", _child_code, limit=MAX_CHILDREN)
        validate_region(p.get("region"), required=False)
    elif kind in ("PackedInto", "UnpackedFrom"):
        gs1.validate_sscc(p.get("container"), "container")
        if kind == "UnpackedFrom":
            validate_territory(p.get("territory"), required=False)
            if p.get("channel") is not None:
                validate_channel(p["channel"])
    elif kind == "LotCommissioned":
        _text(p.get("product"), "product")
        certificates = p.get("certificates")
        if not isinstance(certificates, list) or len(certificates) > 20:
            raise Refused("invalid_field", "certificates must be a list of at most 20", field="certificates")
        for certificate in certificates:
            _text(certificate, "certificates")
        validate_region(p.get("region"), required=False)
        _date(p.get("production_date"), "production_date", required=False)
    elif kind == "Transformed":
        _code_list(p.get("inputs"), "inputs", _lot_key, limit=1000)
        validate_region(p.get("region"), required=False)
    elif kind in ("FlaggedCounterfeit", "Recalled", "Decommissioned", "ActorRevoked"):
        _text(p.get("reason"), "reason")
        if kind == "FlaggedCounterfeit":
            validate_region(p.get("region"), required=False)
        elif kind == "Recalled":
            _validate_recall_notice(p)
    elif kind == "ActorRegistered":
        if p.get("role") not in ROLES:
            raise Refused("invalid_field", f"role must be one of {', '.join(ROLES)}", field="role")
        _text(p.get("name"), "name")
        _public_key(p.get("public_key"))
        prefixes = p.get("gtin_prefixes")
        if not isinstance(prefixes, list) or len(prefixes) > 50:
            raise Refused("invalid_field", "gtin_prefixes must be a list of at most 50", field="gtin_prefixes")
        for prefix in prefixes:
            _match(_PREFIX, prefix, "gtin_prefixes", "GS1 company prefixes of 6-12 digits")
        schemes = p.get("schemes", [])
        if not isinstance(schemes, list) or len(schemes) > MAX_SCHEMES or len(set(schemes)) != len(schemes):
            raise Refused("invalid_field", f"schemes must be a list of at most {MAX_SCHEMES} distinct schemes", field="schemes")
        for scheme in schemes:
            _match(_SCHEME, scheme, "schemes", "certification schemes (A-Z, 0-9, '_', '-'; e.g. CCC)")
        # A certifier certifies under its schemes; nobody else holds one.
        if (p.get("role") == "certifier") != bool(schemes):
            raise Refused("invalid_field", "a certifier names the schemes it certifies, and only a certifier has schemes", field="schemes")
        _validate_profile(p)
    elif kind == "ActorProfileChanged":
        _validate_profile(p)
    elif kind in CERTIFICATE_KINDS:
        _validate_certificate(kind, p)
    elif kind == "ProductDescribed":
        _validate_product(p)
    elif kind == "QualityCommitted":
        _text(p.get("text_zh"), "text_zh")
        _text(p.get("text_en"), "text_en", required=False)
        _text(p.get("standard"), "standard", required=False)
        _date(p.get("valid_until"), "valid_until", required=False)
    elif kind in ASSOCIATION_KINDS:
        _epcis_text(p.get("parent"), "parent")
    elif kind in DECLARATION_KINDS:
        _uuid(p.get("event_id"), "event_id")
        _text(p.get("reason"), "reason")
        if kind == "Corrected":
            ids = p.get("corrective_event_ids")
            _epcis_list(ids, "corrective_event_ids")
            for value in ids:
                _uuid(value, "corrective_event_ids")
            if p["event_id"] in ids or len(set(ids)) != len(ids):
                raise Refused("invalid_field", "corrective_event_ids name distinct events other than the one in error", field="corrective_event_ids")
            # event.v5: corrective events another repository holds, by the partner's eventIDs (absent before v5).
            elsewhere = p.get("corrective_epcis_ids") or []
            _epcis_list(elsewhere, "corrective_epcis_ids")
            for value in elsewhere:
                _epcis_text(value, "corrective_epcis_ids")
            if len(set(elsewhere)) != len(elsewhere) or len(ids) + len(elsewhere) > MAX_EPCIS_LIST:
                raise Refused("invalid_field", f"corrective_epcis_ids name distinct events, at most {MAX_EPCIS_LIST} corrective events in all",
                              field="corrective_epcis_ids")
    elif kind == TRANSACTION_KIND:
        _validate_transaction(p)
    elif kind == "ActorKeyRotated":
        _public_key(p.get("public_key"))


def _validate_transaction(p: dict) -> None:
    """event.v5 TransactionRecorded: an action, at least one business transaction, and the EPCIS words as written."""
    if p.get("action") not in TRANSACTION_ACTIONS:
        raise Refused("invalid_field", f"action must be one of {', '.join(TRANSACTION_ACTIONS)}", field="action")
    if not p.get("biz_transactions"):
        raise Refused("missing_field", "a transaction names at least one business transaction", field="biz_transactions")
    _epcis_text(p.get("parent"), "parent", required=False)
    for name in ("biz_step", "disposition"):
        _epcis_text(p.get(name), name, required=False)
        if p.get(name) is not None and not (_CBV_WORD.fullmatch(p[name]) or ":" in p[name]):
            raise Refused("invalid_field", f"{name} must be a CBV word (shipping, in_transit...) or a URI", field=name)


def _gtin14(value: Any, name: str) -> None:
    try:
        ok = gs1.normalize_gtin(value) == value
    except Refused:
        ok = False
    if not ok:
        raise Refused("invalid_gtin", f"{name} must be a GTIN-14 (14 digits, correct check digit)", field=name)


def _date(value: Any, name: str, *, required: bool = True) -> None:
    _match(_EXPIRY, value, name, "a date YYYY-MM-DD", required=required)
    if value is not None:
        try:
            datetime.strptime(value, "%Y-%m-%d")
        except ValueError:
            raise Refused("invalid_field", f"{name} is not a calendar date", field=name) from None


def _https(value: Any, name: str) -> None:
    _text(value, name, required=False)
    if value is not None and (not value.startswith("https://") or len(value) < 12 or " " in value):
        raise Refused("invalid_field", f"{name} must be an https:// URL", field=name)


def _gln(value: Any, name: str) -> None:
    """A GS1 GLN (or party GLN): 13 digits with a correct check digit."""
    if value is None:
        return
    if not isinstance(value, str) or not _GLN.fullmatch(value) or gs1.gtin_check_digit(value[:12]) != int(value[12]):
        raise Refused("invalid_field", f"{name} must be a GS1 GLN: 13 digits with a correct check digit", field=name)


def _hotline(value: Any, name: str = "hotline") -> None:
    _match(_HOTLINE, value, name, "a phone number of digits, spaces, '-' and a leading '+' (3-24 characters)", required=False)


def _validate_profile(p: dict) -> None:
    """event.v4 actor profile: names in Chinese and English, hotline, website, GLN / PGLN (all optional)."""
    _text(p.get("name_zh"), "name_zh", required=False)
    _text(p.get("name_en"), "name_en", required=False)
    _hotline(p.get("hotline"))
    _https(p.get("website"), "website")
    _gln(p.get("gln"), "gln")
    _gln(p.get("pgln"), "pgln")


def _validate_product_facts(p: dict) -> None:
    """event.v4 on Issued / BatchIssued: certificate ids and the production date."""
    certificates = p.get("certificates") or []  # absent before v4 (and in BatchIssued's check of its Issued fields)
    if not isinstance(certificates, list) or len(certificates) > MAX_CERTIFICATES or len(set(certificates)) != len(certificates):
        raise Refused("invalid_field", f"certificates must be a list of at most {MAX_CERTIFICATES} distinct certificate ids", field="certificates")
    for certificate in certificates:
        validate_certificate_id(certificate)
    _date(p.get("production_date"), "production_date", required=False)
    if p.get("production_date") is not None and p.get("expiry") is not None and p["production_date"] > p["expiry"]:
        raise Refused("invalid_field", "production_date is after expiry", field="production_date")


def _validate_recall_notice(p: dict) -> None:
    """event.v4 on Recalled: what a consumer can act on (all optional)."""
    for name in ("hazard_zh", "hazard_en", "remedy_text_zh", "remedy_text_en", "recall_id"):
        _text(p.get(name), name, required=False)
    if p.get("remedy") not in (None, *REMEDIES):
        raise Refused("invalid_field", f"remedy must be one of {', '.join(REMEDIES)}", field="remedy")
    _hotline(p.get("hotline"))
    _https(p.get("notice_url"), "notice_url")


def _validate_certificate(kind: str, p: dict) -> None:
    _text(p.get("reason"), "reason") if kind != "CertificateIssued" else None
    if kind == "CertificateSuspended":
        _date(p.get("until"), "until", required=False)
    if kind != "CertificateIssued":
        return
    _match(_SCHEME, p.get("scheme"), "scheme", "a certification scheme (A-Z, 0-9, '_', '-'; e.g. CCC)")
    _match(_CERT_NUMBER, p.get("number"), "number", "a certificate number (A-Z a-z 0-9 . _ -, up to 64)")
    validate_actor_id(p.get("holder"), "holder")
    _text(p.get("scope"), "scope")
    _text(p.get("issuer_name_zh"), "issuer_name_zh", required=False)
    _text(p.get("issuer_name_en"), "issuer_name_en", required=False)
    gtins, prefixes = p.get("gtins", []), p.get("gtin_prefixes", [])
    if not isinstance(gtins, list) or len(gtins) > MAX_CERTIFIED_GTINS:
        raise Refused("field_too_long" if isinstance(gtins, list) else "invalid_field", f"gtins must be a list of at most {MAX_CERTIFIED_GTINS}", field="gtins")
    for g in gtins:
        _gtin14(g, "gtins")
    if not isinstance(prefixes, list) or len(prefixes) > 50:
        raise Refused("invalid_field", "gtin_prefixes must be a list of at most 50", field="gtin_prefixes")
    for prefix in prefixes:
        _match(_PREFIX, prefix, "gtin_prefixes", "GS1 company prefixes of 6-12 digits")
    _date(p.get("valid_from"), "valid_from")
    _date(p.get("valid_until"), "valid_until")
    if p["valid_until"] < p["valid_from"]:
        raise Refused("invalid_field", "valid_until is before valid_from", field="valid_until")


def _validate_product(p: dict) -> None:
    _text(p.get("name_zh"), "name_zh")
    for name in ("name_en", "brand_zh", "brand_en"):
        _text(p.get(name), name, required=False)
    image = p.get("image_sha256")
    if image is not None:
        _digest(image, "image_sha256")
    _https(p.get("image_url"), "image_url")
    sellers = p.get("authorised_sellers", [])
    if not isinstance(sellers, list) or len(sellers) > MAX_SELLERS:
        raise Refused("field_too_long" if isinstance(sellers, list) else "invalid_field", f"authorised_sellers must be a list of at most {MAX_SELLERS}", field="authorised_sellers")
    for seller in sellers:
        if not isinstance(seller, dict):
            raise Refused("invalid_field", "authorised_sellers must be records", field="authorised_sellers")
        _text(seller.get("name_zh"), "authorised_sellers.name_zh")
        _text(seller.get("name_en"), "authorised_sellers.name_en", required=False)
        validate_region(seller.get("region"), "authorised_sellers.region", required=False)


def _epcis_text(value: Any, name: str, *, required: bool = True) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not value.strip():
        raise Refused("invalid_field", f"{name} must be a non-empty string", field=name)
    if len(value) > MAX_EPCIS_TEXT:
        raise Refused("field_too_long", f"{name} is longer than {MAX_EPCIS_TEXT} characters", field=name)
    if _CONTROL.search(value):
        raise Refused("invalid_field", f"{name} contains control characters", field=name)


def _epcis_list(values: Any, name: str) -> None:
    if not isinstance(values, list):
        raise Refused("invalid_field", f"{name} must be a list", field=name)
    if len(values) > MAX_EPCIS_LIST:
        raise Refused("field_too_long", f"{name} has more than {MAX_EPCIS_LIST} entries", field=name)


def validate_sgln(value: Any, name: str) -> None:
    """A location as EPCIS names it: an SGLN URN or a GS1 Digital Link with AI 414 (GLN check digit checked)."""
    _epcis_text(value, name)
    urn, link = _SGLN_URN.fullmatch(value), _SGLN_LINK.fullmatch(value)
    if urn and len(urn.group(1)) + len(urn.group(2)) == 12:  # an SGLN URN has no check digit
        return
    if link and gs1.gtin_check_digit(link.group(1)[:12]) == int(link.group(1)[12]):
        return
    raise Refused("invalid_field", f"{name} must be an SGLN (urn:epc:id:sgln:<prefix>.<location>.<extension>, 12 digits in all) or a GS1 Digital Link .../414/<GLN>", field=name)


def _records(values: Any, name: str, fields: tuple[str, ...]) -> list[dict]:
    _epcis_list(values, name)
    for value in values:
        if not isinstance(value, dict):
            raise Refused("invalid_field", f"{name} must be records with {', '.join(fields)}", field=name)
        for f in fields:
            _epcis_text(value.get(f), f"{name}.{f}")
    return values


def _validate_epcis_fields(kind: str, p: dict) -> None:
    """event.v4 (issue 19): what an EPCIS event carries beyond the ledger's own fields (all optional)."""
    for name in ("read_point", "biz_location"):
        if p.get(name) is not None:
            validate_sgln(p[name], name)
    _epcis_text(p.get("epcis_event_id"), "epcis_event_id", required=False)
    for t in _records(p.get("biz_transactions") or [], "biz_transactions", ("type", "value")):
        if not (_CBV_WORD.fullmatch(t["type"]) or ":" in t["type"]):
            raise Refused("invalid_field", "biz_transactions.type must be a CBV word (po, desadv, inv, ...) or a URI", field="biz_transactions.type")
    for name in ("sources", "destinations"):
        for entry in _records(p.get(name) or [], name, ("type", "value")):
            if entry["type"] not in SOURCE_DEST_TYPES:
                raise Refused("invalid_field", f"{name}.type must be one of {', '.join(SOURCE_DEST_TYPES)}", field=f"{name}.type")
            if entry["type"] == "location":
                validate_sgln(entry["value"], f"{name}.value")
    for info in _records(p.get("certification_info") or [], "certification_info", ("standard", "agency", "value")):
        _epcis_text(info.get("identification"), "certification_info.identification", required=False)
    if p.get("sensor_data") is not None:
        _sensor_data(p["sensor_data"])


def _sensor_data(data: Any) -> None:
    """Opaque to the ledger, but bounded and canonical: one byte string per reading list."""
    if not isinstance(data, bytes):
        raise Refused("invalid_field", "sensor_data must be bytes (canonical JSON)", field="sensor_data")
    if len(data) > MAX_SENSOR_BYTES:
        raise Refused("field_too_long", f"sensor_data is larger than {MAX_SENSOR_BYTES} bytes", field="sensor_data")
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Refused("invalid_field", "sensor_data is not UTF-8 JSON", field="sensor_data") from None
    if not isinstance(value, list):
        raise Refused("invalid_field", "sensor_data must be a JSON array (EPCIS sensorElementList)", field="sensor_data")
    if json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() != data:
        raise Refused("invalid_field", "sensor_data must be canonical JSON (sorted keys, no spaces)", field="sensor_data")


def _validate_place(p: dict) -> None:
    """event.v4 ``place_source`` / ``claimed_region`` of a scan or report (both absent before v4)."""
    source = p.get("place_source")
    if source not in (None, *PLACE_SOURCES):
        raise Refused("invalid_field", f"place_source must be one of {', '.join(PLACE_SOURCES)}", field="place_source")
    # A place source says where ``region`` came from: "none" has no region, the others have one.
    if source == "none" and p.get("region") is not None:
        raise Refused("invalid_field", "place_source none: region must be empty", field="place_source")
    if source not in (None, "none") and p.get("region") is None:
        raise Refused("invalid_field", f"place_source {source} names where region came from, but region is empty", field="region")
    validate_region(p.get("claimed_region"), "claimed_region", required=False)


def _digest(value: Any, name: str) -> None:
    if not isinstance(value, bytes) or len(value) != 32:
        raise Refused("invalid_field", f"{name} must be 32 bytes (SHA-256)", field=name)


def _public_key(value: Any) -> None:
    if not isinstance(value, bytes) or len(value) != 32:
        raise Refused("invalid_field", "public_key must be 32 bytes", field="public_key")
