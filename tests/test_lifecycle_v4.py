"""Rules of event.v4 (issue 15): the detector's AlertRaised, keys compromised since T,
where a scan's place came from; v1-v3 bytes still verify and replay; no second Issued."""

import hashlib
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from ledger.encoding import event_codec
from ledger.errors import Refused
from ledger.events import SignedEvent, new_event
from ledger.keys import KeyPair
from ledger.lifecycle import signed_while_compromised, signer_of
from ledger.replay import Replay
from tests.helpers import Cast, issued_payload, scanned_payload
from tests.test_lifecycle import refused, run


class DetectorCast(Cast):
    ROLES = {**Cast.ROLES, "detector": ("detector", [])}


@pytest.fixture
def cast():
    return DetectorCast()


def actors(cast, **changed):
    states = {a: cast.actor_state(a) for a in cast.ROLES} | changed
    return states.get


EVIDENCE = hashlib.sha256(b"e1\ne2").digest()


def raised(cast, alert_id, signer="detector", **kw):
    payload = {"alert_kind": "clone_overscan", "producer": "acme", "serial": "S1", "severity": "high", "evidence_commitment": EVIDENCE} | kw
    return cast.event(signer, "alert", alert_id, "AlertRaised", payload)


def ack(cast, alert_id, signer, advance=True, **kw):
    payload = {"alert_kind": "clone_overscan", "serial": "S1", "producer": "acme", "note": "looking into it"} | kw
    return cast.event(signer, "alert", alert_id, "AlertAcknowledged", payload, advance=advance)


def resolve(cast, alert_id, signer, producer="acme"):
    return cast.event(signer, "alert", alert_id, "AlertResolved", {"resolution": "confirmed", "producer": producer, "note": "seized 40 fakes"})


def field_refusal(build) -> Refused:
    with pytest.raises(Refused) as err:
        build()
    return err.value


# ---------------------------------------------------------------- AlertRaised


def test_the_detector_raises_and_the_producer_acknowledges_and_resolves(cast):
    a = str(uuid.uuid4())
    s = run(cast, raised(cast, a), None)
    assert (s.status, s.producer, s.alert_kind, s.serial) == ("raised", "acme", "clone_overscan", "S1")
    s = run(cast, ack(cast, a, "acme"), s)
    assert s.status == "acknowledged" and s.producer == "acme"
    s = run(cast, resolve(cast, a, "acme"), s)
    assert s.status == "resolved"


@pytest.mark.parametrize("signer", ["acme", "regulator", "gateway", "registrar"])
def test_only_a_detector_raises_an_alert(cast, signer):
    assert refused(cast, raised(cast, str(uuid.uuid4()), signer=signer), None).code == "not_authorized"


def test_an_alert_is_raised_once(cast):
    a = str(uuid.uuid4())
    s = run(cast, raised(cast, a), None)
    assert refused(cast, raised(cast, a), s).code == "invalid_transition"


def test_a_raised_alert_names_a_registered_producer(cast):
    assert refused(cast, raised(cast, str(uuid.uuid4()), producer="nobody"), None).code == "unknown_actor"
    assert refused(cast, raised(cast, str(uuid.uuid4()), producer="distributor"), None).code == "unknown_actor"


def test_another_producer_cannot_acknowledge_or_take_over_a_raised_alert(cast):
    a = str(uuid.uuid4())
    s = run(cast, raised(cast, a), None)
    # In its own name: the chain says the alert is acme's.
    assert refused(cast, ack(cast, a, "other-producer", producer="other-producer", advance=False), s).code == "invalid_field"
    assert refused(cast, ack(cast, a, "other-producer", advance=False), s).code == "not_authorized"
    assert refused(cast, resolve(cast, a, "other-producer"), s).code == "not_authorized"


def test_an_acknowledgement_repeats_the_raised_kind_and_serial(cast):
    a = str(uuid.uuid4())
    s = run(cast, raised(cast, a), None)
    assert refused(cast, ack(cast, a, "acme", alert_kind="diversion", advance=False), s).field == "alert_kind"
    assert refused(cast, ack(cast, a, "acme", serial="S2"), s).field == "alert_kind"


def test_an_alert_without_a_producer_is_moved_by_regulators_only(cast):
    a = str(uuid.uuid4())
    s = run(cast, raised(cast, a, producer=None, serial=None, alert_kind="unknown_code_cluster"), None)
    assert refused(cast, ack(cast, a, "acme", producer=None, serial=None, alert_kind="unknown_code_cluster", advance=False), s).code == "not_authorized"
    s = run(cast, ack(cast, a, "regulator", producer=None, serial=None, alert_kind="unknown_code_cluster"), s)
    assert run(cast, resolve(cast, a, "regulator", producer=None), s).status == "resolved"


def test_a_regulator_resolves_a_raised_alert_without_acknowledging_it(cast):
    a = str(uuid.uuid4())
    s = run(cast, raised(cast, a), None)
    s = run(cast, resolve(cast, a, "regulator"), s)
    assert s.status == "resolved"
    assert refused(cast, ack(cast, a, "acme"), s).code == "invalid_transition"


def test_a_chain_opened_by_an_acknowledgement_is_still_accepted(cast):
    """Alerts written under v2/v3 start with AlertAcknowledged; they must still replay."""
    a = str(uuid.uuid4())
    s = run(cast, ack(cast, a, "acme"), None)
    assert s.status == "acknowledged"
    assert refused(cast, ack(cast, a, "acme"), s).code == "invalid_transition"


@pytest.mark.parametrize("change, fld", [
    ({"severity": "urgent"}, "severity"),
    ({"severity": None}, "severity"),
    ({"evidence_commitment": b"short"}, "evidence_commitment"),
    ({"evidence_commitment": None}, "evidence_commitment"),
    ({"alert_kind": "Clone Overscan"}, "alert_kind"),
    ({"producer": "Not An Actor!"}, "producer"),
    ({"serial": "bad serial with spaces"}, "serial"),
])
def test_alert_raised_fields_are_checked(cast, change, fld):
    assert field_refusal(lambda: raised(cast, str(uuid.uuid4()), **change)).field == fld


def test_alert_raised_is_not_an_event_of_a_label(cast):
    payload = {"alert_kind": "x", "producer": None, "serial": None, "severity": "low", "evidence_commitment": EVIDENCE}
    assert field_refusal(lambda: cast.event("detector", "label", "S1", "AlertRaised", payload)).field == "payload"


# ---------------------------------------------------------------- compromised keys


def compromise(cast, actor, key_id, since, signer="registrar", reason="key found on a leaked build server", **kw):
    return cast.event(signer, "actor", actor, "ActorKeyCompromised", {"key_id": key_id, "since": since, "reason": reason}, **kw)


def registered(cast, actor="acme"):
    """The actor's state after its (real, signed) registration."""
    cast.event("registrar", "actor", actor, "ActorRegistered", {"role": "producer", "name": "Acme", "public_key": cast.keys[actor].public_key, "gtin_prefixes": ["6901234"]})
    return replace(cast.actor_state(actor), seq=0, head=cast.heads[("actor", actor)][1])


def test_a_registrar_declares_a_key_compromised_and_it_signs_nothing_more(cast):
    state = registered(cast)
    since = datetime.now(timezone.utc) - timedelta(days=3)
    after = run(cast, compromise(cast, "acme", state.key_id, since), state)
    assert after.compromised_since(state.key_id) == since
    with pytest.raises(Refused) as err:
        signer_of(cast.issue("S9").event, actors(cast, acme=after))
    assert err.value.code == "compromised_key"


def test_a_regulator_may_declare_a_compromise_a_producer_may_not(cast):
    state = registered(cast)
    since = datetime.now(timezone.utc) - timedelta(days=1)
    assert run(cast, compromise(cast, "acme", state.key_id, since, signer="regulator", advance=False), state).compromised
    assert refused(cast, compromise(cast, "acme", state.key_id, since, signer="other-producer"), state).code == "not_authorized"


def test_which_events_were_signed_while_compromised(cast):
    state = registered(cast)
    since = datetime.now(timezone.utc) - timedelta(hours=2)
    before = new_event(subject_type="label", subject="S1", kind="Issued", payload={}, actor="acme", key_id=state.key_id, occurred_at=since - timedelta(seconds=1))
    at = replace(before, occurred_at=since)
    after = run(cast, compromise(cast, "acme", state.key_id, since), state)
    assert signed_while_compromised(before, after) is None
    assert signed_while_compromised(at, after) == since
    assert signed_while_compromised(at, state) is None  # not declared (yet)


def test_a_former_key_can_be_declared_compromised_after_a_rotation(cast):
    state = registered(cast)
    old = state.key_id
    new_key = KeyPair.generate("acme-2")
    state = run(cast, cast.event("registrar", "actor", "acme", "ActorKeyRotated", {"public_key": new_key.public_key}), state)
    assert state.former_keys == (old,)
    since = datetime.now(timezone.utc) - timedelta(days=10)
    state = run(cast, compromise(cast, "acme", old, since), state)
    assert state.compromised_since(old) == since and state.compromised_since(new_key.key_id) is None
    # the current key still signs
    signer_of(cast.event("acme", "label", "S2", "Issued", issued_payload(), key=new_key).event, actors(cast, acme=state))
    # and the compromised key cannot come back
    assert refused(cast, cast.event("registrar", "actor", "acme", "ActorKeyRotated", {"public_key": cast.keys["acme"].public_key}), state).code == "compromised_key"


def test_a_compromise_moves_only_earlier(cast):
    state = registered(cast)
    t = datetime.now(timezone.utc) - timedelta(days=2)
    state = run(cast, compromise(cast, "acme", state.key_id, t), state)
    assert refused(cast, compromise(cast, "acme", state.key_id, t, advance=False), state).code == "invalid_transition"
    assert refused(cast, compromise(cast, "acme", state.key_id, t + timedelta(hours=1), advance=False), state).code == "invalid_transition"
    earlier = run(cast, compromise(cast, "acme", state.key_id, t - timedelta(days=1)), state)
    assert earlier.compromised_since(state.key_id) == t - timedelta(days=1) and len(earlier.compromised) == 1


def test_a_compromise_names_a_key_of_the_actor_and_a_past_time(cast):
    state = registered(cast)
    past = datetime.now(timezone.utc) - timedelta(days=1)
    assert refused(cast, compromise(cast, "acme", cast.keys["retailer"].key_id, past, advance=False), state).field == "key_id"
    future = datetime.now(timezone.utc) + timedelta(days=1)
    assert refused(cast, compromise(cast, "acme", state.key_id, future, advance=False), state).field == "since"


@pytest.mark.parametrize("change, fld", [
    ({"key_id": "ABC"}, "key_id"),
    ({"since": datetime(1999, 12, 31, tzinfo=timezone.utc)}, "since"),
    ({"since": datetime(2026, 1, 1)}, "since"),  # naive
    ({"reason": ""}, "reason"),
    ({"reason": "x" * 501}, "reason"),
])
def test_actor_key_compromised_fields_are_checked(cast, change, fld):
    payload = {"key_id": cast.keys["acme"].key_id, "since": datetime(2026, 1, 1, tzinfo=timezone.utc), "reason": "leak"} | change
    assert field_refusal(lambda: cast.event("registrar", "actor", "acme", "ActorKeyCompromised", payload)).field == fld


# ---------------------------------------------------------------- where a scan's place came from


def scan(cast, serial="S1", **kw):
    return cast.event("gateway", "label", serial, "Scanned", scanned_payload() | kw)


def test_place_source_and_claimed_region_are_signed(cast):
    s = run(cast, cast.issue("S1"), None)
    signed = scan(cast, place_source="address", claimed_region="110101")
    run(cast, signed, s)
    payload = event_codec().decode(signed.body)["payload"][1]
    assert (payload["place_source"], payload["claimed_region"]) == ("address", "110101")
    report = cast.event("gateway", "label", "S1", "ReportedFake", {"channel": "web", "region": None, "reason": "fake", "session": None, "place_source": "none"})
    assert event_codec().decode(report.body)["payload"][1]["place_source"] == "none"


@pytest.mark.parametrize("change, fld", [
    ({"place_source": "gps"}, "place_source"),
    ({"place_source": "none"}, "place_source"),  # region 440305 is set
    ({"place_source": "address", "region": None}, "region"),
    ({"claimed_region": "Beijing"}, "claimed_region"),
    ({"claimed_region": "1"}, "claimed_region"),
])
def test_place_fields_are_checked(cast, change, fld):
    assert field_refusal(lambda: scan(cast, **change)).field == fld


def test_a_report_place_fields_are_checked(cast):
    payload = {"channel": "web", "region": None, "reason": "fake", "session": None, "place_source": "geolocation"}
    assert field_refusal(lambda: cast.event("gateway", "label", "S1", "ReportedFake", payload)).field == "region"


# ---------------------------------------------------------------- a label is issued once


def test_a_label_cannot_be_issued_again_by_single_events(cast):
    s = run(cast, cast.issue("S1"), None)
    s = run(cast, cast.event("acme", "label", "S1", "Shipped", {"consignee": "retailer", "territory": "44", "channel": "offline_retail", "region": None}), s)
    again = refused(cast, cast.issue("S1"), s)
    assert (again.code, again.field) == ("label_exists", "subject")


# ---------------------------------------------------------------- old bytes, same rules (the auditor's replay)


def encode_as(version: int, cast, signer, subject_type, subject, kind, payload):
    """Sign an event whose body is encoded with ``schemas/event.v<version>.avsc``, as old logs hold."""
    head_seq, head = cast.heads.get((subject_type, subject), (-1, bytes(32)))
    e = new_event(subject_type=subject_type, subject=subject, kind=kind, payload=payload, actor=signer, key_id=cast.keys[signer].key_id, seq=head_seq + 1, prev_hash=head)
    body = event_codec().versions[version - 1].encode(e.to_record())
    signed = SignedEvent.from_parts(body, cast.keys[signer].sign(body))
    cast.heads[(subject_type, subject)] = (signed.event.seq, signed.hash)
    return signed


def test_v3_and_v2_bytes_still_verify_and_replay_beside_v4_events(cast):
    replay = Replay()
    log = cast.founding_events()
    payload = {"gtin": "06901234000016", "lot": "L1", "expiry": None, "product": "E-bike battery", "region": None, "pin_hash": None}
    old_issue = encode_as(3, cast, "acme", "label", "S1", "Issued", payload)
    old_scan = encode_as(2, cast, "gateway", "label", "S1", "Scanned", {"channel": "web", "region": "440305", "lat": None, "lon": None, "session": None, "pin_result": None})
    assert old_issue.body[:10] == event_codec().versions[2].header and old_scan.body[:10] == event_codec().versions[1].header
    assert "place_source" not in old_scan.event.payload  # v2 has no such field; readers use .get
    log += [old_issue, old_scan, scan(cast, place_source="address")]
    for index, signed in enumerate(log):
        replay.apply(SignedEvent.from_envelope(signed.envelope), index)
    assert replay.states[("label", "S1")].seq == 2


def test_the_auditors_replay_accepts_the_new_kinds_and_refuses_what_the_rules_refuse(cast):
    replay = Replay()
    log = cast.founding_events()
    acme = cast.keys["acme"].key_id
    a = str(uuid.uuid4())
    since = datetime.now(timezone.utc) - timedelta(hours=1)
    log += [cast.issue("S1"), raised(cast, a), ack(cast, a, "acme"), compromise(cast, "acme", acme, since, signer="regulator")]
    for index, signed in enumerate(log):
        replay.apply(signed, index)
    assert replay.states[("alert", a)].status == "acknowledged"
    assert replay.registry.as_of("acme").compromised_since(acme) == since
    # acme's key signs nothing after the declaration; a second AlertRaised is refused
    with pytest.raises(Refused) as err:
        replay.apply(cast.event("acme", "label", "S1", "Decommissioned", {"reason": "x"}), len(log))
    assert err.value.code == "compromised_key"
    with pytest.raises(Refused) as err:
        replay.apply(raised(cast, a), len(log))
    assert err.value.code == "invalid_transition"
