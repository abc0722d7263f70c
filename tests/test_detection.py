"""Detection rules as pure functions: every alert kind and the behaviours that must not alert."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from ledger.events import new_event
from ledger.lifecycle import LabelState
from projections.detection import Watch, evaluate
from projections.detection_config import DetectionConfig, Thresholds
from tests.helpers import gtin

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
KEY = "0" * 64
CFG = DetectionConfig()

AT_RETAILER = LabelState(serial="S1", gtin=gtin(), lot="L1", product="battery", producer="acme", status="received",
                         custodian="sz-retail", territory="4403", channel="offline_retail")
AT_FACTORY = LabelState(serial="S1", gtin=gtin(), lot="L1", product="battery", producer="acme", status="issued", custodian="acme")


def scan(minutes=0.0, region="440305", lat=None, lon=None, session="phone-1", channel="web", actor="gateway", pin_result=None):
    return new_event(subject_type="label", subject="S1", kind="Scanned", actor=actor, key_id=KEY, seq=5, prev_hash=b"\1" * 32,
                     occurred_at=T0 + timedelta(minutes=minutes),
                     payload={"channel": channel, "region": region, "lat": lat, "lon": lon, "session": session, "pin_result": pin_result})


def received(region, actor="sz-retail"):
    return new_event(subject_type="label", subject="S1", kind="Received", actor=actor, key_id=KEY, seq=4, prev_hash=b"\1" * 32,
                     occurred_at=T0, payload={"region": region})


def run(state, events, role="gateway", cfg=CFG, **kw):
    """Feed events in order; return all findings' kinds and the findings."""
    watch, found = Watch(), []
    for e in events:
        watch, f = evaluate(state, watch, e, role, cfg, **kw)
        found += f
    return [f.kind for f in found], found, watch


def test_a_normal_scan_in_territory_raises_nothing():
    assert run(AT_RETAILER, [scan()])[0] == []


def test_diversion_territory_on_scan_and_on_receipt():
    kinds, found, _ = run(AT_RETAILER, [scan(region="310101")])
    assert kinds == ["diversion_territory"]
    assert found[0].detail["territory"] == "4403" and found[0].region == "310101" and found[0].key == "diversion_territory:S1"
    in_transit = replace(AT_RETAILER, status="in_transit", territory="44", custodian="acme", consignee="gd")
    assert run(in_transit, [received("3101", actor="gd")], role="distributor")[0] == ["diversion_territory"]
    assert run(in_transit, [received("440100", actor="gd")], role="distributor")[0] == []


def test_coarse_region_overlapping_the_territory_cannot_be_called_a_diversion():
    assert run(AT_RETAILER, [scan(region="44")])[0] == []


def test_diversion_channel_marketplace_scan_of_offline_goods():
    kinds, found, _ = run(AT_RETAILER, [scan(channel="marketplace", session=None)])
    assert kinds == ["diversion_channel"]
    assert found[0].detail == {"shipped_channel": "offline_retail", "seen_channel": "online_marketplace", "by": "gateway scan"}
    online = replace(AT_RETAILER, channel="online_marketplace")
    assert run(online, [scan(channel="marketplace")])[0] == []
    assert run(replace(AT_RETAILER, channel="any"), [scan(channel="marketplace")])[0] == []


def test_diversion_channel_by_a_receiving_actor_known_as_a_channel():
    cfg = replace(CFG, sales_channel_of_actor={"tmall-store": "online_marketplace"})
    in_transit = replace(AT_RETAILER, status="in_transit", consignee="tmall-store")
    assert run(in_transit, [received("440305", actor="tmall-store")], role="retailer", cfg=cfg)[0] == ["diversion_channel"]


def test_clone_impossible_travel_shenzhen_then_urumqi_within_an_hour():
    kinds, found, _ = run(AT_RETAILER, [scan(0, "440305"), scan(45, "650102", session="phone-2")])
    assert "clone_impossible_travel" in kinds
    f = next(x for x in found if x.kind == "clone_impossible_travel")
    assert len(f.event_ids) == 2 and f.detail["speed_kmh"] > 900


def test_a_flight_is_not_impossible_travel():
    # Shenzhen -> Beijing (~1940 km) five hours later: a plane does that.
    kinds = run(replace(AT_RETAILER, territory="44"), [scan(0, "440305"), scan(300, "110101")])[0]
    assert "clone_impossible_travel" not in kinds


def test_out_of_order_scans_are_still_compared():
    kinds = run(AT_RETAILER, [scan(60, "440305"), scan(30, "310101", session="x")])[0]
    assert "clone_impossible_travel" in kinds


def test_clone_overscan_by_distinct_sessions_with_per_product_override():
    events = [scan(i * 600, session=f"phone-{i}") for i in range(7)]
    kinds, found, watch = run(AT_RETAILER, events)
    assert kinds == ["clone_overscan", "clone_overscan"]  # the 6th and 7th sessions
    assert found[-1].detail["sessions"] == 7 and len(watch.sessions) == 7
    generous = DetectionConfig(per_product={gtin()[:8]: {"max_sessions": 10}})
    assert generous.thresholds(gtin()).max_sessions == 10 and generous.thresholds("09999999999999") == Thresholds()
    assert run(AT_RETAILER, events, cfg=generous)[0] == []


def test_anonymous_scans_count_once_per_city_channel_and_day():
    events = [scan(i, session=None) for i in range(10)]
    assert run(AT_RETAILER, events)[0] == []
    assert len(run(AT_RETAILER, events)[2].sessions) == 1


def test_scan_after_decommissioning_is_an_overscan():
    kinds, found, _ = run(replace(AT_RETAILER, status="decommissioned"), [scan()])
    assert kinds == ["clone_overscan"] and found[0].detail["reason"] == "scanned_after_decommissioning"


def test_recalled_counterfeit_and_lot_recall():
    assert run(replace(AT_RETAILER, recalled=True), [scan()])[0] == ["recalled_scan"]
    assert run(AT_RETAILER, [scan()], lot_recalled=True)[0] == ["recalled_scan"]
    assert run(replace(AT_RETAILER, counterfeit=True), [scan()])[0] == ["counterfeit_scan"]


def test_scan_before_ship_only_for_consumer_scans():
    assert run(AT_FACTORY, [scan()])[0] == ["scan_before_ship"]
    assert run(AT_FACTORY, [scan(actor="acme")], role="producer")[0] == []  # the factory's own QA scan


def test_regulator_inspections_raise_nothing():
    assert run(replace(AT_RETAILER, counterfeit=True), [scan(region="310101", actor="samr")], role="regulator")[0] == []


# ------------------------------------------------------------ must not alert


def test_consumer_scanning_twice_in_a_minute():
    assert run(AT_RETAILER, [scan(0, lat=22.54, lon=113.93), scan(0.5, lat=22.54, lon=113.93)])[0] == []


def test_family_scanning_from_two_phones_in_one_city():
    events = [scan(0, lat=22.54, lon=113.93, session="mum"), scan(2, lat=22.61, lon=114.05, session="son")]
    kinds, _, watch = run(AT_RETAILER, events)
    assert kinds == [] and len(watch.sessions) == 2


def test_return_to_distributor_and_legal_reexport_follow_the_latest_shipment():
    returning = replace(AT_RETAILER, status="in_transit", territory="44", consignee="gd", custodian="sz-retail")
    assert run(returning, [received("440100", actor="gd")], role="distributor")[0] == []
    exported = replace(AT_RETAILER, territory="81", channel="export", custodian="hk-export")
    assert run(exported, [scan(region="810000")])[0] == []


def test_config_file_shape_round_trips_and_refuses_unknown_names(tmp_path):
    cfg = DetectionConfig(per_product={"0690": {"max_sessions": 9}})
    assert DetectionConfig.from_dict(cfg.as_dict()) == cfg
    with pytest.raises(ValueError, match="max_sesions"):
        DetectionConfig.from_dict({"per_product": {"0690": {"max_sesions": 9}}})
    with pytest.raises(ValueError, match="speed"):
        DetectionConfig.from_dict({"speed": 1})


def test_the_buyer_travelling_with_the_item_is_not_a_diversion():
    home, away = scan(0, session="owner"), scan(3 * 24 * 60, region="110105", session="owner")
    assert run(AT_RETAILER, [home, away])[0] == []
    assert run(AT_RETAILER, [away])[0] == ["diversion_territory"]  # never seen at home: diverted
    assert run(AT_RETAILER, [home, scan(3 * 24 * 60, region="110105", session="stranger")])[0] == ["diversion_territory"]


# ------------------------------------------------------------------ pin_reuse


def test_a_first_pin_use_and_the_buyer_checking_again_raise_nothing():
    kinds, _, watch = run(AT_RETAILER, [scan(pin_result="first_use"), scan(5, pin_result="reused")])
    assert kinds == [] and watch.pin_session == "phone-1"
    # A round trip through the stored form keeps what the rule needs.
    assert Watch.from_json(watch.as_json()) == watch


def test_a_pin_used_again_from_another_session_is_pin_reuse():
    kinds, found, _ = run(AT_RETAILER, [scan(pin_result="first_use"), scan(60, session="stranger", region="310101", pin_result="reused")])
    assert "pin_reuse" in kinds
    f = next(f for f in found if f.kind == "pin_reuse")
    assert f.key == "pin_reuse:S1" and f.detail["reason"] == "pin_reused" and f.severity == "high"


def test_wrong_pins_alert_from_the_configured_count():
    wrong = [scan(i, session=f"guess-{i}", pin_result="wrong") for i in range(4)]
    kinds, found, watch = run(AT_RETAILER, wrong)
    assert kinds == ["pin_reuse", "pin_reuse"] and watch.wrong_pins == 4  # the 3rd and the 4th
    assert found[0].detail == {"reason": "wrong_pins", "wrong_pins": 3, "max_wrong_pins": 3}
    assert run(AT_RETAILER, wrong[:2])[0] == []  # a typo or two
    lenient = DetectionConfig(per_product={gtin()[:8]: {"max_wrong_pins": 5}})
    assert run(AT_RETAILER, wrong, cfg=lenient)[0] == []
