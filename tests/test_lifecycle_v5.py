"""Rules of event.v5 (issue 19): TransactionRecorded, an EPCIS TransactionEvent on a label's or
container's own chain. Who may record one (the custodian or the producer; a stranger is refused
with a reason), that the item's state does not change, the field rules, and that v1-v4 bytes still
decode, verify and replay beside v5 events."""

from __future__ import annotations

import pytest

from ledger.encoding import event_codec
from ledger.errors import Refused
from ledger.events import SignedEvent
from ledger.replay import Replay
from tests.helpers import Cast, issued_payload, shipped_payload
from tests.test_lifecycle import refused, run
from tests.test_lifecycle_v4 import encode_as

PO = {"type": "po", "value": "urn:epcglobal:cbv:bt:6901234000009:PO-1"}


def transaction(**kw) -> dict:
    return {"action": "ADD", "biz_transactions": [PO], "biz_step": "shipping", "disposition": "in_transit"} | kw


@pytest.fixture
def cast():
    return Cast()


def test_the_producer_and_then_the_custodian_record_transactions_and_nothing_about_the_label_changes(cast):
    issued = run(cast, cast.issue("S1"), None)
    after = run(cast, cast.event("acme", "label", "S1", "TransactionRecorded", transaction(parent="urn:epc:id:sscc:6901234.0000000001")), issued)
    assert after == issued.__class__(**{**issued.__dict__, "seq": 1, "head": after.head})  # only the chain head moved
    shipped = run(cast, cast.event("acme", "label", "S1", "Shipped", shipped_payload("distributor")), after)
    # In transit the shipper is still the custodian: the consignee does not deal in it yet.
    assert refused(cast, cast.event("distributor", "label", "S1", "TransactionRecorded", transaction(), advance=False), shipped).code == "not_authorized"
    received = run(cast, cast.event("distributor", "label", "S1", "Received", {"region": None}), shipped)
    moved = run(cast, cast.event("distributor", "label", "S1", "TransactionRecorded", transaction(action="DELETE")), received)
    assert (moved.status, moved.custodian) == ("received", "distributor")
    # The producer still may (it made the item); a retailer that never held it may not.
    run(cast, cast.event("acme", "label", "S1", "TransactionRecorded", transaction(action="OBSERVE", biz_step=None, disposition=None)), moved)


def test_a_stranger_and_another_producer_are_refused_with_a_reason(cast):
    issued = run(cast, cast.issue("S1"), None)
    for stranger in ("retailer", "other-producer", "regulator"):
        err = refused(cast, cast.event(stranger, "label", "S1", "TransactionRecorded", transaction(), advance=False), issued)
        assert err.code == "not_authorized" and "custodian (acme)" in err.detail, stranger


def test_a_decommissioned_label_records_no_transaction(cast):
    s = run(cast, cast.issue("S1"), None)
    s = run(cast, cast.event("acme", "label", "S1", "Decommissioned", {"reason": "destroyed"}), s)
    assert refused(cast, cast.event("acme", "label", "S1", "TransactionRecorded", transaction(), advance=False), s).code == "invalid_transition"


def test_a_container_records_transactions_by_its_custodian(cast):
    sscc = "069012340000000016"
    s = run(cast, cast.event("acme", "container", sscc, "ContainerCreated", {"level": "pallet", "region": None}), None)
    s = run(cast, cast.event("acme", "container", sscc, "TransactionRecorded", transaction()), s)
    assert s.contents == 0 and s.status == "issued"


@pytest.mark.parametrize("change, code, name", [
    ({"action": "MOVE"}, "invalid_field", "action"),
    ({"biz_transactions": []}, "missing_field", "biz_transactions"),
    ({"biz_transactions": [{"type": "po", "value": "x"}] * 21}, "field_too_long", "biz_transactions"),
    ({"biz_step": "Shipping Now"}, "invalid_field", "biz_step"),
    ({"disposition": "x" * 300}, "field_too_long", "disposition"),
    ({"parent": "a\x00b"}, "invalid_field", "parent"),
    ({"read_point": "urn:epc:id:sgln:6901234.0001.0"}, "invalid_field", "read_point"),
    ({"sources": [{"type": "owner", "value": "acme"}]}, "invalid_field", "sources.type"),
])
def test_field_rules(cast, change, code, name):
    with pytest.raises(Refused) as err:
        cast.event("acme", "label", "S1", "TransactionRecorded", transaction() | change, seq=1, prev=b"\x01" * 32)
    assert (err.value.code, err.value.field) == (code, name)


def test_a_transaction_is_no_opening_event(cast):
    assert refused(cast, cast.event("acme", "label", "S9", "TransactionRecorded", transaction(), advance=False), None).code == "unknown_subject"


def test_v4_and_older_bytes_still_verify_and_replay_beside_v5_events(cast):
    replay = Replay()
    log = cast.founding_events()
    v4_issue = encode_as(4, cast, "acme", "label", "S1", "Issued", issued_payload())
    v3_ship = encode_as(3, cast, "acme", "label", "S1", "Shipped", shipped_payload("distributor"))
    v5 = cast.event("acme", "label", "S1", "TransactionRecorded", transaction())
    assert v4_issue.body[:10] == event_codec().versions[3].header and v5.body[:10] == event_codec().latest.header
    assert event_codec().latest.name == "event.v5"
    log += [v4_issue, v3_ship, v5]
    for index, signed in enumerate(log):
        replay.apply(SignedEvent.from_envelope(signed.envelope), index)
    assert replay.states[("label", "S1")].seq == 2 and replay.states[("label", "S1")].status == "in_transit"
    # A v4 codec cannot read the new kind: no older reader mistakes it for something else.
    with pytest.raises(Refused):
        event_codec().versions[3].decode(v5.body)


@pytest.mark.parametrize("extra, ok", [
    ({"corrective_epcis_ids": ["ni:///sha-256;c6407ffc?ver=CBV2.0"]}, True),
    ({"corrective_epcis_ids": ["x"] * 2}, False),  # named twice
    ({"corrective_epcis_ids": [f"urn:x:{i}" for i in range(20)]}, False),  # 21 corrective events with the ledger's one
    ({"corrective_epcis_ids": ["a\x07"]}, False),
])
def test_a_correction_may_name_corrective_events_held_elsewhere(cast, extra, ok):
    """event.v5: Corrected.corrective_epcis_ids, a partner's eventIDs of events this ledger does not hold."""
    payload = {"event_id": "0b7c1b9e-0000-4000-8000-000000000001", "reason": "incorrect_data",
               "corrective_event_ids": ["0b7c1b9e-0000-4000-8000-000000000002"]} | extra
    build = lambda: cast.event("acme", "label", "S1", "Corrected", payload, seq=1, prev=b"\x01" * 32)  # noqa: E731
    if ok:
        assert event_codec().decode(build().body)["payload"][1]["corrective_epcis_ids"] == extra["corrective_epcis_ids"]
    else:
        with pytest.raises(Refused):
            build()
