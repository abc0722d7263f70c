"""event.v5 TransactionRecorded end to end on real PostgreSQL + Kafka: the ledger accepts it from the
label's producer and its custodian and refuses a stranger (nothing written), the relay puts it on
the log, the auditor replays it clean, the projector does not quarantine it and the label's trail
shows it, its proof bundle verifies offline, and the EPCIS query index answers it as ONE
TransactionEvent, also when its events straddle two indexing batches."""

from __future__ import annotations

import copy

import psycopg
from fastapi.testclient import TestClient

from consumers.auditor import Auditor
from consumers.checkpointer import load_or_create_log_key
from ledger import epcis
from ledger.events import SignedEvent, new_event
from ledger.transparency.bundle import verify_bundle
from projections import epcis_index
from tests.helpers import Cast, append_accepted, shipped_payload
from tests.pipeline import founded_ledger, project_all, relay_all
from tests.test_epcis_cli import schema_validator
from traceledger.api import create_app
from traceledger.auth import authorization_header

PO = [{"type": "po", "value": "urn:epcglobal:cbv:bt:6901234000009:PO-9"}]
SERIALS = [f"TX{i}" for i in range(5)]


def transaction_events(cast: Cast, signer: str, serials: list[str], **payload) -> list[SignedEvent]:
    """One EPCIS TransactionEvent as the capture client signs it: one TransactionRecorded per EPC, one time."""
    body = {"action": "ADD", "biz_transactions": PO, "biz_step": "https://ref.gs1.org/cbv/BizStep-shipping", "disposition": None} | payload
    first = None
    out = []
    for serial in serials:
        seq, head = cast.heads[("label", serial)]
        e = new_event(subject_type="label", subject=serial, kind="TransactionRecorded", payload=body, actor=signer,
                      key_id=cast.keys[signer].key_id, seq=seq + 1, prev_hash=head, occurred_at=first)
        first = first or e.occurred_at
        out.append(e.sign(cast.keys[signer]))
    for s in out:
        cast.heads[("label", s.event.subject)] = (s.event.seq, s.hash)
    return out


def signed(client: TestClient, cast: Cast, actor: str, target: str):
    r = client.get(target, headers={"authorization": authorization_header(cast.keys[actor], "GET", target)})
    assert r.status_code == 200, r.text
    return r.json()


def test_transactions_are_written_relayed_audited_projected_proved_and_queried(fresh_settings, tmp_path):
    settings = fresh_settings(log_key=tmp_path / "log.key", checkpoint_events=5, checkpoint_seconds=3600, relay_batch=10)
    with founded_ledger(settings, Cast()) as (settings, ledger, cast):
        append_accepted(ledger, [cast.issue(s) for s in SERIALS])
        by_producer = transaction_events(cast, "acme", SERIALS)
        append_accepted(ledger, by_producer)
        append_accepted(ledger, [cast.event("acme", "label", "TX0", "Shipped", shipped_payload("distributor")),
                                 cast.event("distributor", "label", "TX0", "Received", {"region": None})])
        by_custodian = transaction_events(cast, "distributor", ["TX0"], action="DELETE", biz_step=None)
        append_accepted(ledger, by_custodian)
        # Attacks: a retailer that never held the labels, another producer binding acme's labels: refused, nothing written.
        for stranger in ("retailer", "other-producer"):
            attacker = copy.copy(cast)  # the same keys; heads it does not advance
            attacker.heads = dict(cast.heads)
            results = ledger.append(transaction_events(attacker, stranger, ["TX1", "TX2"]), atomic=True)
            assert {r.status for r in results} == {"refused"} and results[0].error.code == "not_authorized", stranger
    assert relay_all(settings) > 0
    report = Auditor(settings, load_or_create_log_key(settings.log_key).public_key, state_path=tmp_path / "audit.state").run()
    assert report.ok, [f.line() for f in report.failures]
    assert report.state.replay.states[("label", "TX0")].seq == 4 and report.state.replay.states[("label", "TX0")].custodian == "distributor"
    project_all(settings)
    with psycopg.connect(settings.pg_conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM verification.quarantine").fetchone()[0] == 0
        trail = conn.execute("SELECT kind, actor FROM verification.events WHERE subject = 'TX0' ORDER BY seq").fetchall()
        assert trail == [("Issued", "acme"), ("TransactionRecorded", "acme"), ("Shipped", "acme"), ("Received", "distributor"),
                         ("TransactionRecorded", "distributor")]
        assert conn.execute("SELECT status FROM verification.labels WHERE serial = 'TX1'").fetchone() == ("issued",)

        # The query index, built 3 log entries at a time: the 5-EPC TransactionEvent straddles two batches
        # and is still ONE event naming all five (as the pure export groups it).
        conn.execute("UPDATE epcis_index_position SET next_log_index = 0")
        conn.execute("TRUNCATE epcis_events, epcis_event_epcs, epcis_waiting_children")
        conn.commit()
        while epcis_index.index_next(conn, limit=3):
            pass
        rows = conn.execute("SELECT event_type, action, biz_step, cardinality(members) FROM epcis_events "
                            "WHERE event_type = 'TransactionEvent' ORDER BY log_index").fetchall()
        assert rows == [("TransactionEvent", "ADD", "shipping", 5), ("TransactionEvent", "DELETE", None, 1)]
        assert conn.execute("SELECT count(*) FROM epcis_event_epcs x JOIN epcis_events e USING (log_index) "
                            "WHERE e.event_type = 'TransactionEvent' AND x.role = 'epc'").fetchone()[0] == 6

    with TestClient(create_app(settings)) as client:
        doc = signed(client, cast, "acme", "/epcis/events?eventType=TransactionEvent")
        events = doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        assert not list(schema_validator().iter_errors(doc))
        assert [(e["action"], len(e["epcList"]), e.get("bizStep")) for e in events] == [
            ("ADD", 5, "https://ref.gs1.org/cbv/BizStep-shipping"), ("DELETE", 1, None)]
        assert events[0]["bizTransactionList"] == [{"type": "po", "bizTransaction": PO[0]["value"]}]
        assert epcis.group_events(by_producer) == [by_producer]
        # EQ_bizStep compares the bare word with what was written as a URI; MATCH_epc finds the event by its 4th EPC.
        assert len(signed(client, cast, "acme", "/epcis/events?EQ_bizStep=shipping&eventType=TransactionEvent")
                   ["epcisBody"]["queryResults"]["resultsBody"]["eventList"]) == 1
        epc = events[0]["epcList"][3]
        found = signed(client, cast, "acme", f"/epcis/events?MATCH_epc={epc}&eventType=TransactionEvent")
        assert [e["eventID"] for e in found["epcisBody"]["queryResults"]["resultsBody"]["eventList"]] == [events[0]["eventID"]]
        target = "/v1/labels/TX0/proof"
        bundle = client.get(target, headers={"authorization": authorization_header(cast.keys["acme"], "GET", target)}).json()
    result = verify_bundle(bundle, load_or_create_log_key(settings.log_key).public_key, origin=settings.log_origin)
    assert [e["kind"] for e in result.events if e["subject"] == "TX0"] == ["Issued", "TransactionRecorded", "Shipped", "Received", "TransactionRecorded"]
