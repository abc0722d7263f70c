"""Standard EPCIS 2.0 documents onto ledger events: a pure mapping, event by event, with reasons.

A trading partner's document carries no traceledger signature: the capturing
actor's client maps each EPCIS event to the ledger events it stands for and
signs them locally (:mod:`traceledger.cli.epcis_capture`); the server never
signs for anyone. This module only reads: :func:`read_document` refuses a
document as a whole (too big, not JSON, too deeply nested, not JSON-LD with
the EPCIS context, invalid against GS1's schema), and :func:`map_document`
maps every event independently, so one event that cannot be mapped is
reported with its index and reason while the others go on.

What maps (CBV 2.0 bare words or their URI forms):

| EPCIS event | ledger events |
|---|---|
| ObjectEvent ADD ``commissioning`` | ONE ``BatchIssued`` for two or more SGTINs of one GTIN (:func:`batch_issuance`), else ``Issued`` per SGTIN (lot from ``ilmd`` ``lotNumber``); ``ContainerCreated`` per SSCC, ``LotCommissioned`` per LGTIN class |
| ObjectEvent / AggregationEvent OBSERVE ``shipping`` | ``Shipped`` per SGTIN/SSCC (the aggregation's parent) to the ``owning_party`` destination |
| ``receiving`` | ``Received`` |
| disposition ``recalled`` | ``Recalled`` (labels, containers, lots) |
| ObjectEvent DELETE or ``decommissioning`` | ``Decommissioned`` |
| ``inspecting`` + ``non_conformant`` | ``FlaggedCounterfeit`` (a regulator's) |
| AggregationEvent ADD / DELETE | ``Packed`` + ``PackedInto`` per child / ``Unpacked`` + ``UnpackedFrom`` |
| TransformationEvent of LGTIN classes, one output | ``Transformed`` |
| AssociationEvent ADD / DELETE | ``Associated`` / ``Disassociated`` per child (label or container), parent kept as written |
| TransactionEvent ADD / OBSERVE / DELETE | ``TransactionRecorded`` (event.v5) per EPC (label or container), bizTransactionList required |

An error declaration is ``Retracted`` / ``Corrected`` (:func:`error_declaration`).
Everything else (quantities of patterns, GIAI/GRAI/GSRN...) is refused with a reason.

event.v4 keeps what the partner's event said beside the ledger's own fields
(:func:`keep_epcis_fields`): its ``eventID`` (``epcis_event_id``),
``bizTransactionList``, ``readPoint`` / ``bizLocation`` when they are SGLNs,
``sourceList`` / ``destinationList`` on a shipment and ``sensorElementList``
(canonical JSON bytes) on a shipment or receipt, each only on the kinds whose
schema holds it (:data:`KEPT_BY_KIND`). A field no command of the event can
hold (a non-SGLN place, sensor data on a commissioning...) is named in the
mapped event's ``ignored`` list, never dropped silently.

Each event has a *key*: its ``eventID``, or for an event without one the
SHA-256 of its canonical JSON. Ledger event ids are derived from the signer
and that key (:func:`ledger_event_id`), so mapping a document twice gives the
same ids, and the server refuses an EPCIS event captured before.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping, Sequence
from urllib.parse import unquote, urlsplit

import orjson

from ledger import epcis, gs1
from ledger.errors import Refused
from ledger.events import MAX_EPCIS_LIST, MAX_EPCIS_TEXT, MAX_SENSOR_BYTES, SOURCE_DEST_TYPES, validate_sgln

MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
MAX_EPCIS_EVENTS = 2000  # EPCIS events per captured document
MAX_EPCS = 5000  # EPCs (hence ledger events) in one document
MAX_DEPTH = 32  # JSON nesting: an EPCIS document needs about 8
NO_KNOWN: "Mapping[str, Sequence[str]]" = {}  # no partner eventIDs captured before (map_document's ``known``)
EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
_ID_NAMESPACE = uuid.UUID("5b1c3f0e-7f0c-4c55-9a57-2f6f1b3f9e19")  # fixed: ids must be reproducible
_SGTIN = re.compile(r"urn:epc:id:sgtin:([0-9]{6,12})\.([0-9]{1,7})\.(.{1,80})")
_SSCC = re.compile(r"urn:epc:id:sscc:([0-9]{6,12})\.([0-9]{5,11})")
_LGTIN = re.compile(r"urn:epc:class:lgtin:([0-9]{6,12})\.([0-9]{1,7})\.(.{1,80})")
_DL_ITEM = re.compile(r".*/01/([0-9]{14})/21/([^/]+)")
_DL_SSCC = re.compile(r".*/00/([0-9]{18})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DL_LOT = re.compile(r".*/01/([0-9]{14})/10/([^/]+)")
# Fields every mapping reads; anything else on an event is reported as ignored.
_READ = {"type", "eventID", "eventTime", "eventTimeZoneOffset", "recordTime", "action", "bizStep", "disposition",
         "epcList", "quantityList", "parentID", "childEPCs", "ilmd", "destinationList",
         "inputQuantityList", "outputQuantityList", "certificationInfo"}
# event.v4 fields (payload name) each ledger kind holds (schemas/event.v4.avsc); every placed kind holds
# read_point, biz_location and epcis_event_id.
KEPT_BY_KIND = {
    "Shipped": {"biz_transactions", "sources", "destinations", "sensor_data"},
    "Received": {"biz_transactions", "sensor_data"},
    "Issued": {"biz_transactions"},
    "TransactionRecorded": {"biz_transactions", "sources", "destinations", "sensor_data"},
}
# EPCIS field -> payload field, for what keep_epcis_fields carries over.
KEPT_FIELDS = {"bizTransactionList": "biz_transactions", "readPoint": "read_point", "bizLocation": "biz_location",
               "sourceList": "sources", "destinationList": "destinations", "sensorElementList": "sensor_data"}
_READ_ILMD = {"cbvmda:lotNumber", "lotNumber", "cbvmda:itemExpirationDate", "itemExpirationDate",
              "cbvmda:descriptionShort", "descriptionShort"}


@dataclass(frozen=True)
class Command:
    """One ledger event to sign: what, about which chain, with which payload."""

    subject_type: str
    subject: str
    kind: str
    payload: dict


@dataclass
class Mapped:
    """An EPCIS event that maps: its ledger commands (one atomic group, in this order)."""

    index: int
    key: str
    occurred_at: datetime
    commands: list[Command]
    gtins: dict[str, str] = field(default_factory=dict)  # label serial -> the GTIN its EPC names
    ignored: list[str] = field(default_factory=list)
    # AggregationEvent DELETE: the containers whose shipment the client must copy onto UnpackedFrom.
    unpack_from: str | None = None


@dataclass
class Unmapped:
    """An EPCIS event that does not map, and why."""

    index: int
    key: str
    code: str
    detail: str


@dataclass(frozen=True)
class Defaults:
    """What a standard document does not say but a ledger event needs, given by the capturing actor.

    ``consignee`` is used only for a shipping event without an ``owning_party``
    destination; ``territory`` and ``channel`` (the authorized market a shipment
    is for) have no EPCIS field at all.
    """

    consignee: str | None = None
    territory: str | None = None
    channel: str | None = None
    party_host: str = "id.traceledger.example"


# ---------------------------------------------------------------- the document


def _depth(value, limit: int) -> int:
    """Nesting depth of parsed JSON, stopping once past ``limit``."""
    stack, deepest = [(value, 1)], 0
    while stack:
        item, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, d + 1) for v in item)
    return deepest


def read_document(data: bytes) -> dict:
    """Parse and check a standard EPCIS 2.0 document; :class:`epcis.EpcisError` refuses it whole."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise epcis.EpcisError("CaptureLimitExceededException", f"document is {len(data)} bytes; at most {MAX_DOCUMENT_BYTES} per capture")
    try:
        doc = orjson.loads(data)  # orjson refuses nesting deeper than 1024 rather than recursing without end
    except orjson.JSONDecodeError as exc:
        raise epcis.EpcisError("ValidationException", f"document is not JSON: {str(exc)[:200]}") from None
    if _depth(doc, MAX_DEPTH) > MAX_DEPTH:
        raise epcis.EpcisError("ValidationException", f"document nests deeper than {MAX_DEPTH} levels")
    if not isinstance(doc, dict):
        raise epcis.EpcisError("ValidationException", "document is not a JSON object")
    context = doc.get("@context")
    contexts = context if isinstance(context, list) else [context]
    if EPCIS_CONTEXT not in contexts:
        raise epcis.EpcisError("ValidationException", f"@context must name the EPCIS 2.0 context {EPCIS_CONTEXT}")
    events = (doc.get("epcisBody") or {}).get("eventList") if isinstance(doc.get("epcisBody"), dict) else None
    if isinstance(events, list) and len(events) > MAX_EPCIS_EVENTS:
        raise epcis.EpcisError("CaptureLimitExceededException", f"{len(events)} events; at most {MAX_EPCIS_EVENTS} per capture")
    epcis.validate_document(doc)
    if not events:
        raise epcis.EpcisError("ValidationException", "epcisBody.eventList is empty: nothing to capture")
    epcs = sum(len(e.get("epcList") or ()) + len(e.get("childEPCs") or ()) for e in events)
    if epcs > MAX_EPCS:
        raise epcis.EpcisError("CaptureLimitExceededException", f"{epcs} EPCs; at most {MAX_EPCS} per capture")
    return doc


def event_key(item: dict) -> str:
    """The event's ``eventID``, or the SHA-256 of its canonical JSON (sorted keys) for one without."""
    if isinstance(item.get("eventID"), str):
        return item["eventID"]
    return "sha256:" + hashlib.sha256(orjson.dumps(item, option=orjson.OPT_SORT_KEYS)).hexdigest()


def ledger_event_id(signer: str, key: str, command: Command) -> str:
    """A ledger event id reproducible from the signer, the EPCIS event and the command."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{signer}\n{key}\n{command.subject_type}:{command.subject}\n{command.kind}"))


# ---------------------------------------------------------------- identifiers


def _gtin(prefix: str, item_ref: str) -> str:
    if len(prefix) + len(item_ref) != 13:
        raise Refused("invalid_epc", "company prefix and item reference must together have 13 digits", field="epc")
    body = item_ref[0] + prefix + item_ref[1:]
    return body + str(gs1.gtin_check_digit(body))


def parse_epc(epc) -> tuple[str, str, str | None]:
    """An EPC as (subject type, ledger subject, the GTIN it names): a label (SGTIN) or a container (SSCC)."""
    if not isinstance(epc, str):
        raise Refused("invalid_epc", "an EPC must be a string", field="epc")
    if m := _SGTIN.fullmatch(epc):
        serial = unquote(m[3])
        return "label", gs1.validate_serial(serial, "epc"), _gtin(m[1], m[2])
    if m := _SSCC.fullmatch(epc):
        if len(m[1]) + len(m[2]) != 17:
            raise Refused("invalid_epc", f"{epc}: company prefix and serial reference must together have 17 digits", field="epc")
        body = m[2][0] + m[1] + m[2][1:]
        return "container", body + str(gs1.gtin_check_digit(body)), None
    if epc.startswith(("https://", "http://")):
        path = urlsplit(epc).path
        if m := _DL_ITEM.fullmatch(path):
            return "label", gs1.validate_serial(unquote(m[2]), "epc"), gs1.normalize_gtin(m[1])
        if m := _DL_SSCC.fullmatch(path):
            return "container", gs1.validate_sscc(m[1], "epc"), None
    raise Refused("unsupported_epc", f"{epc[:100]}: the ledger holds labels (SGTIN) and containers (SSCC) only", field="epc")


def parse_class(epc_class) -> str:
    """A quantity's ``epcClass`` as a lot key ``<GTIN-14>/<lot>`` (LGTIN only)."""
    if isinstance(epc_class, str):
        if m := _LGTIN.fullmatch(epc_class):
            return gs1.lot_key(_gtin(m[1], m[2]), unquote(m[3]))
        if epc_class.startswith(("https://", "http://")) and (m := _DL_LOT.fullmatch(urlsplit(epc_class).path)):
            return gs1.lot_key(m[1], unquote(m[2]))
    raise Refused("unsupported_epc", f"{str(epc_class)[:100]}: the ledger holds quantities of lots (LGTIN) only", field="epcClass")


def _word(value, vocabulary: str) -> str | None:
    """A CBV value as its bare word (``shipping``), from the bare, URN or URI form."""
    if not isinstance(value, str):
        return None
    for prefix in (f"https://ref.gs1.org/cbv/{vocabulary}-", f"urn:epcglobal:cbv:{vocabulary.lower()}:"):
        if value.startswith(prefix):
            return value[len(prefix):]
    return value


# ---------------------------------------------------------------- events


def map_document(doc: dict, signer: str, defaults: Defaults, known: Mapping[str, Sequence[str]] = NO_KNOWN) -> list[Mapped | Unmapped]:
    """Every event of a document read by :func:`read_document`, mapped or refused with its reason.

    ``known`` gives, for partner eventIDs captured earlier (``POST /v1/epcis/capture/events``), the ledger events
    they were captured as: an error declaration's correctiveEventIDs resolve through it and through the events of
    this document (:func:`ledger_ids`), in either order."""
    events = doc["epcisBody"]["eventList"]
    out: dict[int, Mapped | Unmapped] = {}
    here: dict[str, list[str]] = {}  # eventID -> ledger event ids, of this document's events that map
    for declarations in (False, True):  # declarations after every other event: they may name a later one
        for index, item in enumerate(events):
            if ("errorDeclaration" in item) != declarations:
                continue
            key = event_key(item)
            if declarations:
                key = DECLARATION_KEY + key  # the declaration repeats the eventID of the event in error: its own key
            try:
                out[index] = map_event(index, key, item, signer, defaults, {**known, **here})
            except Refused as exc:
                out[index] = Unmapped(index, key, exc.code, exc.detail)
            if isinstance(out[index], Mapped) and not declarations and isinstance(item.get("eventID"), str):
                here[item["eventID"]] = ledger_ids(signer, out[index])
    return [out[i] for i in range(len(events))]


def declaration_references(doc: dict) -> list[str]:
    """The eventIDs a document's error declarations name as corrective events, that none of its events has:
    what the capture client asks the ledger about (``known`` of :func:`map_document`)."""
    events = doc["epcisBody"]["eventList"]
    own = {e.get("eventID") for e in events}
    names = [x for e in events if isinstance(e.get("errorDeclaration"), dict)
             for x in e["errorDeclaration"].get("correctiveEventIDs") or () if isinstance(x, str) and x not in own]
    return sorted(set(names))


def batch_subject(signer: str, key: str) -> str:
    """The batch id of a commissioning signed as ONE BatchIssued: from the signer and the EPCIS event's key."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{signer}\n{key}"))


def ledger_ids(signer: str, mapped: Mapped) -> list[str]:
    """The ids of the ledger events the capture client signs for ``mapped`` (one BatchIssued, or one per command)."""
    if batch_issuance(mapped) is not None:
        return [ledger_event_id(signer, mapped.key, Command("batch", batch_subject(signer, mapped.key), "BatchIssued", {}))]
    return [ledger_event_id(signer, mapped.key, c) for c in mapped.commands]


def map_event(index: int, key: str, item: dict, signer: str, defaults: Defaults, known: Mapping[str, Sequence[str]] = NO_KNOWN) -> Mapped:
    """One EPCIS event's ledger commands; :class:`Refused` says why there are none."""
    kind = item.get("type")
    if "errorDeclaration" in item:
        return error_declaration(index, key, item, signer, defaults, known)
    occurred_at = datetime.fromisoformat(item["eventTime"].replace("Z", "+00:00"))
    mapped = Mapped(index, key, occurred_at, [], ignored=_ignored(item))
    if kind == "ObjectEvent":
        _object_event(item, mapped, signer, defaults)
    elif kind == "AggregationEvent":
        _aggregation_event(item, mapped, signer, defaults)
    elif kind == "TransformationEvent":
        _transformation_event(item, mapped)
    elif kind == "AssociationEvent":
        _association_event(item, mapped)
    elif kind == "TransactionEvent":
        _transaction_event(item, mapped)
    else:
        raise Refused("not_captured", f"unknown event type {str(kind)[:40]!r}", field="type")
    kinds = {c.kind for c in mapped.commands}
    mapped.ignored += keep_epcis_fields(item, mapped.commands)
    if "ilmd" in item and not kinds & {"Issued", "LotCommissioned"}:
        mapped.ignored.append("ilmd")
    if "certificationInfo" in item and "Issued" not in kinds:
        mapped.ignored.append("certificationInfo")
    return mapped


def _ignored(item: dict) -> list[str]:
    names = sorted(k for k in item if k not in _READ and k not in KEPT_FIELDS)
    if isinstance(item.get("ilmd"), dict):
        names += sorted(f"ilmd.{k}" for k in item["ilmd"] if k not in _READ_ILMD)
    return names


def epcis_fields(item: dict) -> dict:
    """The event.v4 payload fields an EPCIS event gives (before choosing which kinds hold them); a value the
    ledger cannot hold as is (a place that is no SGLN, a business transaction without its type) is left out."""
    out: dict = {}
    if _text(item.get("eventID")):
        out["epcis_event_id"] = item["eventID"]
    for name in ("readPoint", "bizLocation"):
        place = (item.get(name) or {}).get("id") if isinstance(item.get(name), dict) else None
        if _is_sgln(place):
            out[KEPT_FIELDS[name]] = place
    bts = item.get("bizTransactionList")
    if _listed(bts) and all(isinstance(b, dict) and _text(b.get("type")) and _text(b.get("bizTransaction")) for b in bts):
        out["biz_transactions"] = [{"type": _word(b["type"], "BTT"), "value": b["bizTransaction"]} for b in bts]
    for name, key in (("sourceList", "source"), ("destinationList", "destination")):
        entries = item.get(name)
        if _listed(entries) and all(_party_or_place(e, key) for e in entries):
            out[KEPT_FIELDS[name]] = [{"type": _word(e["type"], "SDT"), "value": e[key]} for e in entries]
    if isinstance(item.get("sensorElementList"), list):
        # The exact canonical form ledger.events checks: sorted keys, no spaces, UTF-8.
        data = json.dumps(item["sensorElementList"], sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        if len(data) <= MAX_SENSOR_BYTES:
            out["sensor_data"] = data
    return out


def _text(value) -> bool:
    return isinstance(value, str) and bool(value.strip()) and len(value) <= MAX_EPCIS_TEXT and not _CONTROL.search(value)


def _listed(values) -> bool:
    return isinstance(values, list) and 0 < len(values) <= MAX_EPCIS_LIST


def _party_or_place(entry, key: str) -> bool:
    if not isinstance(entry, dict) or not _text(entry.get(key)) or _word(entry.get("type"), "SDT") not in SOURCE_DEST_TYPES:
        return False
    return _word(entry["type"], "SDT") != "location" or _is_sgln(entry[key])


def _is_sgln(value) -> bool:
    try:
        validate_sgln(value, "readPoint")
    except Refused:
        return False
    return True


def keep_epcis_fields(item: dict, commands: list[Command]) -> list[str]:
    """Copy the EPCIS event's event.v4 fields onto every command whose kind holds them; the EPCIS field names
    no command could hold (to report as ``ignored``). A wrong value (too long, a bad type) is refused later by
    the event's own checks when signed, never truncated here."""
    given = epcis_fields(item)
    held: set[str] = set()
    for c in commands:
        holds = {"read_point", "biz_location", "epcis_event_id"} | KEPT_BY_KIND.get(c.kind, set())
        kept = {k: v for k, v in given.items() if k in holds}
        c.payload.update(kept)
        held |= kept.keys()
    return sorted(name for name, key in KEPT_FIELDS.items() if name in item and key not in held)


def _epcs(values, mapped: Mapped) -> list[tuple[str, str]]:
    subjects = []
    for epc in values or ():
        subject_type, subject, gtin = parse_epc(epc)
        if gtin is not None:
            if mapped.gtins.get(subject, gtin) != gtin:
                raise Refused("invalid_epc", f"serial {subject} is named with two GTINs in one event", field="epc")
            mapped.gtins[subject] = gtin
        if (subject_type, subject) in subjects:
            raise Refused("invalid_epc", f"{epc} is listed twice", field="epc")
        subjects.append((subject_type, subject))
    return subjects


def _ilmd(item: dict, name: str):
    ilmd = item.get("ilmd") if isinstance(item.get("ilmd"), dict) else {}
    value = ilmd.get(f"cbvmda:{name}", ilmd.get(name))
    return value if isinstance(value, str) else None


def _object_event(item: dict, mapped: Mapped, signer: str, defaults: Defaults) -> None:
    subjects = _epcs(item.get("epcList"), mapped)
    lots = [parse_class(q.get("epcClass")) for q in item.get("quantityList") or ()]
    if not subjects and not lots:
        raise Refused("not_captured", "the event names no EPC and no lot", field="epcList")
    action, step = item.get("action"), _word(item.get("bizStep"), "BizStep")
    disposition = _word(item.get("disposition"), "Disp")
    if action == "ADD" and step == "commissioning":
        for subject_type, subject in subjects:
            mapped.commands.append(_commission(subject_type, subject, mapped.gtins.get(subject), item, defaults.party_host))
        for lot in lots:
            mapped.commands.append(Command("lot", lot, "LotCommissioned", {"product": _ilmd(item, "descriptionShort") or f"GTIN {lot[:14]}",
                                                                             "certificates": [], "region": None}))
        return
    if lots and disposition != "recalled":
        raise Refused("not_captured", "a lot (quantityList) is captured only when commissioned, transformed or recalled", field="quantityList")
    kind, payload = _observed(action, step, disposition, item, signer, defaults)
    mapped.commands += [Command(t, s, kind, payload) for t, s in subjects]
    mapped.commands += [Command("lot", lot, kind, payload) for lot in lots]


_BATCH_KEPT = ("biz_transactions", "read_point", "biz_location", "epcis_event_id")  # what BatchIssued holds of event.v4
DECLARATION_KEY = "errorDeclaration:"
_UUID_URN = re.compile(r"urn:uuid:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")


def error_declaration(index: int, key: str, item: dict, signer: str, defaults: Defaults, known: Mapping[str, Sequence[str]] = NO_KNOWN) -> Mapped:
    """An EPCIS error declaration as ``Retracted`` (no corrective events) or ``Corrected`` per ledger event the
    declared event was captured as: the event is mapped again without its declaration, and the ids of its
    ledger events follow from the signer and its eventID (:func:`ledger_event_id`), so only events captured by
    this signer are declared (the server checks each is on its chain, signed by the declarer).
    correctiveEventIDs are resolved to ledger events: a partner's eventID through ``known`` (events captured
    earlier, or earlier in this document), else an ``urn:uuid:`` is taken as a ledger event id (as exports
    name them); any other identifier names an event held elsewhere, kept as written (``corrective_epcis_ids``)."""
    declaration = item["errorDeclaration"] if isinstance(item.get("errorDeclaration"), dict) else {}
    original = {k: v for k, v in item.items() if k != "errorDeclaration"}
    if not isinstance(original.get("eventID"), str):
        raise Refused("missing_field", "an error declaration names the event in error by its eventID", field="eventID")
    declared = map_event(index, original["eventID"], original, signer, defaults)
    if batch_issuance(declared) is not None:
        raise Refused("not_captured", "a batch commissioning is declared in error with the batch tools, not by capture", field="errorDeclaration")
    corrective, elsewhere = corrective_ids(declaration.get("correctiveEventIDs") or (), known)
    reason = _word(declaration.get("reason"), "ER") or "unspecified"
    at = declaration.get("declarationTime") or item["eventTime"]
    mapped = Mapped(index, key, datetime.fromisoformat(at.replace("Z", "+00:00")), [])
    for c in declared.commands:
        payload = {"event_id": ledger_event_id(signer, original["eventID"], c), "reason": reason}
        if corrective or elsewhere:
            payload |= {"corrective_event_ids": corrective, "corrective_epcis_ids": elsewhere}
        mapped.commands.append(Command(c.subject_type, c.subject, "Corrected" if corrective or elsewhere else "Retracted", payload))
    return mapped


def corrective_ids(names, known: Mapping[str, Sequence[str]]) -> tuple[list[str], list[str]]:
    """What correctiveEventIDs stand for: (ledger event ids, the partner eventIDs of corrective events this ledger
    does not hold), in order, each once. A name in ``known`` (captured before, or in this document) is its ledger
    events; an ``urn:uuid:`` is taken as a ledger event id (as exports name them); any other name is an event
    held elsewhere (EPCIS lets a correction live in another repository), kept as the partner wrote it."""
    ids: list[str] = []
    elsewhere: list[str] = []
    for name in names:
        if not _text(name):
            raise Refused("invalid_field", f"a correctiveEventID is a string of at most {MAX_EPCIS_TEXT} characters", field="errorDeclaration")
        if name in known:
            ids += [i for i in known[name] if i not in ids]
        elif m := _UUID_URN.fullmatch(name):
            ids += [m[1]] if m[1] not in ids else []
        elif name not in elsewhere:
            elsewhere.append(name)
    if len(ids) + len(elsewhere) > MAX_EPCIS_LIST:
        raise Refused("field_too_long", f"the corrective events stand for {len(ids) + len(elsewhere)} events; at most {MAX_EPCIS_LIST}",
                      field="errorDeclaration")
    return ids, elsewhere


MIN_BATCH = 2  # a commissioning of one label stays one Issued event


def batch_issuance(mapped: Mapped) -> tuple[dict, list[str]] | None:
    """``(BatchIssued payload without count/root, serials)`` when a commissioning is ONE batch event: only
    labels, at least :data:`MIN_BATCH`, all of one GTIN, lot, expiry and product (one EPCIS event's ilmd
    makes them equal; the GTIN comes from each EPC). None: sign its commands one by one."""
    commands = mapped.commands
    if len(commands) < MIN_BATCH or any(c.kind != "Issued" for c in commands):
        return None
    shared = [{k: c.payload[k] for k in ("gtin", "lot", "expiry", "product", "region", "certificates", *_BATCH_KEPT) if k in c.payload}
              for c in commands]
    if any(x != shared[0] for x in shared):
        return None
    return shared[0], [c.subject for c in commands]


def _commission(subject_type: str, subject: str, gtin: str | None, item: dict, party_host: str) -> Command:
    if subject_type == "container":
        return Command("container", subject, "ContainerCreated", {"level": "pallet", "region": None})
    lot = _ilmd(item, "lotNumber")
    if lot is None:
        raise Refused("missing_field", "commissioning a label needs its lot: ilmd cbvmda:lotNumber", field="ilmd")
    product = _ilmd(item, "descriptionShort") or f"GTIN {gtin}"
    return Command("label", subject, "Issued", {"gtin": gtin, "lot": lot, "expiry": _ilmd(item, "itemExpirationDate"),
                                                 "product": product, "region": None, "pin_hash": None,
                                                 "certificates": certificates(item, party_host)})


def certificates(item: dict, party_host: str) -> list[str]:
    """The ledger certificate ids a commissioning's ``certificationInfo`` names (``https://<host>/certificate/<id>``);
    any other certification URI cannot be signed as a certificate of this ledger: refused, not dropped."""
    info = item.get("certificationInfo")
    uris = [] if info is None else [info] if isinstance(info, str) else list(info)
    prefix = f"https://{party_host}/certificate/"
    out = []
    for uri in uris:
        if not isinstance(uri, str) or not uri.startswith(prefix):
            raise Refused("not_captured", f"certificationInfo {str(uri)[:100]}: only this ledger's certificates ({prefix}<SCHEME>/<number>) "
                          "can be signed on a label", field="certificationInfo")
        out.append(unquote(uri[len(prefix):]))
    return out


def _observed(action, step, disposition, item: dict, signer: str, defaults: Defaults) -> tuple[str, dict]:
    """The ledger kind and payload of an event about objects that already exist."""
    reason = f"EPCIS {step or action}" + (f" ({disposition})" if disposition else "")
    if disposition == "recalled":
        return "Recalled", {"reason": reason}
    if action == "DELETE" or step == "decommissioning":
        return "Decommissioned", {"reason": reason}
    if action == "ADD":
        raise Refused("not_captured", f"action ADD with bizStep {step!r}: only commissioning adds objects", field="action")
    if step == "shipping":
        return "Shipped", {"consignee": _consignee(item, defaults), "territory": _given(defaults.territory, "territory"),
                           "channel": _given(defaults.channel, "channel"), "region": None}
    if step == "receiving":
        return "Received", {"region": None}
    if step == "inspecting" and disposition == "non_conformant":
        return "FlaggedCounterfeit", {"reason": reason, "region": None}
    raise Refused("not_captured", f"bizStep {step!r} has no ledger event (captured: commissioning, shipping, receiving, "
                  "decommissioning, packing, unpacking, recalls, non-conformant inspections)", field="bizStep")


def _given(value: str | None, name: str) -> str:
    if value is None:
        raise Refused("missing_field", f"a shipment needs its authorized {name}, which EPCIS has no field for: pass --{name}", field=name)
    return value


def _consignee(item: dict, defaults: Defaults) -> str:
    """The actor a shipment goes to: its ``owning_party`` destination (this ledger's party URI), else ``--consignee``."""
    owners = [d.get("destination") for d in item.get("destinationList") or () if _word(d.get("type"), "SDT") == "owning_party"]
    party = f"https://{defaults.party_host}/party/"
    if owners:
        if len(owners) > 1 or not isinstance(owners[0], str) or not owners[0].startswith(party):
            raise Refused("unknown_actor", f"the owning_party destination must be one registered actor as {party}<actor>", field="destinationList")
        return owners[0][len(party):]
    if defaults.consignee is None:
        raise Refused("missing_field", "a shipping event needs an owning_party destination (or pass --consignee)", field="destinationList")
    return defaults.consignee


def _aggregation_event(item: dict, mapped: Mapped, signer: str, defaults: Defaults) -> None:
    if item.get("parentID") is None:
        raise Refused("missing_field", "an AggregationEvent is captured with its parentID", field="parentID")
    parent_type, parent, _ = parse_epc(item["parentID"])
    if parent_type != "container":
        raise Refused("unsupported_epc", "a parent must be a container (SSCC)", field="parentID")
    action = item.get("action")
    if action == "OBSERVE":
        kind, payload = _observed(action, _word(item.get("bizStep"), "BizStep"), _word(item.get("disposition"), "Disp"), item, signer, defaults)
        mapped.commands.append(Command("container", parent, kind, payload))
        mapped.ignored += ["childEPCs (observed inside the container)"] if item.get("childEPCs") else []
        return
    if item.get("childQuantityList"):
        raise Refused("not_captured", "quantities cannot be packed or unpacked: the ledger packs identified items", field="childQuantityList")
    children = _epcs(item.get("childEPCs"), mapped)
    if not children:
        raise Refused("missing_field", "packing or unpacking needs childEPCs", field="childEPCs")
    codes = [c for _, c in children]
    if action == "ADD":
        mapped.commands.append(Command("container", parent, "Packed", {"children": codes, "region": None}))
        mapped.commands += [Command(t, c, "PackedInto", {"container": parent}) for t, c in children]
    else:
        mapped.unpack_from = parent  # the client copies the container's territory/channel onto each child
        mapped.commands.append(Command("container", parent, "Unpacked", {"children": codes, "region": None}))
        mapped.commands += [Command(t, c, "UnpackedFrom", {"container": parent, "territory": None, "channel": None}) for t, c in children]


def _transformation_event(item: dict, mapped: Mapped) -> None:
    if item.get("inputEPCList") or item.get("outputEPCList"):
        raise Refused("not_captured", "a transformation is captured lot to lot (inputQuantityList/outputQuantityList of "
                      "LGTIN classes); instance EPCs are not", field="inputEPCList")
    inputs = [parse_class(q.get("epcClass")) for q in item.get("inputQuantityList") or ()]
    outputs = [parse_class(q.get("epcClass")) for q in item.get("outputQuantityList") or ()]
    if not inputs or len(outputs) != 1:
        raise Refused("not_captured", "a transformation is captured with input lots and exactly one output lot", field="outputQuantityList")
    mapped.commands.append(Command("lot", outputs[0], "Transformed", {"inputs": inputs, "region": None}))


def _association_event(item: dict, mapped: Mapped) -> None:
    """ADD / DELETE: ``Associated`` / ``Disassociated`` per child label or container, the parent as written
    (any identifier: the ledger tracks no GIAI/GRAI, so it is kept as text, never resolved)."""
    parent, action = item.get("parentID"), item.get("action")
    if not _text(parent):
        raise Refused("missing_field", f"an AssociationEvent is captured with its parentID (at most {MAX_EPCIS_TEXT} characters)", field="parentID")
    if action not in ("ADD", "DELETE"):
        raise Refused("not_captured", "an AssociationEvent OBSERVE has no ledger event (ADD and DELETE do)", field="action")
    if item.get("childQuantityList"):
        raise Refused("not_captured", "quantities cannot be associated: the ledger associates identified items", field="childQuantityList")
    children = _epcs(item.get("childEPCs"), mapped)
    if not children:
        raise Refused("missing_field", "an association needs childEPCs", field="childEPCs")
    kind = "Associated" if action == "ADD" else "Disassociated"
    mapped.commands += [Command(t, c, kind, {"parent": parent}) for t, c in children]


def _transaction_event(item: dict, mapped: Mapped) -> None:
    """ADD / OBSERVE / DELETE: ``TransactionRecorded`` (event.v5) per EPC (label or container), with the business
    transactions, parentID, bizStep and disposition as written (:func:`keep_epcis_fields` adds the rest); the
    export groups them back into one TransactionEvent (:func:`ledger.epcis.same_transaction`)."""
    if item.get("quantityList"):
        raise Refused("not_captured", "quantities cannot take part in a transaction: the ledger records identified items", field="quantityList")
    subjects = _epcs(item.get("epcList"), mapped)
    if not subjects:
        raise Refused("missing_field", "a TransactionEvent is captured with its epcList", field="epcList")
    if "biz_transactions" not in epcis_fields(item):
        raise Refused("missing_field", f"a TransactionEvent needs a bizTransactionList of 1-{MAX_EPCIS_LIST} entries, each with its "
                      f"type and bizTransaction (at most {MAX_EPCIS_TEXT} characters)", field="bizTransactionList")
    parent = item.get("parentID")
    if parent is not None and not _text(parent):
        raise Refused("invalid_field", f"parentID must be at most {MAX_EPCIS_TEXT} characters", field="parentID")
    payload = {"action": item.get("action"), "parent": parent, "biz_step": item.get("bizStep"), "disposition": item.get("disposition")}
    mapped.commands += [Command(t, s, "TransactionRecorded", dict(payload)) for t, s in subjects]
