"""EPCIS error declarations (issue 19), pure: a captured errorDeclaration (Retracted / Corrected) exports
as EPCIS 2.0 says, the declared event again with ``errorDeclaration`` {declarationTime, reason,
correctiveEventIDs}, valid against GS1's schema; correctiveEventIDs that are a partner's eventIDs
resolve to the ledger events they were captured as (in the same document, before or after the
declaration, or captured earlier); and capture -> export -> capture gives the same declaration.
The real API (the declaration of someone else's event refused, the lookup of earlier captures) is in
tests/test_epcis_capture.py."""

from __future__ import annotations

import copy

import pytest

from ledger import epcis
from ledger.epcis_capture import Defaults, Mapped, ledger_ids, map_document
from ledger.events import new_event
from tests.helpers import Cast, issued_payload
from tests.test_epcis_cli import schema_validator

HOST = "id.traceledger.example"
DEFAULTS = Defaults(consignee="distributor", territory="44", channel="offline_retail")
SHIPPING = {
    "type": "ObjectEvent", "eventID": "ni:///sha-256;e1?ver=CBV2.0", "action": "OBSERVE", "bizStep": "shipping", "disposition": "in_transit",
    "epcList": ["urn:epc:id:sgtin:6901234.000001.D1"], "eventTime": "2024-05-01T08:00:00Z", "eventTimeZoneOffset": "+08:00",
    "readPoint": {"id": "urn:epc:id:sgln:6901234.00001.0"},
}
# The same shipping with the right place: the corrective event (signed here without the lifecycle's rules: only
# ids and the export are checked; tests/test_epcis_capture.py runs them on the real ledger).
CORRECTION = SHIPPING | {"eventID": "ni:///sha-256;c1?ver=CBV2.0", "readPoint": {"id": "urn:epc:id:sgln:6901234.00002.0"}}
DECLARATION = SHIPPING | {"errorDeclaration": {"declarationTime": "2024-05-02T00:00:00Z", "reason": "incorrect_data",
                                               "correctiveEventIDs": [CORRECTION["eventID"]]}}


def sign_mapped(cast: Cast, results, signer: str = "acme") -> list:
    """Sign every mapped event's commands with the ids the capture client gives them (traceledger.cli.epcis_capture)."""
    out = []
    for m in results:
        assert isinstance(m, Mapped), m
        for c, event_id in zip(m.commands, ledger_ids(signer, m)):
            seq, head = cast.heads[(c.subject_type, c.subject)]
            e = new_event(subject_type=c.subject_type, subject=c.subject, kind=c.kind, payload=c.payload, actor=signer,
                          key_id=cast.keys[signer].key_id, seq=seq + 1, prev_hash=head, occurred_at=m.occurred_at, event_id=event_id)
            s = e.sign(cast.keys[signer])
            cast.heads[(c.subject_type, c.subject)] = (s.event.seq, s.hash)
            out.append(s)
    return out


def captured():
    cast = Cast()
    issued = cast.event("acme", "label", "D1", "Issued", issued_payload())
    gtin = issued.event.payload["gtin"]
    # The declaration before the corrective event it names: resolved all the same (declarations map last).
    results = map_document({"epcisBody": {"eventList": [SHIPPING, DECLARATION, CORRECTION]}}, "acme", DEFAULTS)
    shipped, declared, correction = results
    assert [c.kind for c in declared.commands] == ["Corrected"]
    assert declared.commands[0].payload["corrective_event_ids"] == ledger_ids("acme", correction)
    assert declared.commands[0].payload["event_id"] == ledger_ids("acme", shipped)[0]
    return cast, issued, gtin, sign_mapped(cast, [shipped, correction, declared])


def test_a_declaration_exports_as_the_declared_event_with_its_error_declaration():
    cast, issued, gtin, (shipped, correction, corrected) = captured()
    doc = epcis.export([issued, shipped, correction, corrected], lambda _: gtin, HOST)
    assert not list(schema_validator().iter_errors(doc))
    out = doc["epcisBody"]["eventList"][3]
    assert out["eventID"] == f"urn:uuid:{shipped.event.event_id}" and out["tl:epcisEventID"] == SHIPPING["eventID"]
    assert out["errorDeclaration"] == {"declarationTime": "2024-05-02T00:00:00.000000Z", "reason": "incorrect_data",
                                       "correctiveEventIDs": [f"urn:uuid:{correction.event.event_id}"]}
    assert (out["bizStep"], out["readPoint"], out["eventTime"]) == ("shipping", SHIPPING["readPoint"], doc["epcisBody"]["eventList"][1]["eventTime"])
    assert out[epcis.DECLARATION_ID] == f"urn:uuid:{corrected.event.event_id}" and out["tl:event"]["kind"] == "Corrected"

    # Capturable elsewhere with its signatures; what it shows is checked against the declared event's bytes.
    signed, _ = epcis.signed_events_of(doc, lambda _: gtin, HOST)
    assert [s.event.kind for s in signed] == ["Issued", "Shipped", "Shipped", "Corrected"]
    for change in ({"errorDeclaration": out["errorDeclaration"] | {"reason": "did_not_occur"}},
                   {"readPoint": {"id": "urn:epc:id:sgln:6901234.00009.0"}},
                   {epcis.DECLARES: doc["epcisBody"]["eventList"][2][epcis.SIGNED][0]}):  # another event as the declared one
        tampered = copy.deepcopy(doc)
        tampered["epcisBody"]["eventList"][3] |= change
        with pytest.raises(epcis.EpcisError):
            epcis.signed_events_of(tampered, lambda _: gtin, HOST)


def test_capture_export_capture_gives_the_same_declaration():
    cast, issued, gtin, (shipped, correction, corrected) = captured()
    doc = epcis.export([issued, shipped, correction, corrected], lambda _: gtin, HOST)
    exported = doc["epcisBody"]["eventList"][1:]
    again = map_document({"epcisBody": {"eventList": exported}}, "retailer", DEFAULTS)
    ship2, correction2, declared2 = again
    (c,) = declared2.commands
    assert c.kind == "Corrected" and c.payload["reason"] == "incorrect_data"
    assert c.payload["event_id"] == ledger_ids("retailer", ship2)[0] and c.payload["corrective_event_ids"] == ledger_ids("retailer", correction2)


def test_a_retraction_without_reason_and_a_declaration_of_nothing_on_the_chain():
    cast = Cast()
    issued = cast.event("acme", "label", "D1", "Issued", issued_payload())
    gtin = issued.event.payload["gtin"]
    retract = SHIPPING | {"errorDeclaration": {"declarationTime": "2024-05-02T00:00:00Z"}}
    shipped, retracted = sign_mapped(cast, map_document({"epcisBody": {"eventList": [SHIPPING, retract]}}, "acme", DEFAULTS))
    assert retracted.event.kind == "Retracted" and retracted.event.payload["reason"] == "unspecified"
    stray = cast.event("acme", "label", "D1", "Retracted", {"event_id": "0b7c1b9e-0000-4000-8000-0000000000ff", "reason": "typo"})
    doc = epcis.export([issued, shipped, retracted, stray], lambda _: gtin, HOST)
    assert not list(schema_validator().iter_errors(doc))
    events = doc["epcisBody"]["eventList"]
    assert len(events) == 3 and events[2]["errorDeclaration"] == {"declarationTime": "2024-05-02T00:00:00.000000Z"}
