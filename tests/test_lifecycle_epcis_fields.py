"""Rules of event.v4 for issue 19: the EPCIS fields a captured event keeps (business
transactions, places as GLNs, sources and destinations, certification info, sensor data,
its eventID), association with any parent, and error declarations."""

import json
import uuid

import pytest

from ledger.encoding import event_codec
from ledger.errors import Refused
from ledger.events import MAX_SENSOR_BYTES
from ledger.replay import Replay
from tests.helpers import Cast, gtin, issued_payload, shipped_payload
from tests.test_lifecycle import refused, run

SGLN = "urn:epc:id:sgln:6901234.00001.0"
LINK = "https://id.example.cn/414/6901234000009/254/dock-2"


@pytest.fixture
def cast():
    return Cast()


def field_refusal(build) -> Refused:
    with pytest.raises(Refused) as err:
        build()
    return err.value


def sensor(readings) -> bytes:
    return json.dumps(readings, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def shipped(**kw):
    return shipped_payload("distributor") | kw


def test_a_shipment_keeps_what_its_epcis_event_said(cast):
    s = run(cast, cast.event("acme", "label", "S1", "Issued", issued_payload() | {
        "biz_transactions": [{"type": "po", "value": "urn:epcglobal:cbv:bt:6901234000009:PO-1"}], "read_point": SGLN,
        "epcis_event_id": "ni:///sha-256;abc?ver=CBV2.0"}), None)
    readings = sensor([{"sensorMetadata": {"time": "2026-01-01T00:00:00Z"}, "sensorReport": [{"type": "Temperature", "value": 4.5, "uom": "CEL"}]}])
    signed = cast.event("acme", "label", "S1", "Shipped", shipped(
        biz_transactions=[{"type": "desadv", "value": "D-77"}, {"type": "urn:example:bt:custom", "value": "X"}],
        biz_location=LINK, sources=[{"type": "location", "value": SGLN}, {"type": "owning_party", "value": "acme"}],
        destinations=[{"type": "possessing_party", "value": "urn:epc:id:pgln:6901234.00000"}], sensor_data=readings))
    assert run(cast, signed, s).status == "in_transit"
    p = event_codec().decode(signed.body)["payload"][1]
    assert p["biz_transactions"][0] == {"type": "desadv", "value": "D-77"} and p["sensor_data"] == readings
    assert p["sources"][0] == {"type": "location", "value": SGLN} and p["biz_location"] == LINK


def test_certification_info_on_a_lot(cast):
    info = [{"standard": "GB 31241-2022", "agency": "CQC", "value": "pass", "identification": "CCC/2024011101234567"}]
    signed = cast.event("acme", "lot", f"{gtin()}/L1", "LotCommissioned", {"product": "cells", "certificates": [], "region": None, "certification_info": info})
    assert event_codec().decode(signed.body)["payload"][1]["certification_info"] == info


@pytest.mark.parametrize("change, fld", [
    ({"read_point": "Shenzhen dock 2"}, "read_point"),
    ({"read_point": "urn:epc:id:sgln:6901234.001.0"}, "read_point"),  # 10 digits, not 12
    ({"biz_location": "https://id.example.cn/414/6901234000005"}, "biz_location"),  # check digit
    ({"biz_location": "http://id.example.cn/414/6901234000009"}, "biz_location"),
    ({"epcis_event_id": "x" * 257}, "epcis_event_id"),
    ({"epcis_event_id": "a\nb"}, "epcis_event_id"),
    ({"biz_transactions": [{"type": "PO!", "value": "1"}]}, "biz_transactions.type"),
    ({"biz_transactions": [{"type": "po", "value": ""}]}, "biz_transactions.value"),
    ({"biz_transactions": [{"type": "po", "value": "v" * 257}]}, "biz_transactions.value"),
    ({"biz_transactions": [{"type": "po", "value": str(i)} for i in range(21)]}, "biz_transactions"),
    ({"sources": [{"type": "owner", "value": "acme"}]}, "sources.type"),
    ({"destinations": [{"type": "location", "value": "acme"}]}, "destinations.value"),
    ({"sensor_data": b"x" * (MAX_SENSOR_BYTES + 1)}, "sensor_data"),
    ({"sensor_data": b'[{"b":1, "a":2}]'}, "sensor_data"),  # not canonical
    ({"sensor_data": b'{"a":1}'}, "sensor_data"),  # not a list
    ({"sensor_data": b"\xff"}, "sensor_data"),
])
def test_epcis_fields_are_checked(cast, change, fld):
    assert field_refusal(lambda: cast.event("acme", "label", "S1", "Shipped", shipped(**change), seq=1, prev=b"\x01" * 32)).field == fld


def test_certification_info_fields_are_checked(cast):
    info = [{"standard": "GB 31241", "agency": "", "value": "pass", "identification": None}]
    payload = {"product": "cells", "certificates": [], "region": None, "certification_info": info}
    assert field_refusal(lambda: cast.event("acme", "lot", f"{gtin()}/L1", "LotCommissioned", payload)).field == "certification_info.agency"


def test_a_sensor_list_of_16_kib_is_accepted(cast):
    filler = "x" * (MAX_SENSOR_BYTES - len(sensor([{"v": ""}])))
    data = sensor([{"v": filler}])
    assert len(data) == MAX_SENSOR_BYTES
    cast.event("distributor", "label", "S1", "Received", {"region": None, "sensor_data": data}, seq=1, prev=b"\x01" * 32)


# ---------------------------------------------------------------- association with any parent


def test_the_custodian_associates_a_label_with_a_non_sscc_parent(cast):
    s = run(cast, cast.issue("S1"), None)
    giai = "urn:epc:id:giai:6901234.E-BIKE-0001"
    s2 = run(cast, cast.event("acme", "label", "S1", "Associated", {"parent": giai, "read_point": SGLN}), s)
    s3 = run(cast, cast.event("acme", "label", "S1", "Disassociated", {"parent": giai}), s2)
    assert (s3.seq, s3.status, s3.custodian) == (2, s.status, s.custodian)
    assert refused(cast, cast.event("retailer", "label", "S1", "Associated", {"parent": giai}), s3).code == "not_authorized"


def test_association_needs_a_parent_and_an_existing_subject(cast):
    assert field_refusal(lambda: cast.event("acme", "label", "S1", "Associated", {"parent": ""})).field == "parent"
    assert field_refusal(lambda: cast.event("acme", "label", "S1", "Associated", {"parent": "p" * 257})).field == "parent"
    assert refused(cast, cast.event("acme", "label", "S9", "Associated", {"parent": "urn:epc:id:giai:6901234.1"}), None).code == "unknown_subject"


def test_a_decommissioned_label_is_not_associated(cast):
    s = run(cast, cast.issue("S1"), None)
    s = run(cast, cast.event("acme", "label", "S1", "Decommissioned", {"reason": "destroyed"}), s)
    assert refused(cast, cast.event("acme", "label", "S1", "Associated", {"parent": "urn:epc:id:giai:6901234.1"}), s).code == "invalid_transition"


# ---------------------------------------------------------------- error declarations


def test_the_producer_or_a_regulator_declares_an_event_in_error(cast):
    issued = cast.issue("S1")
    s = run(cast, issued, None)
    fix = str(uuid.uuid4())
    s = run(cast, cast.event("acme", "label", "S1", "Corrected", {"event_id": issued.event.event_id, "reason": "incorrect_data", "corrective_event_ids": [fix]}), s)
    s = run(cast, cast.event("regulator", "label", "S1", "Retracted", {"event_id": issued.event.event_id, "reason": "did_not_occur"}), s)
    assert s.seq == 2 and s.status == "issued"
    assert refused(cast, cast.event("other-producer", "label", "S1", "Retracted", {"event_id": issued.event.event_id, "reason": "x"}), s).code == "not_authorized"


def test_a_lot_event_can_be_declared_in_error(cast):
    lot = f"{gtin()}/L1"
    commissioned = cast.event("acme", "lot", lot, "LotCommissioned", {"product": "cells", "certificates": [], "region": None})
    s = run(cast, commissioned, None)
    assert run(cast, cast.event("acme", "lot", lot, "Retracted", {"event_id": commissioned.event.event_id, "reason": "did_not_occur"}), s).seq == 1


@pytest.mark.parametrize("change, fld", [
    ({"event_id": "not-a-uuid"}, "event_id"),
    ({"reason": ""}, "reason"),
    ({"corrective_event_ids": ["nope"]}, "corrective_event_ids"),
    ({"corrective_event_ids": [str(uuid.UUID(int=i)) for i in range(21)]}, "corrective_event_ids"),
    ({"corrective_event_ids": ["00000000-0000-0000-0000-000000000001"] * 2}, "corrective_event_ids"),
    ({"corrective_event_ids": ["00000000-0000-0000-0000-000000000000"]}, "corrective_event_ids"),  # the event in error itself
])
def test_declaration_fields_are_checked(cast, change, fld):
    payload = {"event_id": "00000000-0000-0000-0000-000000000000", "reason": "incorrect_data", "corrective_event_ids": []} | change
    assert field_refusal(lambda: cast.event("acme", "label", "S1", "Corrected", payload, seq=1, prev=b"\x01" * 32)).field == fld


def test_the_auditors_replay_accepts_the_epcis_kinds(cast):
    replay = Replay()
    issued = cast.event("acme", "label", "S1", "Issued", issued_payload() | {"read_point": SGLN, "epcis_event_id": "urn:uuid:1"})
    log = cast.founding_events() + [
        issued,
        cast.event("acme", "label", "S1", "Shipped", shipped(biz_transactions=[{"type": "po", "value": "1"}], sensor_data=sensor([]))),
        cast.event("distributor", "label", "S1", "Received", {"region": None, "biz_location": LINK}),
        cast.event("distributor", "label", "S1", "Associated", {"parent": "urn:epc:id:giai:6901234.1"}),
        cast.event("acme", "label", "S1", "Corrected", {"event_id": issued.event.event_id, "reason": "incorrect_data", "corrective_event_ids": []}),
    ]
    for index, signed in enumerate(log):
        replay.apply(signed, index)
    assert replay.states[("label", "S1")].seq == 4


def test_a_remembered_valid_payload_lets_no_other_list_through(cast):
    """The field rules remember valid payloads (short lists keyed as tuples): another list is checked anew."""
    good = issued_payload() | {"certificates": ["CCC/1"], "biz_transactions": []}
    for _ in range(2):
        cast.event("acme", "label", "S1", "Issued", good, advance=False)
    assert field_refusal(lambda: cast.event("acme", "label", "S1", "Issued", good | {"certificates": ["CCC/1", "bad id"]})).field == "certificates"
    assert field_refusal(lambda: cast.event("acme", "label", "S1", "Issued", good | {"certificates": ("CCC/1",)})).field == "certificates"
    bad_bt = good | {"biz_transactions": [{"type": "PO!", "value": "1"}]}
    assert field_refusal(lambda: cast.event("acme", "label", "S1", "Issued", bad_bt)).field == "biz_transactions.type"
