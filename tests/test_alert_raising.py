"""Issue 15 item 5 with event.v4: the detector opens each alert with a signed ``AlertRaised``.

On the real stack (PostgreSQL ledger -> relay -> Kafka -> detector -> ledger): the
detector, a registered actor of role ``detector`` with its own key, raises a diversion
alert and signs ``AlertRaised`` naming acme; then the attacks: another producer moving
acme's alert (refused by the ledger, and caught by the auditor from Kafka alone when put
there directly), an ``AlertRaised`` signed by a producer, a detector-signed alert the
detector never raised, a transition before the alert is on the ledger; and the raiser's
crash point (killed between append and mark).
"""

from __future__ import annotations

import uuid

import psycopg

from consumers.alert_raiser import AlertRaiser, raised_event_id
from ledger import alert_owners, gs1
from ledger.events import decode_signed
from ledger.keys import KeyPair
from ledger.store import chain_id
from tests.alerts_world import alerts, detect_all
from tests.audit_world import make_world
from tests.helpers import shipped_payload
from tests.test_alert_transitions import ack, transitions
from tests.test_audit_tamper import failure_at, next_index

BEIJING = "110105"


def with_detector(world, tmp_path):
    """Register a detector actor (its own key, role detector); settings naming its key file."""
    key = KeyPair.generate("detector")
    path = tmp_path / "detector.key"
    key.save(path)
    world.cast.keys["detector"] = key
    reg = world.cast.event("registrar", "actor", "detector", "ActorRegistered",
                           {"role": "detector", "name": "Detector", "public_key": key.public_key, "gtin_prefixes": []})
    assert world.ledger.append([reg])[0].status == "accepted"
    return world.settings.with_(detector_key=path)


def chain_events(world, alert_id: str) -> list:
    stored = world.ledger.app.recorder.select_events(chain_id("alert", alert_id))
    return [decode_signed(*world.ledger.app.signed_parts(s)) for s in stored]


def raised_head(world, alert_id: str) -> tuple[int, bytes]:
    head = world.ledger.heads([("alert", alert_id)])[alert_id]
    return head["seq"], bytes.fromhex(head["hash"])


def test_the_detector_signs_alert_raised_and_only_the_owner_moves_the_alert(fresh_settings, tmp_path):
    world = make_world(fresh_settings, tmp_path, labels=3)
    try:
        settings = with_detector(world, tmp_path)
        cast, serial = world.cast, gs1.new_serial()
        events = [cast.issue(serial), cast.event("acme", "label", serial, "Shipped", shipped_payload("distributor", "4403")),
                  cast.event("gateway", "label", serial, "Scanned", {"channel": "web", "region": BEIJING, "lat": None, "lon": None,
                                                                       "session": "c:one", "place_source": "address"})]
        assert all(r.status == "accepted" for r in world.ledger.append(events))
        world.relay()
        detect_all(settings)
        (alert,) = [a for a in alerts(settings) if a["serial"] == serial]
        alert_id = str(alert["alert_id"])
        assert alert["detail"]["evidence"]["place_source"] == "address"

        # The alert's chain opens with the detector's signature, naming acme; the commitment is to its evidence.
        (first,) = chain_events(world, alert_id)
        e = first.event
        assert (e.kind, e.actor, e.seq, e.event_id) == ("AlertRaised", "detector", 0, raised_event_id(alert["alert_id"]))
        assert (e.payload["producer"], e.payload["alert_kind"], e.payload["serial"], e.payload["severity"]) == ("acme", alert["kind"], serial, alert["severity"])
        assert e.payload["evidence_commitment"] == alert_owners.evidence_commitment(alert["evidence"])
        with psycopg.connect(settings.pg_conninfo) as conn:
            assert conn.execute("SELECT raise_pending, raised_event FROM alert_owners WHERE alert_id = %s",
                                (alert["alert_id"],)).fetchone() == (False, e.event_id)

        # Attacks at the ledger's door: another producer acknowledging acme's alert (naming acme or itself),
        # a producer raising an alert, a detector raising an alert it never raised.
        seq, head = raised_head(world, alert_id)
        forged = [cast.event("other-producer", "alert", alert_id, "AlertAcknowledged",
                             {"alert_kind": alert["kind"], "serial": serial, "producer": who, "note": "mine now"}, seq=seq + 1, prev=head, advance=False)
                  for who in ("acme", "other-producer")]
        refused = world.ledger.append(forged)
        assert [r.status for r in refused] == ["refused", "refused"], refused
        payload = {"alert_kind": "clone_overscan", "producer": "acme", "serial": serial, "severity": "high", "evidence_commitment": bytes(32)}
        by_producer = cast.event("acme", "alert", str(uuid.uuid4()), "AlertRaised", payload, advance=False)
        by_detector = cast.event("detector", "alert", str(uuid.uuid4()), "AlertRaised", payload, advance=False)
        results = world.ledger.append([by_producer, by_detector])
        assert [r.status for r in results] == ["refused", "refused"]
        assert results[1].error.code == "unknown_subject"  # not an alert the detector's read model raised

        # The owner moves it; the detector's read model follows the signed chain.
        owner_ack = cast.event("acme", "alert", alert_id, "AlertAcknowledged",
                               {"alert_kind": alert["kind"], "serial": serial, "producer": "acme", "note": "ours"}, seq=seq + 1, prev=head)
        assert world.ledger.append([owner_ack])[0].status == "accepted"
        world.relay()
        detect_all(settings)
        rows = [t for t in transitions(settings) if str(t["alert_id"]) == alert_id]
        assert [(t["kind"], t["actor"], t["status"]) for t in rows] == [("AlertRaised", "detector", "applied"), ("AlertAcknowledged", "acme", "applied")]
        assert [a["state"] for a in alerts(settings) if a["serial"] == serial] == ["acknowledged"]

        # The auditor, from Kafka alone: another producer's transition put on the topic directly is refused by the chain's rules.
        report = world.audit()
        assert report.ok, [f.line() for f in report.failures]
        seq, head = raised_head(world, alert_id)
        bad = cast.event("other-producer", "alert", alert_id, "AlertResolved", {"resolution": "false_positive", "producer": "other-producer", "note": "gone"},
                         seq=seq + 1, prev=head, advance=False)
        meta = world.produce(settings.label_topic, alert_id.encode(), bad.envelope, [("log_index", str(next_index(world)).encode())])
        report = world.audit()
        f = failure_at(report, meta.partition, meta.offset)
        assert f.event_id == bad.event.event_id and f.code in ("invalid_field", "not_authorized"), f.line()
    finally:
        world.ledger.close()


def test_no_transition_before_the_alert_is_raised_and_a_raise_survives_a_crash(fresh_settings, tmp_path):
    world = make_world(fresh_settings, tmp_path, labels=1)
    try:
        settings = with_detector(world, tmp_path)
        cast, alert_id, serial = world.cast, uuid.uuid4(), world.serials[0]
        with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:  # as the detector registers a new alert
            conn.execute("INSERT INTO alert_owners (alert_id, producer, kind, serial, raise_pending, severity, evidence_commitment) "
                         "VALUES (%s, 'acme', 'diversion_territory', %s, true, 'medium', %s)",
                         (alert_id, serial, alert_owners.evidence_commitment(["e1", "e2"])))
        # Before its AlertRaised nobody opens the chain, not even its owner (it would own the chain unsigned by the detector).
        early = ack(cast, "acme", str(alert_id), serial=serial, advance=False)
        (r,) = world.ledger.append([early])
        assert (r.status, r.error.code) == ("refused", "alert_not_raised_yet")

        raiser = AlertRaiser(world.ledger, KeyPair.load(settings.detector_key), settings.pg_conninfo)
        try:
            assert raiser.raise_once() == 1 and raiser.raise_once() == 0
            # Killed after the append, before the mark: the next round recognises its own event on the chain.
            with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
                conn.execute("UPDATE alert_owners SET raise_pending = true, raised_event = NULL WHERE alert_id = %s", (alert_id,))
            assert raiser.raise_once() == 1
        finally:
            raiser.close()
        events = chain_events(world, str(alert_id))
        assert [(s.event.kind, s.event.actor) for s in events] == [("AlertRaised", "detector")]
        seq, head = raised_head(world, str(alert_id))
        later = cast.event("acme", "alert", str(alert_id), "AlertAcknowledged",
                           {"alert_kind": "diversion_territory", "serial": serial, "producer": "acme", "note": "ours"}, seq=seq + 1, prev=head)
        assert world.ledger.append([later])[0].status == "accepted"
    finally:
        world.ledger.close()
