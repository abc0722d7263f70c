"""Batch ship, receive and recall through the real stack: ledger -> relay -> Kafka ->
projector and auditor; a SIGKILL of the projector mid-movement; the auditor catching a
wrong opening of the sealed fields.
"""

from __future__ import annotations

import psycopg
import pytest

from consumers.projector import build
from ledger import batches
from ledger.batches import Opening
from ledger.record_headers import header
from projections.verification import read_view
from tests.audit_world import THREADS, make_world
from tests.helpers import Cast, gtin, issued_payload
from tests.pipeline import founded_ledger, project_all, relay_all, topic_records
from tests.test_audit_tamper import failure_at, next_index
from tests.test_crash_points import crashed_at

SHIP = {"consignee": "distributor", "territory": "44", "channel": "retail"}


def rows(settings, sql: str, params=()) -> list[tuple]:
    with psycopg.connect(settings.pg_conninfo) as conn:
        return conn.execute(sql, params).fetchall()


def issue(ledger, cast: Cast, serials) -> batches.Batch:
    b = batches.issuance(issued_payload(gtin()), serials, actor="acme", key=cast.keys["acme"])
    assert ledger.append_batch(b.signed, b.manifest).status == "accepted"
    return b


def move(ledger, cast: Cast, kind: str, serials, signer="acme", **kw) -> tuple[batches.Batch, Opening | None]:
    got = ledger.heads([("label", s) for s in serials])
    heads = [(s, got[s]["seq"] + 1, bytes.fromhex(got[s]["hash"])) for s in serials]
    b, opening = batches.movement(kind, heads, actor=signer, key=cast.keys[signer], **kw)
    result = ledger.append_batch(b.signed, b.manifest, opening=opening)
    assert result.status == "accepted", result
    return b, opening


def test_ship_receive_recall_batches_reach_the_read_model_once(settings):
    with founded_ledger(settings, Cast()) as (settings, ledger, cast):
        serials = [f"M{i:05d}" for i in range(400)]
        issue(ledger, cast, serials)
        shipped, opening = move(ledger, cast, "BatchShipped", serials, confidential=SHIP, region="1101")
    relay_all(settings)
    on_kafka = [r for r in topic_records(settings, settings.label_topic) if header(r, "manifest") is not None]
    ship_record = next(r for r in on_kafka if r.key == shipped.signed.event.subject.encode())
    # The signed leaf holds the commitment only; the opening rides in a header of the
    # ACL-guarded topic (platform services and regulators), never in the log's leaf.
    assert b"distributor" not in ship_record.value and Opening.from_bytes(header(ship_record, "opening")) == opening
    project_all(settings)
    with psycopg.connect(settings.pg_conninfo) as conn:
        view = read_view(conn, "M00123")
    assert view["status"] == "in_transit" and [s["kind"] for s in view["trail"]] == ["Issued", "Shipped"]
    (head, territory) = rows(settings, "SELECT head, territory FROM verification.labels WHERE serial = 'M00123'")[0]
    assert bytes(head) == shipped.step_hashes()[123] and territory == "44"

    with _ledger(settings) as ledger:
        move(ledger, cast, "BatchReceived", serials, signer="distributor", region="4403")
        move(ledger, cast, "BatchRecalled", serials[:100], reason="battery fire risk")
    relay_all(settings)
    project_all(settings)
    project_all(settings)  # a second pass changes nothing
    assert rows(settings, "SELECT count(*) FROM verification.quarantine") == [(0,)]
    assert rows(settings, "SELECT count(*) FROM verification.pending") == [(0,)]
    assert rows(settings, "SELECT kind, count(*) FROM verification.events GROUP BY kind ORDER BY kind") == [
        ("Issued", 400), ("Recalled", 100), ("Received", 400), ("Shipped", 400)]
    assert rows(settings, "SELECT status, recalled, custodian, count(*) FROM verification.labels GROUP BY 1, 2, 3 ORDER BY 2") == [
        ("received", False, "distributor", 300), ("received", True, "distributor", 100)]
    with psycopg.connect(settings.pg_conninfo) as conn:
        assert read_view(conn, "M00007")["verdict"] != "genuine"  # recalled
    # A rebuild into another schema from Kafka gives the same rows (parking in any order).
    project_all(settings, schema="verification_again")
    assert rows(settings, "SELECT serial, seq, head, status FROM verification.labels EXCEPT SELECT serial, seq, head, status FROM verification_again.labels") == []


class _ledger:
    def __init__(self, settings):
        from ledger.service import Ledger
        self.ledger = Ledger(settings)

    def __enter__(self):
        return self.ledger

    def __exit__(self, *exc):
        self.ledger.close()


def test_a_projector_killed_mid_movement_applies_it_once(fresh_settings, services, tmp_path):
    settings = fresh_settings(log_key=tmp_path / "log.key")
    with founded_ledger(settings, Cast()) as (settings, ledger, cast):
        serials = [f"K{i:05d}" for i in range(600)]
        issue(ledger, cast, serials)
        relay_all(settings)
        project_all(settings)
        move(ledger, cast, "BatchShipped", serials, confidential=SHIP)
    relay_all(settings)
    # Killed with every label row of the shipment written in its transaction, nothing committed.
    projector = services("consumers.projector", settings.with_(crash_at="projector.batch_staged:1"), name="projector")
    crashed_at(projector, "projector.batch_staged", 1)
    assert rows(settings, "SELECT count(*) FROM verification.batches") == [(1,)]
    assert rows(settings, "SELECT status, count(*) FROM verification.labels GROUP BY 1") == [("issued", 600)]
    resumed = build(settings, group=f"{settings.topic_prefix}resumed")
    try:
        resumed.run(until_idle=True)
    finally:
        resumed.close()
    assert rows(settings, "SELECT count(*) FROM verification.batches") == [(2,)]
    assert rows(settings, "SELECT status, count(*) FROM verification.labels GROUP BY 1") == [("in_transit", 600)]
    assert rows(settings, "SELECT count(*), count(DISTINCT (subject, seq)) FROM verification.events") == [(1200, 1200)]
    assert rows(settings, "SELECT count(*) FROM verification.quarantine") == [(0,)]


@pytest.fixture
def world(fresh_settings, tmp_path):
    w = make_world(fresh_settings, tmp_path, labels=6)
    yield w
    w.ledger.close()


def test_audit_checks_movements_and_catches_a_wrong_opening(world):
    world.auditor_options = THREADS
    serials = [f"W{i:04d}" for i in range(300)]
    issue(world.ledger, world.cast, serials)
    shipped, opening = move(world.ledger, world.cast, "BatchShipped", serials, confidential=SHIP)
    move(world.ledger, world.cast, "BatchReceived", serials, signer="distributor")
    world.relay()
    report = world.audit()
    assert report.ok, [f.line() for f in report.failures]
    # An operator passing a lying opening of the sealed fields to the event topic's readers: a
    # genuinely signed onward shipment (never given to the ledger) whose header names another
    # consignee than the one the distributor sealed.
    got = world.ledger.heads([("label", s) for s in serials])
    onward, opening = batches.movement("BatchShipped", [(s, got[s]["seq"] + 1, bytes.fromhex(got[s]["hash"])) for s in serials],
                                       actor="distributor", key=world.cast.keys["distributor"], confidential={**SHIP, "consignee": "retailer"})
    original = next(r for r in world.records() if r.key == shipped.signed.event.subject.encode())
    lie = Opening(opening.salt, {**opening.fields, "consignee": "other-producer"}).to_bytes()
    m = world.produce(original.topic, onward.signed.event.subject.encode(), onward.signed.envelope,
                      [("log_index", str(next_index(world)).encode()), ("manifest", onward.manifest), ("opening", lie)])
    report = world.audit()
    assert failure_at(report, m.partition, m.offset).code == "wrong_opening"
