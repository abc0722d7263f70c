"""Rules of the event kinds added by event.v2: consumer reports, PIN results,
signed alert transitions, and which kinds may open a chain."""

import uuid

import pytest

from ledger.errors import Refused
from ledger.events import event_codec
from tests.helpers import Cast, scanned_payload
from tests.test_lifecycle import refused, run


@pytest.fixture
def cast():
    return Cast()


def report(cast, serial, signer="gateway"):
    return cast.event(signer, "label", serial, "ReportedFake",
                      {"channel": "web", "region": "440305", "reason": "packaging looks wrong", "session": None})


def ack(cast, alert_id, signer, producer="acme", **kw):
    payload = {"alert_kind": "clone_overscan", "serial": "S1", "producer": producer, "note": "looking into it"} | kw
    return cast.event(signer, "alert", alert_id, "AlertAcknowledged", payload)


def resolve(cast, alert_id, signer, producer="acme", resolution="confirmed"):
    return cast.event(signer, "alert", alert_id, "AlertResolved", {"resolution": resolution, "producer": producer, "note": "seized 40 fakes"})


def test_events_are_written_with_the_latest_schema(cast):
    signed = cast.issue("S1")
    assert signed.body[:10] == event_codec().latest.header


def test_a_gateway_records_a_consumer_report_on_the_label_chain(cast):
    s = run(cast, cast.issue("S1"), None)
    after = run(cast, report(cast, "S1"), s)
    assert after.seq == 1 and after.status == s.status


def test_a_retailer_cannot_file_a_consumer_report(cast):
    s = run(cast, cast.issue("S1"), None)
    assert refused(cast, report(cast, "S1", signer="retailer"), s).code == "not_authorized"


def test_a_report_cannot_open_a_chain(cast):
    assert refused(cast, report(cast, "NEVER1"), None).code == "unknown_subject"


def test_pin_result_travels_on_the_scan(cast):
    s = run(cast, cast.issue("S1"), None)
    scan = cast.event("gateway", "label", "S1", "Scanned", scanned_payload() | {"pin_result": "reused"})
    run(cast, scan, s)
    assert event_codec().decode(scan.body)["payload"][1]["pin_result"] == "reused"


def test_unknown_pin_result_is_refused(cast):
    with pytest.raises(Refused) as err:
        cast.event("gateway", "label", "S1", "Scanned", scanned_payload() | {"pin_result": "maybe"})
    assert err.value.field == "pin_result"


def test_alert_is_acknowledged_then_resolved_by_its_producer(cast):
    alert = str(uuid.uuid4())
    s = run(cast, ack(cast, alert, "acme"), None)
    assert (s.status, s.producer, s.alert_kind) == ("acknowledged", "acme", "clone_overscan")
    s = run(cast, resolve(cast, alert, "acme", resolution="false_positive"), s)
    assert (s.status, s.resolution) == ("resolved", "false_positive")


def test_a_regulator_moves_any_alert_on(cast):
    alert = str(uuid.uuid4())
    s = run(cast, ack(cast, alert, "regulator", producer=None, serial=None, alert_kind="unknown_code"), None)
    assert run(cast, resolve(cast, alert, "regulator", producer=None), s).status == "resolved"


def test_another_producer_cannot_acknowledge(cast):
    assert refused(cast, ack(cast, str(uuid.uuid4()), "other-producer"), None).code == "not_authorized"


def test_resolve_needs_acknowledge_first(cast):
    assert refused(cast, resolve(cast, str(uuid.uuid4()), "regulator"), None).code == "unknown_subject"


def test_a_resolved_alert_stays_resolved(cast):
    alert = str(uuid.uuid4())
    s = run(cast, ack(cast, alert, "acme"), None)
    s = run(cast, resolve(cast, alert, "acme"), s)
    assert refused(cast, resolve(cast, alert, "regulator"), s).code == "invalid_transition"


def test_resolution_cannot_move_the_alert_to_another_producer(cast):
    alert = str(uuid.uuid4())
    s = run(cast, ack(cast, alert, "acme"), None)
    assert refused(cast, resolve(cast, alert, "other-producer", producer="other-producer"), s).code == "invalid_field"


def test_alert_subject_must_be_a_uuid(cast):
    with pytest.raises(Refused) as err:
        ack(cast, "ALERT-1", "regulator")
    assert err.value.field == "subject"
