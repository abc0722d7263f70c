"""EPCIS TransactionEvent (event.v5 TransactionRecorded) through capture and export, pure (no stack):
a partner's TransactionEvent maps to one signed event per EPC, and those export back as ONE
TransactionEvent with the same action, business transactions, parentID, bizStep, disposition,
places, sources and destinations, valid against GS1's schema and capturable again (signed and
standard); what cannot be held is refused with its reason. The real API, the log, the auditor and
the query index are in tests/test_epcis_capture.py and tests/test_audit_v5.py."""

from __future__ import annotations

import copy

import pytest

from ledger import epcis
from ledger.epcis_capture import Defaults, Mapped, Unmapped, map_document, map_event, parse_epc
from ledger.events import new_event
from tests.helpers import Cast, issued_payload
from tests.test_epcis_cli import schema_validator

HOST = "id.traceledger.example"
DEFAULTS = Defaults()
SSCC = "069012340000000016"
TRANSACTION = {
    "type": "TransactionEvent", "eventID": "urn:uuid:6f2c0c4e-0000-4000-8000-0000000000f1", "eventTime": "2024-03-01T08:00:00Z",
    "eventTimeZoneOffset": "+08:00", "action": "ADD", "parentID": "urn:epc:id:sscc:6901234.0000000001",
    "epcList": ["urn:epc:id:sgtin:6901234.000001.T1", "urn:epc:id:sgtin:6901234.000001.T2", f"https://{HOST}/00/{SSCC}"],
    "bizStep": "shipping", "disposition": "in_transit",
    "readPoint": {"id": "urn:epc:id:sgln:6901234.00001.0"}, "bizLocation": {"id": "urn:epc:id:sgln:6901234.00002.0"},
    "bizTransactionList": [{"type": "po", "bizTransaction": "urn:epcglobal:cbv:bt:6901234000009:PO-1"},
                           {"type": "inv", "bizTransaction": "http://transaction.acme.cn/inv/77"}],
    "sourceList": [{"type": "owning_party", "source": "urn:epc:id:pgln:6901234.00000"}],
    "destinationList": [{"type": "location", "destination": "urn:epc:id:sgln:6909876.00001.0"}],
}
SAME = ("action", "parentID", "bizStep", "disposition", "readPoint", "bizLocation", "bizTransactionList", "sourceList", "destinationList")


def world():
    """acme's labels T1, T2 and pallet SSCC, issued; and their GTIN lookup."""
    cast = Cast()
    signed = [cast.event("acme", "label", s, "Issued", issued_payload()) for s in ("T1", "T2")]
    signed.append(cast.event("acme", "container", SSCC, "ContainerCreated", {"level": "pallet", "region": None}))
    gtin = signed[0].event.payload["gtin"]
    return cast, signed, (lambda _: gtin)


def sign(cast: Cast, m: Mapped, signer: str = "acme") -> list:
    # One time for the EPCIS event's events, as the capture client signs them (traceledger.cli.epcis_capture.sign_group).
    out = []
    for c in m.commands:
        head_seq, head = cast.heads[(c.subject_type, c.subject)]
        e = new_event(subject_type=c.subject_type, subject=c.subject, kind=c.kind, payload=c.payload, actor=signer,
                      key_id=cast.keys[signer].key_id, seq=head_seq + 1, prev_hash=head, occurred_at=m.occurred_at)
        s = e.sign(cast.keys[signer])
        cast.heads[(c.subject_type, c.subject)] = (s.event.seq, s.hash)
        out.append(s)
    return out


def test_a_transaction_event_maps_to_one_event_per_epc_and_exports_as_the_same_one():
    cast, issued, gtin_of = world()
    m = map_event(0, TRANSACTION["eventID"], TRANSACTION, "acme", DEFAULTS)
    assert m.ignored == []
    assert [(c.subject_type, c.subject, c.kind) for c in m.commands] == [
        ("label", "T1", "TransactionRecorded"), ("label", "T2", "TransactionRecorded"), ("container", SSCC, "TransactionRecorded")]
    p = m.commands[0].payload
    assert (p["action"], p["parent"], p["biz_step"], p["disposition"], p["epcis_event_id"]) == (
        "ADD", TRANSACTION["parentID"], "shipping", "in_transit", TRANSACTION["eventID"])
    recorded = sign(cast, m)
    doc = epcis.export(issued + recorded, gtin_of, HOST)
    assert not list(schema_validator().iter_errors(doc))
    events = doc["epcisBody"]["eventList"]
    assert [e["type"] for e in events] == ["ObjectEvent", "ObjectEvent", "ObjectEvent", "TransactionEvent"]
    out = events[3]
    for name in SAME:
        assert out[name] == TRANSACTION[name], name
    assert [parse_epc(x)[:2] for x in out["epcList"]] == [parse_epc(x)[:2] for x in TRANSACTION["epcList"]]
    assert out["tl:epcisEventID"] == TRANSACTION["eventID"] and out["eventTime"].startswith("2024-03-01T08:00:00")
    assert len(out["tl:signedEvents"]) == 3

    # Capturable elsewhere with its signatures (every visible field checked against them) ...
    signed, _ = epcis.signed_events_of(doc, gtin_of, HOST)
    assert [s.event.kind for s in signed][3:] == ["TransactionRecorded"] * 3
    tampered = copy.deepcopy(doc)
    tampered["epcisBody"]["eventList"][3]["bizTransactionList"][0]["bizTransaction"] = "urn:epcglobal:cbv:bt:6901234000009:PO-2"
    with pytest.raises(epcis.EpcisError, match="bizTransactionList"):
        epcis.signed_events_of(tampered, gtin_of, HOST)
    dropped = copy.deepcopy(doc)
    dropped["epcisBody"]["eventList"][3]["epcList"].pop()
    with pytest.raises(epcis.EpcisError, match="epcList"):
        epcis.signed_events_of(dropped, gtin_of, HOST)
    # ... and as a standard document: the same ledger commands again (capture -> export -> capture).
    (again,) = map_document({"epcisBody": {"eventList": [out]}}, "acme", DEFAULTS)
    assert [(c.subject, c.payload | {"epcis_event_id": None}) for c in again.commands] == [
        (c.subject, c.payload | {"epcis_event_id": None}) for c in m.commands]


def test_only_adjacent_events_of_one_signer_time_and_payload_are_one_transaction():
    cast, issued, gtin_of = world()
    first = sign(cast, map_event(0, "a", TRANSACTION | {"epcList": TRANSACTION["epcList"][:1]}, "acme", DEFAULTS))
    other = sign(cast, map_event(1, "b", TRANSACTION | {"epcList": TRANSACTION["epcList"][1:2], "action": "DELETE"}, "acme", DEFAULTS))
    again = sign(cast, map_event(2, "c", TRANSACTION | {"epcList": TRANSACTION["epcList"][:1]}, "acme", DEFAULTS))
    groups = epcis.group_events(issued + first + other + again)
    assert [len(g) for g in groups] == [1, 1, 1, 1, 1, 1]  # same payload as `first` twice on T1: never one event naming T1 twice


@pytest.mark.parametrize("change, code, reason", [
    ({"bizTransactionList": []}, "missing_field", "bizTransactionList"),
    ({"bizTransactionList": [{"bizTransaction": "urn:epc:id:gdti:95252084.0001.0003555480001000"}]}, "missing_field", "type"),
    ({"epcList": ["urn:epc:id:giai:952005385.w2"]}, "unsupported_epc", "labels (SGTIN) and containers (SSCC) only"),
    ({"epcList": [], "quantityList": [{"epcClass": "urn:epc:class:lgtin:6901234.000001.L1", "quantity": 2}]}, "not_captured", "identified items"),
    ({"epcList": []}, "missing_field", "epcList"),
    ({"parentID": "urn:x:" + "p" * 300}, "invalid_field", "parentID"),
])
def test_what_cannot_be_held_is_refused_with_its_reason(change, code, reason):
    (result,) = map_document({"epcisBody": {"eventList": [TRANSACTION | change]}}, "acme", DEFAULTS)
    assert isinstance(result, Unmapped) and result.code == code and reason in result.detail, result
