"""Signed alert transitions through the real API -> ledger -> relay -> Kafka -> detector, and the auditor.

open -> acknowledged -> resolved, each step a signed ledger event of the
alert's producer or a regulator; what the API refuses before appending; what
the detector records but does not apply; a rebuild that gets the same ids and
states; the auditor checking alert chains with the ledger's own rules.
"""

from __future__ import annotations

import uuid

import httpx
import psycopg
from click.testing import CliRunner
from psycopg.rows import dict_row

from ledger.service import Ledger
from tests.alerts_world import TimedCast, detect_all, signed_get
from tests.audit_world import make_world
from tests.pipeline import relay_all
from tests.test_audit_tamper import failure_at, next_index
from traceledger.cli import cli
from traceledger.client import encode_signed


def ack(cast, signer, alert_id, *, producer="acme", kind="diversion_territory", serial=None, advance=True):
    return cast.event(signer, "alert", alert_id, "AlertAcknowledged",
                      {"alert_kind": kind, "serial": serial, "producer": producer, "note": "looking into it"}, advance=advance)


def resolve(cast, signer, alert_id, *, producer="acme", resolution="confirmed", advance=True):
    return cast.event(signer, "alert", alert_id, "AlertResolved", {"resolution": resolution, "producer": producer, "note": "done"}, advance=advance)


def transitions(settings, schema="alerts") -> list[dict]:
    with psycopg.connect(settings.pg_conninfo) as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT alert_id, seq, kind, actor, status, reason FROM {schema}.alert_transitions ORDER BY alert_id, seq").fetchall()


def states(settings, schema="alerts") -> list[tuple]:
    with psycopg.connect(settings.pg_conninfo) as conn:
        return conn.execute(f"SELECT alert_id, dedupe_key, state, resolution, evidence FROM {schema}.alerts ORDER BY alert_id").fetchall()


def raised(settings, alert_id, producer="acme", kind="diversion_territory", serial=None):
    """Register an alert as the detector does when it raises one (the ledger moves only raised alerts)."""
    with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO public.alert_owners (alert_id, producer, kind, serial) VALUES (%s, %s, %s, %s)",
                     (alert_id, producer, kind, serial))


def test_alert_is_acknowledged_and_resolved_by_signed_events(api, tmp_path):
    settings, url = api["settings"], api["url"]
    ledger = Ledger(settings)
    cast = TimedCast()
    try:
        assert all(r.status == "accepted" for r in ledger.append(cast.founding_events()))
        keys = {}
        for actor in ("acme", "other-producer", "regulator"):
            keys[actor] = tmp_path / f"{actor}.key"
            cast.keys[actor].save(keys[actor])
        serial, events = cast.to_retailer()
        assert all(r.status == "accepted" for r in ledger.append(events + [cast.scan(serial, 0, region="310101")]))
        relay_all(settings)
        detect_all(settings)

        def alerts_of(serial):
            r = signed_get(url, cast.keys["regulator"], "/v1/alerts", serial=serial)
            assert r.status_code == 200, r.text
            return r.json()["alerts"]

        (alert,) = alerts_of(serial)
        alert_id = alert["id"]
        assert (alert["kind"], alert["producer"], alert["state"]) == ("diversion_territory", "acme", "open")
        assert str(uuid.UUID(alert_id)) == alert_id

        def post(event, target=alert_id):
            return httpx.post(f"{url}/v1/alerts/{target}/transitions", json=encode_signed(event), timeout=30)

        # Refused before anything is written: resolve before acknowledge, another producer, another alert.
        early = post(resolve(cast, "acme", alert_id, advance=False))
        assert early.status_code == 409 and early.json()["code"] == "unknown_subject", early.text
        other = post(ack(cast, "other-producer", alert_id, producer="other-producer", serial=serial, advance=False))
        assert other.status_code == 400 and other.json()["field"] == "producer", other.text
        posing = post(ack(cast, "other-producer", alert_id, serial=serial, advance=False))
        assert posing.status_code == 403 and posing.json()["code"] == "not_authorized", posing.text
        elsewhere = post(ack(cast, "acme", alert_id, serial=serial, advance=False), target=str(uuid.uuid4()))
        assert elsewhere.status_code == 400 and elsewhere.json()["field"] == "subject"
        wrong_kind = post(ack(cast, "acme", alert_id, serial=serial, kind="clone_overscan", advance=False))
        assert wrong_kind.status_code == 400 and wrong_kind.json()["field"] == "alert_kind"
        assert ledger.heads([("alert", alert_id)])[alert_id] is None

        runner = CliRunner()

        def run(*args):
            return runner.invoke(cli, ["alerts", *args, "--api", url])

        out = run("resolve", alert_id, "--key", str(keys["acme"]), "--resolution", "confirmed", "--note", "too soon")
        assert out.exit_code == 2 and "unknown_subject" in out.output, out.output
        out = run("ack", alert_id, "--key", str(keys["other-producer"]), "--note", "not mine")
        assert out.exit_code == 2 and "[forbidden]" in out.output, out.output

        # The producer acknowledges, a regulator resolves: each a signed event on the alert's chain.
        out = run("ack", alert_id, "--key", str(keys["acme"]), "--note", "sending an inspector")
        assert out.exit_code == 0 and "AlertAcknowledged" in out.output and "accepted" in out.output, out.output
        relay_all(settings)
        detect_all(settings)
        shown = signed_get(url, cast.keys["acme"], f"/v1/alerts/{alert_id}").json()
        assert shown["state"] == "acknowledged" and shown["resolution"] is None
        assert [(t["kind"], t["actor"], t["status"], t["note"]) for t in shown["transitions"]] == [
            ("AlertAcknowledged", "acme", "applied", "sending an inspector")]
        out = run("resolve", alert_id, "--key", str(keys["regulator"]), "--resolution", "confirmed", "--note", "40 fakes seized")
        assert out.exit_code == 0, out.output
        relay_all(settings)
        detect_all(settings)
        shown = signed_get(url, cast.keys["regulator"], f"/v1/alerts/{alert_id}").json()
        assert (shown["state"], shown["resolution"]) == ("resolved", "confirmed")
        assert [t["kind"] for t in shown["transitions"]] == ["AlertAcknowledged", "AlertResolved"]
        out = run("resolve", alert_id, "--key", str(keys["regulator"]), "--resolution", "false_positive", "--note", "again")
        assert out.exit_code == 2 and "invalid_transition" in out.output

        # A detector rebuilt from the topic: the same alert id and state, whichever partition it reads first.
        detect_all(settings, schema="alerts_rebuild")
        assert states(settings, "alerts_rebuild") == states(settings)
        assert transitions(settings, "alerts_rebuild") == transitions(settings)

        # The same incident after resolution opens a new alert.
        assert all(r.status == "accepted" for r in ledger.append([cast.scan(serial, 60, region="310104", session="phone-2")]))
        relay_all(settings)
        detect_all(settings)
        both = alerts_of(serial)
        assert len(both) == 2 and {a["state"] for a in both} == {"open", "resolved"}
        new_id = next(a["id"] for a in both if a["state"] == "open")
        assert new_id != alert_id

        # Straight to POST /v1/events (no endpoint check), the attack of issue 15: another producer
        # acknowledging acme's alert in its own name (it would own the alert's chain: acme and the
        # regulators could never move it), a regulator naming another producer than the alert's,
        # and an alert never raised. The ledger refuses all three: nothing is written.
        stray = str(uuid.uuid4())
        sent = [ack(cast, "other-producer", new_id, producer="other-producer", serial=serial, advance=False),
                ack(cast, "regulator", new_id, producer="other-producer", serial=serial, advance=False),
                ack(cast, "regulator", stray, producer=None, kind="unknown_code", advance=False)]
        answer = httpx.post(f"{url}/v1/events", json={"events": [encode_signed(e) for e in sent]}, timeout=30).json()
        assert answer["accepted"] == 0, answer
        assert [r["code"] for r in answer["results"]] == ["not_authorized", "not_authorized", "unknown_subject"], answer
        assert ledger.heads([("alert", new_id)])[new_id] is None
        # The owner can still acknowledge its alert.
        mine = httpx.post(f"{url}/v1/events", json={"events": [encode_signed(ack(cast, "acme", new_id, serial=serial))]}, timeout=30).json()
        assert mine["accepted"] == 1, mine
        relay_all(settings)
        detector = detect_all(settings)
        assert detector.consumer.quarantined == 0
        assert {a["id"]: a["state"] for a in alerts_of(serial)} == {alert_id: "resolved", new_id: "acknowledged"}
        status = {(str(t["alert_id"]), t["seq"]): t["status"] for t in transitions(settings)}
        assert status == {(alert_id, 0): "applied", (alert_id, 1): "applied", (new_id, 0): "applied"}
    finally:
        ledger.close()


def test_the_auditor_checks_alert_chains_with_the_ledgers_rules(fresh_settings, tmp_path):
    world = make_world(fresh_settings, tmp_path, labels=6)
    try:
        cast, alert_id = world.cast, str(uuid.uuid4())
        raised(world.settings, alert_id)
        results = world.ledger.append([ack(cast, "acme", alert_id), resolve(cast, "acme", alert_id, resolution="false_positive")])
        assert [r.status for r in results] == ["accepted", "accepted"]
        world.relay()
        report = world.audit()
        assert report.ok, [f.line() for f in report.failures]
        state = report.state.replay.states[("alert", alert_id)]
        assert (state.status, state.resolution, state.producer, state.seq) == ("resolved", "false_positive", "acme", 1)
        # A record the ledger would have refused (another producer acknowledging acme's alert),
        # put on Kafka under the next log index: found and located.
        forged_id = str(uuid.uuid4())
        forged = ack(cast, "other-producer", forged_id, advance=False)
        meta = world.produce(world.settings.label_topic, forged_id.encode(), forged.envelope, [("log_index", str(next_index(world)).encode())])
        report = world.audit()
        f = failure_at(report, meta.partition, meta.offset)
        assert f.code == "not_authorized" and f.event_id == forged.event.event_id and f.serial == forged_id
    finally:
        world.ledger.close()
