"""GS1 EPCIS 2.0 (JSON-LD) from and to signed ledger events: a pure mapping.

Export: each ledger event becomes one EPCIS event (ObjectEvent,
AggregationEvent, TransformationEvent) with CBV bizStep/disposition in the
2.0 bare-word form (``ledger.events.EPCIS_MAPPING``), identifiers as GS1
Digital Link URIs (labels ``/01/{gtin}/21/{serial}``, containers
``/00/{sscc}``, lots as classes ``/01/{gtin}/10/{lot}``), ``readPoint`` from
the event's region and ``bizLocation`` from the signing party (the ledger
knows no GLNs yet, so neither is an SGLN), a shipment's ``sourceList`` /
``destinationList`` (owning parties: shipper and consignee), a receipt's
``destinationList`` (the receiver as possessing party), and a recall's
``persistentDisposition`` (``set: recalled``). A pack or
unpack is ONE AggregationEvent for the container's event and its children's
events together. Every EPCIS event carries the exact signed bytes in the
extension ``tl:signedEvents`` (base64 body + Ed25519 signature), because a
ledger event must stay signed by the actor who acted: the EPCIS fields are
a view of those bytes, never a replacement.

A batch event (event.v3, ``BatchIssued``...) is ONE ObjectEvent whose
``epcList`` names every label of its manifest (``ledger.batches``): a batch
issuance is an ADD ``commissioning`` of all of them, with the lot in ``ilmd``.
Its ``tl:signedEvents`` entry carries the manifest too (base64), because the
signed body holds only the manifest's Merkle root: with it, the epcList is
checkable against the signature, and the event can be captured elsewhere.
Mapping a batch event needs its manifest: ``manifests`` maps event id to
manifest bytes (the ledger keeps them in ``batch_manifests``).

Import: :func:`signed_events_of` validates a document against GS1's EPCIS 2.0
JSON schema (``schemas/epcis/EPCIS-JSON-Schema.json``), decodes every signed
event, and refuses an EPCIS event whose visible fields differ from what its
signed events map to (so nobody can capture a "shipping" that is signed as
something else). Errors are :class:`EpcisError` with the EPCIS exception type.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence
from urllib.parse import quote

from ledger import gs1
from ledger.batches import decode_manifest
from ledger.errors import Refused
from ledger.events import BATCH_KINDS, DECLARATION_KINDS, EPCIS_MAPPING, TRANSACTION_KIND, Event, SignedEvent, decode_signed

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "epcis" / "EPCIS-JSON-Schema.json"
TL_NAMESPACE = "https://traceledger.example/epcis/"
CONTEXT = ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {"tl": TL_NAMESPACE}]
SIGNED = "tl:signedEvents"
# Kinds with no EPCIS meaning (actor registry, alert handling) are not exported.
EXPORTED_SUBJECTS = ("label", "lot", "container", "batch")
# A pack's or unpack's kind -> the kind of its children's events (one EPCIS event together).
CHILD_KIND = {"Packed": "PackedInto", "Unpacked": "UnpackedFrom"}
PARENT_KIND = {v: k for k, v in CHILD_KIND.items()}
_ACTION = {"Issued": "ADD", "ContainerCreated": "ADD", "LotCommissioned": "ADD", "Decommissioned": "DELETE",
           "Packed": "ADD", "PackedInto": "ADD", "Unpacked": "DELETE", "UnpackedFrom": "DELETE",
           "BatchIssued": "ADD", "BatchDecommissioned": "DELETE", "Associated": "ADD", "Disassociated": "DELETE"}
# Where the objects are after the event: the signing party's site.
_AT_SIGNER = {"Issued", "Received", "ContainerCreated", "Packed", "Unpacked", "LotCommissioned", "Transformed",
              "BatchIssued", "BatchReceived"}
# Batch kinds read as the single kind of the same meaning (sources, destinations, ilmd...).
_SINGLE_KIND = {"BatchIssued": "Issued", "BatchShipped": "Shipped", "BatchReceived": "Received",
                "BatchRecalled": "Recalled", "BatchDecommissioned": "Decommissioned"}
NO_MANIFESTS: Mapping[str, bytes] = {}
# event.v5: a TransactionEvent's bizStep and disposition are the partner's, kept on each event as written.
# A Corrected / Retracted is the event it declares in error, with an errorDeclaration (:func:`declared_ids`).
EXPORTED_KINDS = frozenset({*EPCIS_MAPPING, TRANSACTION_KIND, *DECLARATION_KINDS})
DECLARES = "tl:declares"  # the signed event a declaration names (body + signature), so its fields are checkable
DECLARATION_ID = "tl:declarationID"  # the declaration's own ledger event id (its eventID is the declared event's)
ERROR_REASONS = ("did_not_occur", "incorrect_data")  # CBV 2.0; any other reason is a URI or stays text (tl:reason)
NO_DECLARED: Mapping[str, SignedEvent] = {}

GtinOf = Callable[[str], "str | None"]


class EpcisError(Exception):
    """A refused EPCIS document: ``exception`` is the EPCIS 2.0 exception type."""

    def __init__(self, exception: str, detail: str, *, event_index: int | None = None):
        super().__init__(detail)
        self.exception, self.detail, self.event_index = exception, detail, event_index

    def as_dict(self) -> dict:
        out = {"type": f"epcisException:{self.exception}", "title": self.exception, "detail": self.detail}
        if self.event_index is not None:
            out["eventIndex"] = self.event_index
        return out


# ---------------------------------------------------------------- identifiers


def label_uri(serial: str, gtin: str | None, host: str) -> str:
    """A label's EPC: its GS1 Digital Link URI (a URN naming the serial when its GTIN is unknown)."""
    if gtin is None:
        return f"urn:traceledger:label:{quote(serial, safe='')}"
    return gs1.digital_link_uri(gtin, serial, host)


def sscc_uri(sscc: str, host: str) -> str:
    return f"https://{host}/00/{sscc}"


def lot_uri(lot_key: str, host: str) -> str:
    gtin, lot = lot_key[:14], lot_key[15:]
    return f"https://{host}/01/{gtin}/10/{quote(lot, safe='')}"


def party_uri(actor: str, host: str) -> str:
    return f"https://{host}/party/{actor}"


def certificate_uri(certificate: str, host: str) -> str:
    """A certificate (``<SCHEME>/<number>``, a certifier's chain) as a URI for EPCIS ``certificationInfo``."""
    return f"https://{host}/certificate/{quote(certificate, safe='/')}"


def region_uri(region: str, host: str) -> str:
    return f"https://{host}/region/{region}"


def _epc(code: str, gtin_of: GtinOf, host: str) -> str:
    return sscc_uri(code, host) if gs1.is_sscc(code) else label_uri(code, gtin_of(code), host)


def _subject_epc(e: Event, gtin_of: GtinOf, host: str) -> str:
    return sscc_uri(e.subject, host) if e.subject_type == "container" else label_uri(e.subject, gtin_of(e.subject), host)


def epcis_time(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


# ---------------------------------------------------------------- export


def exported(e: Event) -> bool:
    """Whether a ledger event has an EPCIS form (event.v4 kinds such as a lot's QualityCommitted have none yet)."""
    return e.subject_type in EXPORTED_SUBJECTS and e.kind in EXPORTED_KINDS


def same_transaction(group: Sequence[SignedEvent], e: Event) -> bool:
    """Whether ``e`` is one more EPC of the TransactionEvent ``group`` holds (event.v5): the capture signs one
    TransactionRecorded per EPC, each with every field of the EPCIS event and its time, appended together; so
    the next event of the same signer, time and payload on another chain is the same EPCIS event."""
    first = group[0].event
    return (e.kind == first.kind == TRANSACTION_KIND and e.actor == first.actor and e.occurred_at == first.occurred_at
            and e.payload == first.payload and all((s.event.subject_type, s.event.subject) != (e.subject_type, e.subject) for s in group))


def declaration_of(e: Event, declared: Mapping[str, SignedEvent]) -> SignedEvent | None:
    """The event a Corrected / Retracted declares in error, if ``declared`` has it on the declaration's own chain
    (the rules cannot match the id to the chain: readers do, and a declaration of nothing there is not exported)."""
    target = declared.get(e.payload["event_id"])
    if target is None or (target.event.subject_type, target.event.subject) != (e.subject_type, e.subject):
        return None
    if not exported(target.event) or target.event.kind in DECLARATION_KINDS:  # nothing EPCIS could repeat
        return None
    return target


def group_events(signed: Iterable[SignedEvent], declared: Mapping[str, SignedEvent] = NO_DECLARED) -> list[list[SignedEvent]]:
    """Signed events (log order) grouped into EPCIS events: a Packed/Unpacked with its children's events, the
    TransactionRecorded events of one TransactionEvent (adjacent in the log: :func:`same_transaction`), each
    declaration whose declared event ``declared`` holds (:func:`declaration_of`) on its own."""
    groups: list[list[SignedEvent]] = []
    waiting: dict[tuple[str, str, str], list[SignedEvent]] = {}
    for s in signed:
        e = s.event
        if not exported(e) or (e.kind in DECLARATION_KINDS and declaration_of(e, declared) is None):
            continue
        if groups and same_transaction(groups[-1], e):
            groups[-1].append(s)
        elif e.kind in CHILD_KIND:
            group = [s]
            for child in e.payload["children"]:
                waiting[(e.subject, CHILD_KIND[e.kind], child)] = group
            groups.append(group)
        elif e.kind in PARENT_KIND and (key := (e.payload["container"], e.kind, e.subject)) in waiting:
            waiting.pop(key).append(s)
        else:
            groups.append([s])
    return groups


def batch_serials(signed: SignedEvent, manifests: Mapping[str, bytes]) -> list[str]:
    """The labels of a batch event, in manifest order (from its manifest); refused if the manifest is unknown."""
    manifest = manifests.get(signed.event.event_id)
    if manifest is None:
        raise Refused("missing_manifest", f"batch event {signed.event.event_id} is mapped without its manifest", field="manifest")
    return [step.serial for step in decode_manifest(manifest)]


def label_codes(signed: SignedEvent, manifests: Mapping[str, bytes] = NO_MANIFESTS) -> list[str]:
    """The label serials an event names (its subject, the children it packs or unpacks, a batch's labels)."""
    e = signed.event
    codes = [e.subject] if e.subject_type == "label" else []
    if e.kind in CHILD_KIND:
        codes += [c for c in e.payload["children"] if not gs1.is_sscc(c)]
    if e.subject_type == "batch" and e.event_id in manifests:
        codes += batch_serials(signed, manifests)
    return codes


def issued_gtins(signed: Iterable[SignedEvent], manifests: Mapping[str, bytes] = NO_MANIFESTS) -> dict[str, str]:
    """serial -> GTIN of the labels these events issue (singly or in a batch)."""
    out: dict[str, str] = {}
    for s in signed:
        if s.event.kind == "Issued":
            out[s.event.subject] = s.event.payload["gtin"]
        elif s.event.kind == "BatchIssued" and s.event.event_id in manifests:
            out.update(dict.fromkeys(batch_serials(s, manifests), s.event.payload["gtin"]))
    return out


def _jsonable(value):
    """A payload value for ``tl:event`` (JSON): bytes (a batch's labels_root, sealed secrets) as base64."""
    return base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else value


def to_epcis(group: Sequence[SignedEvent], gtin_of: GtinOf, host: str, manifests: Mapping[str, bytes] = NO_MANIFESTS,
             declared: Mapping[str, SignedEvent] = NO_DECLARED) -> dict:
    """One EPCIS 2.0 event for a group from :func:`group_events` (a batch event needs its manifest, a declaration
    the event it declares). Pure."""
    first = group[0]
    if first.event.kind in DECLARATION_KINDS:
        return _error_declaration(first, gtin_of, host, declared)
    e, p = first.event, first.event.payload
    biz_step, disposition = (p.get("biz_step"), p.get("disposition")) if e.kind == TRANSACTION_KIND else EPCIS_MAPPING[e.kind]
    kind = _SINGLE_KIND.get(e.kind, e.kind)
    out: dict = {
        "type": "ObjectEvent",
        "eventTime": epcis_time(e.occurred_at),
        "eventTimeZoneOffset": "+00:00",
        "eventID": f"urn:uuid:{e.event_id}",
    }
    if e.kind in ("Packed", "Unpacked", "PackedInto", "UnpackedFrom"):
        parent = e.subject if e.kind in CHILD_KIND else p["container"]
        children = p["children"] if e.kind in CHILD_KIND else [e.subject]
        out.update(type="AggregationEvent", parentID=sscc_uri(parent, host), childEPCs=[_epc(c, gtin_of, host) for c in children])
        out["action"] = _ACTION[e.kind]
    elif e.kind in ("Associated", "Disassociated"):
        # event.v4: an AssociationEvent; the parent is any identifier (a GIAI, a GRAI...), kept as the partner wrote it.
        out.update(type="AssociationEvent", parentID=p["parent"], childEPCs=[_epc(e.subject, gtin_of, host)])
        out["action"] = _ACTION[e.kind]
    elif e.kind == TRANSACTION_KIND:
        # event.v5: one TransactionRecorded per EPC; the group (same_transaction) is the partner's one event.
        out.update(type="TransactionEvent", epcList=[_subject_epc(s.event, gtin_of, host) for s in group])
        if p.get("parent"):
            out["parentID"] = p["parent"]
        out["action"] = p["action"]
    elif e.kind == "Transformed":
        out.update(type="TransformationEvent",
                   inputQuantityList=[{"epcClass": lot_uri(k, host)} for k in p["inputs"]],
                   outputQuantityList=[{"epcClass": lot_uri(e.subject, host)}])
    else:
        if e.subject_type == "lot":
            out["quantityList"] = [{"epcClass": lot_uri(e.subject, host)}]
        elif e.kind in BATCH_KINDS:
            gtin = (lambda _: p["gtin"]) if e.kind == "BatchIssued" else gtin_of
            out["epcList"] = [label_uri(serial, gtin(serial), host) for serial in batch_serials(first, manifests)]
        else:
            out["epcList"] = [_epc(e.subject, gtin_of, host) if e.subject_type == "container" else label_uri(e.subject, gtin_of(e.subject), host)]
        out["action"] = _ACTION.get(e.kind, "OBSERVE")
    if biz_step:  # a TransactionEvent may have none
        out["bizStep"] = biz_step
    if disposition:
        out["disposition"] = disposition
    if p.get("region"):
        out["readPoint"] = {"id": region_uri(p["region"], host)}
    if e.kind in _AT_SIGNER:
        out["bizLocation"] = {"id": party_uri(e.actor, host)}
    if kind == "Shipped" and "consignee" in p:
        out["sourceList"] = [{"type": "owning_party", "source": party_uri(e.actor, host)}]
        out["destinationList"] = [{"type": "owning_party", "destination": party_uri(p["consignee"], host)}]
    elif kind == "Received":
        # The receiver takes custody (possession); who owns the goods the ledger does not record.
        out["destinationList"] = [{"type": "possessing_party", "destination": party_uri(e.actor, host)}]
    _captured_fields(p, out)
    if kind == "Recalled":
        # A recall stays with the objects after this event (EPCIS 2.0 persistent disposition).
        out["persistentDisposition"] = {"set": ["recalled"]}
    if kind == "Issued" and p.get("certificates"):
        # event.v4: the certificates (a certifier's CertificateIssued chains) the producer names for these labels.
        out["certificationInfo"] = [certificate_uri(c, host) for c in p["certificates"]]
    if kind == "Issued":
        ilmd = {"cbvmda:lotNumber": p["lot"]}
        if p.get("expiry"):
            ilmd["cbvmda:itemExpirationDate"] = p["expiry"]
        out["ilmd"] = ilmd
    out["tl:event"] = {"kind": e.kind, "subject": e.subject, "seq": e.seq, "actor": e.actor,
                       "payload": {k: _jsonable(v) for k, v in p.items() if v is not None}}
    out[SIGNED] = [signed_entry(s, manifests) for s in group]
    return out


def _error_declaration(d: SignedEvent, gtin_of: GtinOf, host: str, declared: Mapping[str, SignedEvent]) -> dict:
    """EPCIS 2.0's error declaration: the declared event again (its eventID, type, fields), with ``errorDeclaration``
    {declarationTime, reason, correctiveEventIDs}; the declaration's signed bytes in ``tl:signedEvents`` and the
    declared event's in ``tl:declares``, its own ledger id in ``tl:declarationID``."""
    target = declaration_of(d.event, declared)
    if target is None:
        raise Refused("missing_declared", f"declaration {d.event.event_id} is mapped without the event it declares", field="event_id")
    out = to_epcis([target], gtin_of, host)
    p = d.event.payload
    declaration = {"declarationTime": epcis_time(d.event.occurred_at)}
    reason = p["reason"]
    if reason in ERROR_REASONS or ":" in reason:
        declaration["reason"] = reason
    elif reason != "unspecified":  # what capture writes for a declaration without a reason
        out["tl:reason"] = reason
    if p.get("corrective_event_ids") or p.get("corrective_epcis_ids"):
        # Ledger events by their urn:uuid (as this export names them), then those held elsewhere as the partner wrote them.
        declaration["correctiveEventIDs"] = [f"urn:uuid:{x}" for x in p.get("corrective_event_ids") or ()] + list(p.get("corrective_epcis_ids") or ())
    out["errorDeclaration"] = declaration
    out["tl:event"] = {"kind": d.event.kind, "subject": d.event.subject, "seq": d.event.seq, "actor": d.event.actor,
                       "payload": {k: _jsonable(v) for k, v in p.items() if v is not None}}
    out[DECLARATION_ID] = f"urn:uuid:{d.event.event_id}"
    out[SIGNED] = [signed_entry(d, NO_MANIFESTS)]
    out[DECLARES] = signed_entry(target, NO_MANIFESTS)
    return out


def declared_ids(signed: Iterable[SignedEvent]) -> list[tuple[str, str, str]]:
    """(subject_type, subject, event id) of every event these declarations name: what a caller fetches for ``declared``."""
    return [(s.event.subject_type, s.event.subject, s.event.payload["event_id"]) for s in signed if s.event.kind in DECLARATION_KINDS]


def _captured_fields(p: dict, out: dict) -> None:
    """event.v4: what a captured EPCIS event said (ledger.epcis_capture) replaces the ledger's own view of the
    same field: the partner's SGLNs, its source/destination lists, its business transactions and sensor data;
    its eventID stays in ``tl:epcisEventID`` because ``eventID`` is the ledger event's id the query API finds."""
    if p.get("read_point"):
        out["readPoint"] = {"id": p["read_point"]}
    if p.get("biz_location"):
        out["bizLocation"] = {"id": p["biz_location"]}
    if p.get("biz_transactions"):
        out["bizTransactionList"] = [{"type": t["type"], "bizTransaction": t["value"]} for t in p["biz_transactions"]]
    if p.get("sources"):
        out["sourceList"] = [{"type": x["type"], "source": x["value"]} for x in p["sources"]]
    if p.get("destinations"):
        out["destinationList"] = [{"type": x["type"], "destination": x["value"]} for x in p["destinations"]]
    if p.get("sensor_data"):
        out["sensorElementList"] = json.loads(p["sensor_data"])
    if p.get("epcis_event_id"):
        out["tl:epcisEventID"] = p["epcis_event_id"]


def signed_entry(s: SignedEvent, manifests: Mapping[str, bytes]) -> dict:
    """A ``tl:signedEvents`` entry: the signed body and signature (base64), and a batch event's manifest."""
    entry = {"body": base64.b64encode(s.body).decode("ascii"), "signature": base64.b64encode(s.signature).decode("ascii")}
    if s.event.subject_type == "batch":
        entry["manifest"] = base64.b64encode(manifests[s.event.event_id]).decode("ascii")
    return entry


def document(events: Sequence[dict], created: datetime | None = None) -> dict:
    """An EPCISDocument around EPCIS events."""
    return {
        "@context": CONTEXT,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": epcis_time(created or datetime.now(timezone.utc)),
        "epcisBody": {"eventList": list(events)},
    }


def export(signed: Iterable[SignedEvent], gtin_of: GtinOf, host: str, created: datetime | None = None,
           manifests: Mapping[str, bytes] = NO_MANIFESTS, declared: Mapping[str, SignedEvent] | None = None) -> dict:
    """A document of ``signed`` (log order), grouped and mapped (batch events with their ``manifests``; declarations
    with the events they declare: ``declared``, by default those among ``signed``)."""
    signed = list(signed)
    if declared is None:
        declared = {s.event.event_id: s for s in signed}
    return document([to_epcis(g, gtin_of, host, manifests, declared) for g in group_events(signed, declared)], created)


# ---------------------------------------------------------------- import


@lru_cache(maxsize=1)
def _validator():
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def validate_document(doc: dict) -> None:
    """Check ``doc`` against GS1's EPCIS 2.0 JSON schema; raise :class:`EpcisError` (ValidationException)."""
    if not isinstance(doc, dict) or doc.get("type") != "EPCISDocument":
        raise EpcisError("ValidationException", "not an EPCISDocument (type must be 'EPCISDocument')")
    error = next(iter(sorted(_validator().iter_errors(doc), key=lambda err: list(err.absolute_path))), None)
    if error is not None:
        where = "/".join(str(x) for x in error.absolute_path) or "document"
        raise EpcisError("ValidationException", f"{where}: {error.message[:300]}")


def _decode(item, index: int) -> tuple[SignedEvent, bytes | None]:
    """A ``tl:signedEvents`` entry as (signed event, its manifest if it is a batch event)."""
    try:
        body = base64.b64decode(item["body"], validate=True)
        signature = base64.b64decode(item["signature"], validate=True)
        manifest = base64.b64decode(item["manifest"], validate=True) if "manifest" in item else None
    except (TypeError, KeyError, binascii.Error, ValueError):
        raise EpcisError("ValidationException", f"{SIGNED} entries need base64 'body' and 'signature'", event_index=index) from None
    try:
        signed = decode_signed(body, signature)
    except Refused as exc:
        raise EpcisError("ValidationException", f"signed event does not decode: {exc.detail}", event_index=index) from None
    except Exception as exc:  # fastavro on garbage bytes
        raise EpcisError("ValidationException", f"signed event does not decode: {type(exc).__name__}", event_index=index) from None
    if (signed.event.subject_type == "batch") != (manifest is not None):
        raise EpcisError("ValidationException", f"a batch event's {SIGNED} entry carries its manifest, and only a batch event's", event_index=index)
    if manifest is not None:
        try:
            decode_manifest(manifest)
        except Refused as exc:
            raise EpcisError("ValidationException", f"batch manifest does not decode: {exc.detail}", event_index=index) from None
    return signed, manifest


def signed_events_of(doc: dict, gtin_of: GtinOf, host: str) -> tuple[list[SignedEvent], dict[str, bytes]]:
    """The signed ledger events a captured document carries, in document order, and the manifests of its batch
    events (by event id); refuse it whole on any error.

    ``gtin_of`` is the ledger's answer for labels whose ``Issued`` event is not
    in the document (the document's own ``Issued`` events are used first). The
    manifest is checked against the signed body when the ledger appends it; here
    the visible epcList must be the one it lists.
    """
    validate_document(doc)
    events = doc["epcisBody"]["eventList"]
    groups: list[list[SignedEvent]] = []
    manifests: dict[str, bytes] = {}
    declared: dict[str, SignedEvent] = {}
    for index, item in enumerate(events):
        signed = item.get(SIGNED)
        if not isinstance(signed, list) or not signed:
            raise EpcisError("ValidationException", f"event carries no traceledger signature ({SIGNED}); only signed events are captured", event_index=index)
        decoded = [_decode(x, index) for x in signed]
        groups.append([s for s, _ in decoded])
        manifests.update({s.event.event_id: m for s, m in decoded if m is not None})
        if isinstance(item.get(DECLARES), dict):
            target, manifest = _decode(item[DECLARES], index)
            if manifest is not None:
                raise EpcisError("ValidationException", "a batch event is never declared in error by capture", event_index=index)
            declared[target.event.event_id] = target
    carried = {s.event.event_id: s for g in groups for s in g}
    if any(i in carried and carried[i].body != d.body for i, d in declared.items()):
        raise EpcisError("ValidationException", f"a declared event ({DECLARES}) differs from the same event in the document")
    issued = issued_gtins([s for g in groups for s in g], manifests)

    def gtin(serial: str) -> str | None:
        return issued.get(serial) or gtin_of(serial)

    for index, (item, group) in enumerate(zip(events, groups)):
        if group_events(group, declared) != [group]:
            raise EpcisError("ValidationException", "signed events of one EPCIS event must be one pack/unpack (the container's event, then "
                             "its children's), one transaction, or one declaration with the event it declares", event_index=index)
        expected = to_epcis(group, gtin, host, manifests, declared)
        if item != expected:
            field = next((k for k in sorted(set(item) | set(expected)) if item.get(k) != expected.get(k)), "?")
            raise EpcisError("ValidationException", f"field {field!r} does not match the signed event it carries", event_index=index)
    return [s for g in groups for s in g], manifests
