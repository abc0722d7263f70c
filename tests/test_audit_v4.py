"""event.v4 kinds end to end on real PostgreSQL + Kafka: the ledger accepts them, the relay
puts them on the log, the auditor replays them clean and the projector does not quarantine them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg

from consumers.auditor import Auditor
from consumers.checkpointer import load_or_create_log_key
from ledger import gs1
from ledger.service import Ledger
from tests.helpers import append_accepted, gtin, issued_payload, scanned_payload, shipped_payload
from tests.pipeline import project_all, relay_all
from tests.test_lifecycle_certificates import CERT, CertCast, described, issue_cert, profile
from tests.test_lifecycle_v4 import encode_as


class V4Cast(CertCast):
    ROLES = {**CertCast.ROLES, "detector": ("detector", [])}


def test_v4_kinds_are_written_relayed_audited_and_projected(fresh_settings, tmp_path):
    settings = fresh_settings(log_key=tmp_path / "log.key", checkpoint_events=10, checkpoint_seconds=3600, relay_batch=10)
    ledger = Ledger(settings)
    try:
        cast = V4Cast()
        append_accepted(ledger, cast.founding_events())
        serial, old = gs1.new_serial(), gs1.new_serial()
        # v3- and v2-encoded label events among v4 ones (history written before v4)
        append_accepted(ledger, [encode_as(3, cast, "acme", "label", old, "Issued", issued_payload())])
        append_accepted(ledger, [encode_as(2, cast, "gateway", "label", old, "Scanned", scanned_payload())])
        append_accepted(ledger, [
            issue_cert(cast),
            cast.event("acme", "product", gtin(), "ProductDescribed", described()),
            cast.event("acme", "label", serial, "Issued", issued_payload() | {"certificates": [CERT], "production_date": "2026-01-05"}),
            cast.event("gateway", "label", serial, "Scanned", scanned_payload() | {"place_source": "address", "claimed_region": "110101"}),
            cast.event("acme", "label", serial, "Recalled", {"reason": "cells overheat", "remedy": "replace", "hotline": "400-123-4567",
                                                            "notice_url": "https://www.samr.gov.cn/recall/1", "recall_id": "SAMR-2026-001"}),
            cast.event("cqc", "certificate", CERT, "CertificateSuspended", {"reason": "audit", "until": None}),
            cast.event("acme", "actor", "acme", "ActorProfileChanged", profile()),
            # issue 19's EPCIS fields and kinds
            cast.event("acme", "label", old, "Shipped", shipped_payload("distributor") | {
                "biz_transactions": [{"type": "desadv", "value": "D-77"}], "read_point": "urn:epc:id:sgln:6901234.00001.0",
                "destinations": [{"type": "location", "value": "urn:epc:id:sgln:6901234.00002.0"}], "sensor_data": b"[]",
                "epcis_event_id": "urn:uuid:6f2c0c4e-0000-4000-8000-000000000001"}),
            cast.event("distributor", "label", old, "Received", {"region": None}),
            associated := cast.event("distributor", "label", old, "Associated", {"parent": "urn:epc:id:giai:6901234.E-BIKE-1"}),
            cast.event("regulator", "label", old, "Retracted", {"event_id": associated.event.event_id, "reason": "did_not_occur"}),
        ])
        # refused at the write door with nothing written: a label linking an unknown certificate, a second issue
        refused = ledger.append([cast.event("acme", "label", gs1.new_serial(), "Issued", issued_payload() | {"certificates": ["CCC/404"]}, advance=False),
                                 cast.issue(serial, advance=False)])
        assert [(r.status, r.error.code) for r in refused] == [("refused", "unknown_subject"), ("refused", "label_exists")]
        since = datetime.now(timezone.utc) - timedelta(minutes=5)
        append_accepted(ledger, [cast.event("regulator", "actor", "acme", "ActorKeyCompromised",
                                            {"key_id": cast.keys["acme"].key_id, "since": since, "reason": "leaked"})])
        after = ledger.append([cast.issue(gs1.new_serial(), advance=False)])
        assert after[0].error.code == "compromised_key"
    finally:
        ledger.close()
    assert relay_all(settings) > 0
    report = Auditor(settings, load_or_create_log_key(settings.log_key).public_key, state_path=tmp_path / "audit.state").run()
    assert report.ok, [f.line() for f in report.failures]
    assert report.state.replay.registry.as_of("acme").compromised_since(cast.keys["acme"].key_id) == since
    assert report.state.replay.states[("certificate", CERT)].status == "suspended"
    assert report.state.replay.states[("label", old)].seq == 5
    project_all(settings)
    with psycopg.connect(settings.pg_conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM verification.quarantine").fetchone()[0] == 0
        assert conn.execute("SELECT recalled FROM verification.labels WHERE serial = %s", (serial,)).fetchone() == (True,)
