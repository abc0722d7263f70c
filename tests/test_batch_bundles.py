"""A batch-issued label's proof bundle (issue 16): its step in the batch, provable offline.

The bundle of a label issued in a batch event carries the signed batch event (its log
leaf) and the label's step with its inclusion path under the signed ``labels_root`` —
not the manifest of up to 8,192 labels — and verifies with the log key alone, like a
bundle of single events. Real PostgreSQL, Kafka, relay and projector; the API in process.
"""

from __future__ import annotations

import base64
import json

import psycopg
import pytest
from fastapi.testclient import TestClient

from consumers.checkpointer import load_or_create_log_key
from ledger import batches
from ledger.service import Ledger
from ledger.transparency import proofs
from ledger.transparency.bundle import BundleError, verify_bundle
from projections import log_queries
from tests.helpers import Cast, gtin, issued_payload, shipped_payload
from tests.pipeline import founded_ledger, project_all, relay_all
from traceledger.api import create_app
from traceledger.auth import authorization_header

LABELS = 300
SHIP = {"consignee": "distributor", "territory": "44", "channel": "offline_retail"}


@pytest.fixture
def batch_world(fresh_settings, tmp_path):
    settings = fresh_settings(log_key=tmp_path / "log.key", checkpoint_events=5, checkpoint_seconds=3600, relay_batch=10)
    serials = [f"B{i:05d}" for i in range(LABELS)]
    with founded_ledger(settings, Cast()) as (settings, ledger, cast):
        b = batches.issuance(issued_payload(gtin()), serials, actor="acme", key=cast.keys["acme"])
        assert ledger.append_batch(b.signed, b.manifest).status == "accepted"
        shipped = cast.event("acme", "label", "B00007", "Shipped", shipped_payload("distributor"), seq=1, prev=b.step_hashes()[7])
        assert ledger.append([shipped])[0].status == "accepted"
        # B00010..B00019 move in batches: shipped (sealed consignee) and received, one event each.
        moved = [f"B{i:05d}" for i in range(10, 20)]
        ship, opening = batches.movement("BatchShipped", [(s, 1, b.step_hashes()[int(s[1:])]) for s in moved], actor="acme",
                                         key=cast.keys["acme"], region="1101", confidential=SHIP)
        assert ledger.append_batch(ship.signed, ship.manifest, opening=opening).status == "accepted"
        receive, _ = batches.movement("BatchReceived", [(s, 2, h) for s, h in zip(moved, ship.step_hashes())], actor="distributor",
                                      key=cast.keys["distributor"], region="4403")
        assert ledger.append_batch(receive.signed, receive.manifest).status == "accepted"
    relay_all(settings)
    project_all(settings)
    return settings, cast, b, load_or_create_log_key(settings.log_key)


def bundle_of(settings, cast, serial: str, signer: str | None = "acme") -> dict:
    target = f"/v1/labels/{serial}/proof"
    headers = {"authorization": authorization_header(cast.keys[signer], "GET", target)} if signer else {}
    with TestClient(create_app(settings)) as client:
        r = client.get(target, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_batch_labels_bundle_holds_its_step_not_the_manifest_and_verifies_offline(batch_world):
    settings, cast, b, log_key = batch_world
    bundle = bundle_of(settings, cast, "B00007")
    result = verify_bundle(bundle, log_key.public_key, origin=settings.log_origin)
    assert [(e["kind"], e["seq"], e["subject"]) for e in result.events] == [("BatchIssued", 0, "B00007"), ("Shipped", 1, "B00007")]
    assert result.label.status == "in_transit" and result.label.producer == "acme"
    step_entry = next(e for e in bundle["entries"] if "step" in e)
    assert step_entry["event_id"] == b.signed.event.event_id and step_entry["step"]["leaf"] == 7
    # Small whatever the batch size: one step and its path, never the manifest.
    assert len(json.dumps(step_entry["step"])) < 1024 and len(json.dumps(bundle)) < len(b.manifest)

    # A label moved in batches: each step proved, the sealed shipment opened for its producer.
    moved = bundle_of(settings, cast, "B00012")
    result = verify_bundle(moved, log_key.public_key)
    assert [e["kind"] for e in result.events] == ["BatchIssued", "BatchShipped", "BatchReceived"]
    assert (result.label.status, result.label.custodian) == ("received", "distributor")
    opened = [e["step"]["opening"] for e in moved["entries"] if "opening" in e.get("step", {})]
    assert len(opened) == 1 and opened[0]["fields"] == SHIP
    lying = json.loads(json.dumps(moved))
    next(e for e in lying["entries"] if "opening" in e.get("step", {}))["step"]["opening"]["fields"]["consignee"] = "retailer"
    with pytest.raises(BundleError, match="wrong_opening"):
        verify_bundle(lying, log_key.public_key)

    # A label issued in the batch and never touched again has a bundle too.
    untouched = verify_bundle(bundle_of(settings, cast, "B00123"), log_key.public_key)
    assert [e["kind"] for e in untouched.events] == ["BatchIssued"] and untouched.label.seq == 0


def test_a_forged_step_in_a_bundle_is_refused(batch_world):
    settings, cast, b, log_key = batch_world
    genuine = bundle_of(settings, cast, "B00007")
    at = next(i for i, e in enumerate(genuine["entries"]) if "step" in e)
    neighbour_step = bundle_of(settings, cast, "B00008")["entries"][at]["step"]
    forgeries = {
        "the right step claimed at another position": lambda step: {**step, "leaf": 8},
        "another label's genuine step under this label's entry": lambda step: neighbour_step,
        "a path one hash short": lambda step: {**step, "path": step["path"][:-1]},
        "the step left out (the batch event alone says nothing of this label)": lambda step: None,
    }
    for name, forge in forgeries.items():
        bundle = json.loads(json.dumps(genuine))
        entry = bundle["entries"][at]
        forged = forge(entry["step"])
        if forged is None:
            del entry["step"]
        else:
            entry["step"] = forged
        with pytest.raises(BundleError):
            verify_bundle(bundle, log_key.public_key)
            pytest.fail(f"accepted: {name}")


def test_the_public_bundle_of_a_batch_label_has_the_batch_leaf_but_no_bytes(batch_world):
    settings, cast, b, log_key = batch_world
    public = bundle_of(settings, cast, "B00007", signer=None)
    assert public["format"] == "traceledger-public-bundle/v1"
    text = json.dumps(public)
    assert b.signed.event.event_id not in text and base64.b64encode(b.signed.body).decode()[:40] not in text
    cp = public["checkpoint"]
    assert len(public["entries"]) == 2  # the batch event and the label's own Shipped
    for e in public["entries"]:
        proofs.verify_inclusion(e["index"], cp["size"], bytes.fromhex(e["leaf_hash"]), [bytes.fromhex(h) for h in e["proof"]], bytes.fromhex(cp["root"]))


def test_a_batch_event_after_the_checkpoint_is_counted_in_the_labels_bundle(batch_world):
    """A holder is told a label moved after the checkpoint its bundle proves, by a batch event as by its own."""
    settings, cast, b, log_key = batch_world
    before = bundle_of(settings, cast, "B00030")
    assert before["label_events_after_checkpoint"] == 0
    moved = [f"B{i:05d}" for i in range(30, 33)]
    ledger = Ledger(settings)
    try:
        ship, opening = batches.movement("BatchShipped", [(s, 1, b.step_hashes()[int(s[1:])]) for s in moved], actor="acme",
                                         key=cast.keys["acme"], region="1101", confidential=SHIP)
        assert ledger.append_batch(ship.signed, ship.manifest, opening=opening).status == "accepted"
    finally:
        ledger.close()
    relay_all(settings)  # sequences it and, idle, signs a new checkpoint that covers it
    project_all(settings)
    after = bundle_of(settings, cast, "B00030")
    assert after["checkpoint"]["size"] > before["checkpoint"]["size"]
    assert after["label_events_after_checkpoint"] == 0
    assert [e["kind"] for e in verify_bundle(after, log_key.public_key).events] == ["BatchIssued", "BatchShipped"]
    # Held against the checkpoint the older bundle proved, the label has one newer entry: the batch event.
    with psycopg.connect(settings.pg_conninfo) as conn:
        assert log_queries.count_of_label_from(conn, "B00030", before["checkpoint"]["size"]) == 1
        assert log_queries.count_of_label_from(conn, "B00123", before["checkpoint"]["size"]) == 0  # not in that batch
