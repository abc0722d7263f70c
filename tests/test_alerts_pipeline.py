"""Every alert kind, and the behaviours that must not alert, through real Kafka and PostgreSQL.

Ledger -> relay -> label-events -> detector (its own consumer group and schema)
-> alerts table; unknown codes through scan_inbox.
"""

from __future__ import annotations

import psycopg
import pytest

from ledger import batches, gs1, scan_inbox
from tests.alerts_world import TimedCast, alerts, detect_all, kinds_by_serial
from tests.helpers import gtin, issued_payload, shipped_payload
from tests.pipeline import founded_ledger, relay_all


@pytest.fixture
def world(settings):
    with founded_ledger(settings, TimedCast()) as w:
        yield w


def append(ledger, events):
    results = ledger.append(events)
    bad = [r.as_dict() for r in results if r.status != "accepted"]
    assert not bad, bad


def test_every_alert_kind_and_no_alert_for_legitimate_behaviour(world):
    settings, ledger, cast = world
    batch, expect, quiet = [], {}, []

    def label(**kw):
        serial, events = cast.to_retailer(**kw)
        batch.extend(events)
        return serial

    # --- must not alert
    normal = label()
    batch.append(cast.scan(normal, 0))
    quiet.append(normal)
    twice = label()
    batch += [cast.scan(twice, 0, lat=22.54, lon=113.93), cast.scan(twice, 0.5, lat=22.54, lon=113.93)]
    quiet.append(twice)
    family = label()
    batch += [cast.scan(family, 0, session="mum"), cast.scan(family, 3, session="son", lat=22.6, lon=114.1)]
    quiet.append(family)
    returned = label()
    batch += [cast.event("retailer", "label", returned, "Shipped", shipped_payload("distributor", "44")),
              cast.event("distributor", "label", returned, "Received", {"region": "440100"})]
    quiet.append(returned)
    exported = gs1.new_serial()
    batch += [cast.issue(exported), cast.event("acme", "label", exported, "Shipped", shipped_payload("distributor", "44")),
              cast.event("distributor", "label", exported, "Received", {"region": "440100"}),
              cast.event("distributor", "label", exported, "Shipped", shipped_payload("retailer", "81", "export")),
              cast.event("retailer", "label", exported, "Received", {"region": "810000"}),
              cast.scan(exported, 0, region="810000")]
    quiet.append(exported)
    inspected = label()
    batch.append(cast.scan(inspected, 0, region="310101", signer="regulator"))
    quiet.append(inspected)
    pin_owner = label()  # the buyer uses the PIN, then checks it again from the same phone
    batch += [cast.scan(pin_owner, 0, pin_result="first_use"), cast.scan(pin_owner, 600, pin_result="reused")]
    quiet.append(pin_owner)
    pin_typo = label()
    batch += [cast.scan(pin_typo, 0, pin_result="wrong"), cast.scan(pin_typo, 1, pin_result="wrong"), cast.scan(pin_typo, 2, pin_result="first_use")]
    quiet.append(pin_typo)

    # --- incidents
    diverted = label()
    batch.append(cast.scan(diverted, 0, region="310101"))
    expect[diverted] = {"diversion_territory"}
    online = label()
    batch.append(cast.scan(online, 0, channel="marketplace", signer="retailer", session=None))
    expect[online] = {"diversion_channel"}
    clone = label()
    batch += [cast.scan(clone, 0, region="440305"), cast.scan(clone, 40, region="650102", session="phone-x")]
    expect[clone] = {"clone_impossible_travel", "diversion_territory"}  # Urumqi is outside Shenzhen too
    copied = label()
    batch += [cast.scan(copied, i * 90, session=f"s{i}") for i in range(8)]
    expect[copied] = {"clone_overscan"}
    retired = label()
    batch += [cast.event("retailer", "label", retired, "Decommissioned", {"reason": "sold and used up"}), cast.scan(retired, 5)]
    expect[retired] = {"clone_overscan"}
    recalled = label()
    batch += [cast.event("acme", "label", recalled, "Recalled", {"reason": "cells overheat"}), cast.scan(recalled, 5)]
    expect[recalled] = {"recalled_scan"}
    fake = label()
    batch += [cast.event("regulator", "label", fake, "FlaggedCounterfeit", {"reason": "seized copy", "region": "440305"}), cast.scan(fake, 5)]
    expect[fake] = {"counterfeit_scan"}
    early = gs1.new_serial()
    batch += [cast.issue(early), cast.scan(early, 0, region="440300")]
    expect[early] = {"scan_before_ship"}
    pin_copied = label()  # a copied code and PIN, used again from another phone
    batch += [cast.scan(pin_copied, 0, pin_result="first_use"), cast.scan(pin_copied, 90, session="phone-9", pin_result="reused")]
    expect[pin_copied] = {"pin_reuse"}
    pin_guessed = label()
    batch += [cast.scan(pin_guessed, i, session="guesser", pin_result="wrong") for i in range(4)]
    expect[pin_guessed] = {"pin_reuse"}
    in_lot = label(lot="L9")
    append(ledger, batch)

    # A lot recall, seen by the detector before the next scan of one of its labels.
    append(ledger, [cast.event("regulator", "lot", f"{gtin()}/L9", "Recalled", {"reason": "spot check failed"})])
    relay_all(settings)
    detect_all(settings)
    append(ledger, [cast.scan(in_lot, 60)])
    expect[in_lot] = {"recalled_scan"}

    # Unknown codes: a made-up batch scanned in Shanghai, one mistyped code in Guangzhou, a known one.
    with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
        made_up = [gs1.new_serial() for _ in range(4)]
        for s in made_up + made_up[:1]:
            scan_inbox.accept(conn, s, channel="web", region="310115")
        scan_inbox.accept(conn, gs1.new_serial(), channel="web", region="440106")
        scan_inbox.accept(conn, normal, channel="web", region="440305")

    relay_all(settings)
    detector = detect_all(settings)
    assert detector.consumer.quarantined == 0
    rows = alerts(settings)
    got = kinds_by_serial(rows)
    for serial, kinds in expect.items():
        assert got.get(serial) == kinds, (serial, got.get(serial), kinds)
    assert not any(s in got for s in quiet), {s: got[s] for s in quiet if s in got}

    # One incident, one alert, updated with new evidence.
    over = [r for r in rows if r["serial"] == copied]
    assert len(over) == 1 and over[0]["sightings"] == 3 and len(over[0]["evidence"]) == 3 and over[0]["state"] == "open"
    travel = next(r for r in rows if r["kind"] == "clone_impossible_travel")
    guessed = next(r for r in rows if r["serial"] == pin_guessed)
    assert guessed["sightings"] == 2 and {k: v for k, v in guessed["detail"].items() if k != "evidence"} == {"reason": "wrong_pins", "wrong_pins": 4, "max_wrong_pins": 3}
    assert next(r for r in rows if r["serial"] == pin_copied)["detail"]["reason"] == "pin_reused"
    assert len(travel["evidence"]) == 2 and travel["detail"]["speed_kmh"] > 900
    assert next(r for r in rows if r["serial"] == diverted)["province"] == "31"

    unknown = [r for r in rows if r["kind"] == "unknown_code"]
    assert len(unknown) == 1, unknown
    u = unknown[0]
    assert u["dedupe_key"] == "unknown_code:web:3101" and u["detail"]["distinct_serials"] == 4 and u["sightings"] == 5
    assert sorted(u["detail"]["serials"]) == sorted(made_up) and u["serial"] is None

    # Nothing doubled: a second pass over the same topic and inbox changes nothing.
    detect_all(settings)
    assert alerts(settings) == rows


def test_a_rebuilt_detector_raises_the_same_alerts(world):
    settings, ledger, cast = world
    serial, events = cast.to_retailer()
    append(ledger, events + [cast.scan(serial, 0, region="110105"), cast.scan(serial, 20, region="440305", session="p2")])
    relay_all(settings)
    detect_all(settings)
    detect_all(settings, schema="alerts_rebuild")
    def strip(rows):
        return [{k: v for k, v in r.items() if k not in ("id", "created_at", "updated_at")} for r in rows]

    live, rebuilt = alerts(settings), alerts(settings, "alerts_rebuild")
    assert {r["kind"] for r in live} == {"diversion_territory", "clone_impossible_travel"}
    assert strip(rebuilt) == strip(live)


def test_a_batch_receipt_outside_the_territory_is_judged_label_by_label(world):
    """A movement is one signed event for many labels; the detector judges each label's step
    like the single event it stands for (issue 16): a retailer receiving a batch outside the
    territory it was shipped for raises a diversion on every label of it, and nothing on a
    batch received inside."""
    settings, ledger, cast = world
    serials = [gs1.new_serial() for _ in range(8)]
    issued = batches.issuance(issued_payload(gtin()), serials, actor="acme", key=cast.keys["acme"])
    assert ledger.append_batch(issued.signed, issued.manifest).status == "accepted"
    ship, opening = batches.movement("BatchShipped", [(s, 1, h) for s, h in zip(serials, issued.step_hashes())], actor="acme", key=cast.keys["acme"],
                                     region="4403", confidential={"consignee": "retailer", "territory": "44", "channel": "offline_retail"})
    assert ledger.append_batch(ship.signed, ship.manifest, opening=opening).status == "accepted"
    heads = dict(zip(serials, ship.step_hashes()))
    away, home = serials[:5], serials[5:]
    for received, region in ((away, "310101"), (home, "440305")):
        receipt, _ = batches.movement("BatchReceived", [(s, 2, heads[s]) for s in received], actor="retailer", key=cast.keys["retailer"], region=region)
        assert ledger.append_batch(receipt.signed, receipt.manifest).status == "accepted"
    relay_all(settings)
    detect_all(settings)
    found = kinds_by_serial(alerts(settings))
    assert {s: found.get(s) for s in serials} == {s: ({"diversion_territory"} if s in away else None) for s in serials}
