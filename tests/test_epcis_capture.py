"""Standard EPCIS 2.0 capture with client-side signing, through the CLI and the real API (Kafka-free: the
capture path is PostgreSQL only): GS1's published example documents captured signed by an actor registered
with their company prefixes, each event accepted or refused with its reason; exports of what was captured
validate against GS1's schema; and the attacks: prefixes the signer does not own, replayed documents and
events, other actors' events, huge and malformed documents, each refused with a clear reason, nothing written."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import httpx
import psycopg
import pytest
from click.testing import CliRunner

from ledger import batches, epcis
from ledger.batches import LabelStep, encode_manifest, issuance
from ledger.epcis_capture import MAX_EPCIS_EVENTS, Defaults, map_document, parse_epc, read_document
from ledger.events import SignedEvent, new_event, payload_defaults
from ledger.keys import KeyPair
from tests.helpers import Cast, issued_payload
from tests.pipeline import relay_all
from tests.test_demo_e2e import cli
from tests.test_epcis_cli import post, schema_validator
from traceledger.auth import authorization_header
from traceledger.cli import cli as cli_main
from traceledger.client import Client

GS1 = Path(__file__).parent / "data" / "epcis" / "gs1"
GS1_PREFIXES = ["0614141", "4012345", "9520001", "4000001"]
CONTEXT = ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"]
SHIP = ("--territory", "44", "--channel", "offline_retail", "--consignee", "distributor")


def document(*events) -> dict:
    return {"@context": CONTEXT, "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2025-01-01T00:00:00Z",
            "epcisBody": {"eventList": list(events)}}


def commissioning(epcs, event_id, lot="L2005", **extra) -> dict:
    event = {"type": "ObjectEvent", "eventID": event_id, "eventTime": "2005-04-01T10:00:00Z", "eventTimeZoneOffset": "+00:00",
             "epcList": epcs, "action": "ADD", "bizStep": "commissioning", "disposition": "active", **extra}
    if lot:
        event["ilmd"] = {"cbvmda:lotNumber": lot}
    return event


@pytest.fixture
def world(api, tmp_path):
    """The cast registered, plus ``gs1co``: a producer owning the GS1 examples' company prefixes."""
    url, cast, settings = api["url"], api["cast"], api["settings"]
    cast.keys["gs1co"] = KeyPair.generate("gs1co")
    registration = cast.event("registrar", "actor", "gs1co", "ActorRegistered", {
        "role": "producer", "name": "GS1 example company", "public_key": cast.keys["gs1co"].public_key, "gtin_prefixes": GS1_PREFIXES})
    assert post(url, cast.founding_events() + [registration])["refused"] == 0
    keys = {}
    for actor in ("gs1co", "acme", "distributor", "regulator"):
        keys[actor] = str(tmp_path / f"{actor}.key")
        cast.keys[actor].save(keys[actor])
    return {"url": url, "cast": cast, "settings": settings, "keys": keys, "tmp": tmp_path}


def capture(world, path, actor="gs1co", *options, code=None, subprocess=False) -> tuple[int, dict, str]:
    """``traceledger --json epcis capture PATH --key`` in this process (a subprocess costs seconds of imports), or as one."""
    args = ["--json", "epcis", "capture", str(path), "--key", world["keys"][actor], *options]
    if subprocess:
        proc = cli(world["settings"], *args, check=False)
        returncode, stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    else:
        env = {k: v for k, v in os.environ.items() if k.startswith("TRACELEDGER_")}
        env = {k: None for k in env} | world["settings"].to_env()
        result = CliRunner().invoke(cli_main, args, env=env)
        returncode, stdout, stderr = result.exit_code, result.stdout, result.stderr
    if code is not None:
        assert returncode == code, stderr[-2000:]
    return returncode, json.loads(stdout.splitlines()[-1]), stderr


def write(world, name: str, doc) -> Path:
    path = world["tmp"] / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def statuses(job: dict) -> list[tuple[str, str | None]]:
    return [(r["status"], r.get("code")) for r in job["results"]]


def ledger_size(world) -> int:
    with psycopg.connect(world["settings"].pg_conninfo) as conn:
        return conn.execute("SELECT count(*) FROM ledger_events").fetchone()[0]


def signed_get(world, actor: str, path: str) -> httpx.Response:
    key = world["cast"].keys[actor]
    return httpx.get(world["url"] + path, headers={"authorization": authorization_header(key, "GET", path)}, timeout=30)


def example_event(name: str, index: int) -> dict:
    return json.loads((GS1 / name).read_text())["epcisBody"]["eventList"][index]


def test_standard_capture_on_the_real_api(world):
    """One API for every part (starting one costs more than the checks): GS1's examples, replays, attacks."""
    gs1_examples(world)
    replayed_document(world)
    attacks(world)
    association_and_retraction(world)


def association_and_retraction(world):
    """event.v4: an AssociationEvent and an error declaration of it are captured and signed as the ledger's own."""
    label = "urn:epc:id:sgtin:0614141.107346.ASSOC1"
    associate = {"type": "AssociationEvent", "eventID": "urn:uuid:7d6c6a4e-0000-4000-8000-0000000000b2", "eventTime": "2019-11-01T13:00:00Z",
                 "eventTimeZoneOffset": "+00:00", "parentID": "urn:epc:id:grai:4012345.55555.987", "childEPCs": [label],
                 "action": "ADD", "bizStep": "assembling", "readPoint": {"id": "urn:epc:id:sgln:4012345.00001.0"}}
    retract = associate | {"errorDeclaration": {"declarationTime": "2019-11-02T00:00:00Z", "reason": "did_not_occur"}}
    before = ledger_size(world)
    doc = document(commissioning([label], "urn:uuid:7d6c6a4e-0000-4000-8000-0000000000b1"), associate, retract)
    _, job, _ = capture(world, write(world, "assoc.jsonld", doc), "gs1co", code=0)
    assert statuses(job) == [("accepted", None)] * 3 and ledger_size(world) == before + 3
    relay_all(world["settings"])
    events = signed_get(world, "gs1co", "/v1/epcis/events?serial=ASSOC1").json()["epcisBody"]["eventList"]
    assert [(e["type"], e.get("action"), "errorDeclaration" in e) for e in events] == [
        ("ObjectEvent", "ADD", False), ("AssociationEvent", "ADD", False), ("AssociationEvent", "ADD", True)]
    assert events[1]["parentID"] == associate["parentID"] and events[1]["tl:epcisEventID"] == associate["eventID"]
    assert events[2]["eventID"] == events[1]["eventID"] and events[2]["errorDeclaration"] == {
        "declarationTime": "2019-11-02T00:00:00.000000Z", "reason": "did_not_occur"}
    declarations(world, label, associate)


def declarations(world, label: str, associate: dict) -> None:
    """An error declaration whose corrective event is a partner's eventID captured in an earlier document resolves
    to that event's ledger id; one for someone else's event is refused with its reason, nothing written."""
    second = associate | {"eventID": "urn:uuid:7d6c6a4e-0000-4000-8000-0000000000c1", "parentID": "urn:epc:id:grai:4012345.55555.988"}
    fix = second | {"eventID": "ni:///sha-256;fix-c1?ver=CBV2.0", "action": "DELETE", "bizStep": "disassembling"}
    _, job, _ = capture(world, write(world, "assoc2.jsonld", document(second, fix)), "gs1co", code=0)
    fix_ids = job["results"][1]["ledgerEvents"]
    declare = second | {"errorDeclaration": {"declarationTime": "2019-11-03T00:00:00Z", "reason": "incorrect_data",
                                             "correctiveEventIDs": [fix["eventID"]]}}
    path = write(world, "declare.jsonld", document(declare))
    before = ledger_size(world)
    # Someone else (the label is gs1co's) declaring gs1co's event: no such event of theirs; the corrective eventID
    # is not theirs either (the lookup answers each actor about its own captures only).
    _, job, _ = capture(world, path, "acme", code=2)
    assert statuses(job) == [("refused", "unknown_event")] and "captured by another actor, or never" in job["results"][0]["detail"]
    lookup = "/v1/epcis/capture/events"
    body = {"eventIDs": [fix["eventID"], "urn:uuid:never"]}
    for actor, found in (("acme", {}), ("gs1co", {fix["eventID"]: fix_ids}), ("regulator", {fix["eventID"]: fix_ids})):
        answer = httpx.post(world["url"] + lookup, json=body, timeout=30,
                            headers={"authorization": authorization_header(world["cast"].keys[actor], "POST", lookup)})
        assert answer.status_code == 200 and answer.json()["events"] == found, (actor, answer.text)
    # Signed by hand with gs1co's real event id: the capture door sees the event is gs1co's.
    cast: Cast = world["cast"]
    shown = signed_get(world, "gs1co", "/v1/epcis/events?serial=ASSOC1").json()["epcisBody"]["eventList"]
    target = shown[-1]["tl:event"]
    with Client(world["url"], settings=world["settings"]) as client:
        head = client.heads("label", ["ASSOC1"])["ASSOC1"]
    forged = new_event(subject_type="label", subject="ASSOC1", kind="Retracted", actor="regulator", key_id=cast.keys["regulator"].key_id,
                       payload={"event_id": shown[-1]["eventID"][9:], "reason": "did_not_occur"}, seq=head["seq"] + 1,
                       prev_hash=bytes.fromhex(head["hash"])).sign(cast.keys["regulator"])
    assert target["actor"] == "gs1co"
    entry = {"index": 0, "eventKey": "errorDeclaration:by-hand", "signed": [{"body": base64.b64encode(forged.body).decode(),
                                                                             "signature": base64.b64encode(forged.signature).decode()}]}
    as_acme = replace_actor(forged, cast, "acme")
    acme_entry = entry | {"eventKey": "errorDeclaration:by-acme", "signed": [{"body": base64.b64encode(as_acme.body).decode(),
                                                                              "signature": base64.b64encode(as_acme.signature).decode()}]}
    answer = httpx.post(world["url"] + "/v1/epcis/capture/signed", json={"documentSha256": "3" * 64, "events": [acme_entry]}, timeout=30,
                        headers={"authorization": authorization_header(cast.keys["acme"], "POST", "/v1/epcis/capture/signed")})
    assert statuses(answer.json()) == [("refused", "not_authorized")] and "signed by gs1co" in answer.json()["results"][0]["detail"]
    # The same declaration in a document of signed events (POST /v1/epcis/capture, as another ledger exports it).
    carried = shown[-1].get("tl:declares") or shown[-1]["tl:signedEvents"][0]  # the event shown[-1] is about
    declared = SignedEvent.from_parts(base64.b64decode(carried["body"]), base64.b64decode(carried["signature"]))
    gtin = parse_epc(label)[2]
    exported = epcis.export([as_acme], lambda _: gtin, world["settings"].resolver_host, declared={declared.event.event_id: declared})
    assert exported["epcisBody"]["eventList"][0]["errorDeclaration"]
    answer = httpx.post(world["url"] + "/v1/epcis/capture", json=exported, timeout=30)
    assert answer.status_code == 400 and "signed by gs1co" in answer.json()["detail"], answer.text
    assert ledger_size(world) == before
    # A regulator may declare anyone's event in error.
    answer = httpx.post(world["url"] + "/v1/epcis/capture/signed", json={"documentSha256": "4" * 64, "events": [entry]}, timeout=30,
                        headers={"authorization": authorization_header(cast.keys["regulator"], "POST", "/v1/epcis/capture/signed")})
    assert statuses(answer.json()) == [("accepted", None)]
    # The producer's own declaration, its corrective event resolved through the lookup to what it was captured as.
    _, job, _ = capture(world, path, "gs1co", code=0)
    assert statuses(job) == [("accepted", None)]
    relay_all(world["settings"])
    corrected = signed_get(world, "gs1co", "/v1/epcis/events?serial=ASSOC1").json()["epcisBody"]["eventList"][-1]
    assert corrected["tl:event"]["kind"] == "Corrected" and corrected["tl:epcisEventID"] == second["eventID"]
    assert corrected["errorDeclaration"]["correctiveEventIDs"] == [f"urn:uuid:{i}" for i in fix_ids]
    # The query index has it too, findable by the declaration's own ledger id.
    one = signed_get(world, "gs1co", f"/epcis/events/{corrected['tl:declarationID']}")
    assert one.status_code == 200 and one.json()["errorDeclaration"] == corrected["errorDeclaration"]


def replace_actor(signed, cast: Cast, actor: str):
    """The same event signed by another actor."""
    e = signed.event
    return new_event(subject_type=e.subject_type, subject=e.subject, kind=e.kind, payload=e.payload, actor=actor,
                     key_id=cast.keys[actor].key_id, seq=e.seq, prev_hash=e.prev_hash).sign(cast.keys[actor])


def gs1_examples(world):
    before = ledger_size(world)
    # Commission the examples' two SGTINs (a standard document of our own: GS1's examples commission none).
    mine = write(world, "commission.jsonld", document(
        commissioning(["urn:epc:id:sgtin:0614141.107346.2017", "urn:epc:id:sgtin:0614141.107346.2018"], "urn:uuid:7d6c6a4e-0000-4000-8000-000000000001"),
        commissioning(["urn:epc:id:sgtin:6909876.000001.X1"], "urn:uuid:7d6c6a4e-0000-4000-8000-000000000002"),  # other-producer's prefix
        commissioning(["urn:epc:id:sgtin:0614141.107346.N0LOT"], "urn:uuid:7d6c6a4e-0000-4000-8000-000000000003", lot=None)))
    _, job, stderr = capture(world, mine, "gs1co", code=2, subprocess=True)
    assert statuses(job) == [("accepted", None), ("refused", "not_authorized"), ("refused", "missing_field")]
    assert "outside gs1co's GS1 company prefixes" in job["results"][1]["detail"] and "refused: event 1" in stderr
    assert job["running"] is False and job["success"] is False and job["actor"] == "gs1co"
    assert ledger_size(world) == before + 1  # ONE BatchIssued for both labels, nothing of the refused events
    assert len(job["results"][0]["ledgerEvents"]) == 1

    # GS1 example 9.6.1: the shipping is accepted (consignee, territory and channel given: EPCIS has no field for the
    # last two); its receiving is the consignee's to sign, so the lifecycle refuses it for the shipper.
    _, job, _ = capture(world, GS1 / "Example_9.6.1-ObjectEvent.jsonld", "gs1co", *SHIP, code=2)
    assert statuses(job) == [("accepted", None), ("refused", "not_authorized")]
    assert "only the consignee (distributor)" in job["results"][1]["detail"]
    assert "ignored" not in job["results"][0]  # event.v4 keeps its bizTransactionList, readPoint SGLN and eventID
    # The same example with Digital Link EPCs names GTIN 70614141123451 for serials issued as another GTIN.
    _, job, _ = capture(world, GS1 / "Example_9.6.1-ObjectEventWithDigitalLink.jsonld", "gs1co", *SHIP, code=2)
    assert statuses(job) == [("refused", "gtin_mismatch"), ("refused", "gtin_mismatch")]
    # The consignee captures the same document: the shipping is a replay of gs1co's, and the receiving, which the
    # client chained on that shipping, says so; alone in a document of its own, the receiving is accepted.
    _, job, _ = capture(world, GS1 / "Example_9.6.1-ObjectEvent.jsonld", "distributor", *SHIP, code=2)
    assert statuses(job) == [("refused", "replayed_event"), ("refused", "follows_refused")]
    assert job["results"][1]["detail"] == "signed on top of event 0 of this document, which was refused"
    example = json.loads((GS1 / "Example_9.6.1-ObjectEvent.jsonld").read_text())
    example["epcisBody"]["eventList"] = example["epcisBody"]["eventList"][1:]
    _, job, _ = capture(world, write(world, "receiving.jsonld", example), "distributor", code=0)
    assert statuses(job) == [("accepted", None)]

    # Every other example: each event accepted or refused, with a reason.
    expected = {
        "AssociationEvent-a.jsonld": [("refused", "unsupported_epc")],  # captured since event.v4, but its child is a GIAI
        # captured since event.v5, but they name a GSRN and a GIAI (the ledger holds labels and containers)
        "Example-TransactionEvents-2020_07_03y.jsonld": [("refused", "unsupported_epc")] * 2,
        "Example_9.6.2-ObjectEvent.jsonld": [("refused", "not_captured")],
        "Example_9.6.3-AggregationEvent.jsonld": [("refused", "unknown_subject")],
        "Example_9.6.4-TransformationEvent.jsonld": [("refused", "not_captured")],
        "PersistentDisposition-example.jsonld": [("refused", "unknown_subject"), ("refused", "not_captured")],
        # Its declaration maps since event.v5 (a corrective event held elsewhere is kept by its eventID), but it declares
        # eventID ni:...aa49..., which 9.6.1's shipping (ni:...df7b...) is not: the capture door finds no such event of
        # gs1co's on the labels' chains. The receiving after it is chained on that refused declaration.
        "Example_9.6.1-ObjectEvent-with-error-declaration.jsonld": [("refused", "unknown_event"), ("refused", "follows_refused")],
    }
    for name, wanted in expected.items():
        _, job, _ = capture(world, GS1 / name, "gs1co", *SHIP, code=2)
        assert statuses(job) == wanted, name
        assert all(r["detail"] for r in job["results"]), name

    # What was captured exports as EPCIS 2.0 valid against GS1's schema, in the order it happened.
    relay_all(world["settings"])
    doc = signed_get(world, "gs1co", "/v1/epcis/events?serial=2018").json()
    assert not list(schema_validator().iter_errors(doc))
    assert [e["bizStep"] for e in doc["epcisBody"]["eventList"]] == ["commissioning", "shipping", "receiving"]
    assert doc["epcisBody"]["eventList"][0]["ilmd"]["cbvmda:lotNumber"] == "L2005"
    issued = doc["epcisBody"]["eventList"][0]
    assert issued["tl:event"]["kind"] == "BatchIssued" and issued["action"] == "ADD"
    assert [e.rsplit("/", 1)[1] for e in issued["epcList"]] == ["2017", "2018"]
    shipping, sent = doc["epcisBody"]["eventList"][1], example_event("Example_9.6.1-ObjectEvent.jsonld", 0)
    assert shipping["readPoint"] == sent["readPoint"] and shipping["bizTransactionList"] == sent["bizTransactionList"]
    assert shipping["tl:epcisEventID"] == sent["eventID"]

    # Jobs: an actor lists its own, a regulator all; a job is shown to its actor and regulators only.
    own = signed_get(world, "distributor", "/v1/epcis/capture").json()
    assert {j["actor"] for j in own} == {"distributor"} and len(own) == 2
    everything = signed_get(world, "regulator", "/v1/epcis/capture").json()
    assert len(everything) == 12 and everything[0]["captureID"] != own[0]["captureID"]
    gs1_job = next(j for j in everything if j["actor"] == "gs1co")["captureID"]
    assert signed_get(world, "distributor", f"/v1/epcis/capture/{gs1_job}").status_code == 403
    assert httpx.get(f"{world['url']}/v1/epcis/capture/{gs1_job}", timeout=30).status_code == 401
    assert signed_get(world, "gs1co", f"/v1/epcis/capture/{gs1_job}").json()["results"]


def replayed_document(world):
    path = write(world, "one.jsonld", document(commissioning(["urn:epc:id:sgtin:4012345.011111.R1"], "urn:uuid:7d6c6a4e-0000-4000-8000-0000000000a1")))
    _, job, _ = capture(world, path, "gs1co", code=0)
    assert statuses(job) == [("accepted", None)]
    before = ledger_size(world)
    code, out, stderr = capture(world, path, "gs1co")
    assert code == 2 and "replayed document" in stderr and out["error"]["code"] == "epcisexception_validationexception"
    assert ledger_size(world) == before
    # Rewritten bytes (another document) with the same commissioning: refused, the label is not issued again
    # (the server's eventID check, replayed_event, is met by events the client can sign: gs1_examples).
    again = write(world, "again.jsonld", json.dumps(json.loads(path.read_text()), indent=1))
    _, job, _ = capture(world, again, "gs1co", code=2)
    assert statuses(job) == [("refused", "already_exists")] and ledger_size(world) == before

    # Crash recovery. A job whose API process died reserved event 1 of document X and never appended it (made here in
    # the database: the job captured event 0 alone, then "died"). Ten minutes on, the job reads interrupted, X can be
    # captured again, its event 0 is not issued twice and its event 1 is taken over and appended.
    r2 = commissioning(["urn:epc:id:sgtin:4012345.011111.R2"], "urn:uuid:7d6c6a4e-0000-4000-8000-0000000000a2")
    r3 = commissioning(["urn:epc:id:sgtin:4012345.011111.R3"], "urn:uuid:7d6c6a4e-0000-4000-8000-0000000000a3")
    x = write(world, "x.jsonld", document(r2, r3))
    _, crashed, _ = capture(world, write(world, "x0.jsonld", document(r2)), "gs1co", code=0)
    with psycopg.connect(world["settings"].pg_conninfo, autocommit=True) as conn:
        conn.execute("UPDATE epcis_captures SET finished_at = NULL, results = NULL, document_sha256 = %s, "
                     "created_at = now() - interval '11 minutes' WHERE capture_id = %s",
                     (hashlib.sha256(x.read_bytes()).hexdigest(), crashed["captureID"]))
        conn.execute("INSERT INTO epcis_captured_events VALUES (%s, %s, 1)", (r3["eventID"], crashed["captureID"]))
    shown = signed_get(world, "gs1co", f"/v1/epcis/capture/{crashed['captureID']}").json()
    assert shown["running"] is False and shown["interrupted"] is True
    before = ledger_size(world)
    _, job, _ = capture(world, x, "gs1co", code=2)
    assert statuses(job) == [("refused", "already_exists"), ("accepted", None)] and ledger_size(world) == before + 1


def attacks(world):
    before = ledger_size(world)
    jobs = len(signed_get(world, "regulator", "/v1/epcis/capture").json())
    sgtin = ["urn:epc:id:sgtin:4012345.011111.A1"]
    good = commissioning(sgtin, "urn:uuid:7d6c6a4e-0000-4000-8000-0000000000b1")
    cases = {
        "not JSON": ("{not json", "document is not JSON"),
        "no EPCIS context": (json.dumps(document(good) | {"@context": ["https://example.com/ctx.jsonld"]}), "@context must name"),
        "not a document": (json.dumps({**document(good), "type": "EPCISQueryDocument"}), "not an EPCISDocument"),
        "schema": (json.dumps(document({k: v for k, v in good.items() if k != "eventTime"})), "eventTime"),
        "deep": (json.dumps(document(good | {"x:deep": json.loads("[" * 200 + "]" * 200)})), "nests deeper"),
        "too many events": (json.dumps(document(*[good] * (MAX_EPCIS_EVENTS + 1))), "at most"),
        "empty": (json.dumps(document()), "nothing to capture"),
    }
    for name, (text, reason) in cases.items():
        code, out, stderr = capture(world, write(world, f"{name}.jsonld", text), "gs1co")
        assert code == 2 and reason in stderr, (name, stderr)
    huge = world["tmp"] / "huge.jsonld"
    huge.write_bytes(b" " * (9 * 1024 * 1024))
    code, _, stderr = capture(world, huge, "gs1co")
    assert code == 2 and "CaptureLimitExceededException" in stderr
    assert ledger_size(world) == before
    assert len(signed_get(world, "regulator", "/v1/epcis/capture").json()) == jobs  # no job for a document refused whole

    # Straight to the API: unsigned; another actor's events in the caller's capture; a malformed entry.
    cast: Cast = world["cast"]
    acme_event = cast.issue("FORGED1")
    entry = {"index": 0, "eventKey": "urn:uuid:x", "signed": [{"body": base64.b64encode(acme_event.body).decode(),
                                                               "signature": base64.b64encode(acme_event.signature).decode()}]}
    body = {"documentSha256": "0" * 64, "events": [entry]}
    assert httpx.post(f"{world['url']}/v1/epcis/capture/signed", json=body, timeout=30).status_code == 401
    path = "/v1/epcis/capture/signed"
    as_gs1 = {"authorization": authorization_header(cast.keys["gs1co"], "POST", path)}
    answer = httpx.post(world["url"] + path, json=body, headers=as_gs1, timeout=30)
    assert answer.status_code == 400 and "signed by acme, not by the caller gs1co" in answer.json()["detail"]
    both = body | {"events": [entry | {"refused": {"code": "x", "detail": "y"}}]}
    as_acme = {"authorization": authorization_header(cast.keys["acme"], "POST", path)}
    assert httpx.post(world["url"] + path, json=both, headers=as_acme, timeout=30).status_code == 400
    as_acme = {"authorization": authorization_header(cast.keys["acme"], "POST", path), "content-type": "application/json"}
    deep = httpx.post(world["url"] + path, content=b"[" * 100_000 + b"]" * 100_000, headers=as_acme, timeout=30)
    assert deep.status_code in (400, 422) and deep.headers["content-type"].startswith("application/problem+json"), deep.text[:300]
    assert ledger_size(world) == before

    # A batch event whose manifest lists other labels than the root it signed: refused, nothing written;
    # a manifest beside a single event: the request is refused whole.
    batch = issuance({"gtin": "04012345111118", "lot": "L1", "product": "p"}, ["B1", "B2"], actor="gs1co", key=cast.keys["gs1co"])
    other = encode_manifest([LabelStep("B1"), LabelStep("B3")])
    forged = {"index": 0, "eventKey": "urn:uuid:forged-batch", "manifest": base64.b64encode(other).decode(),
              "signed": [{"body": base64.b64encode(batch.signed.body).decode(), "signature": base64.b64encode(batch.signed.signature).decode()}]}
    answer = httpx.post(world["url"] + path, json={"documentSha256": "1" * 64, "events": [forged]}, timeout=30,
                        headers={"authorization": authorization_header(cast.keys["gs1co"], "POST", path)})
    assert answer.status_code == 202 and statuses(answer.json()) == [("refused", "manifest_mismatch")], answer.text
    stray = {"documentSha256": "2" * 64, "events": [entry | {"manifest": base64.b64encode(other).decode()}]}
    answer = httpx.post(world["url"] + path, json=stray, timeout=30, headers={"authorization": authorization_header(cast.keys["acme"], "POST", path)})
    assert answer.status_code == 400 and "manifest" in answer.json()["detail"]
    assert ledger_size(world) == before


def test_mapping_of_the_standard_without_the_api():
    """The pure mapping: CBV URI forms, SSCC/LGTIN identifiers, packing, lot transformation, recall."""
    doc = read_document(json.dumps(document(
        {"type": "AggregationEvent", "eventTime": "2024-01-01T00:00:00Z", "eventTimeZoneOffset": "+00:00", "action": "ADD",
         "bizStep": "https://ref.gs1.org/cbv/BizStep-packing", "parentID": "urn:epc:id:sscc:0614141.1234567890",
         "childEPCs": ["https://id.gs1.org/01/70614141123451/21/2017"]},
        {"type": "TransformationEvent", "eventTime": "2024-01-01T00:00:00Z", "eventTimeZoneOffset": "+00:00",
         "inputQuantityList": [{"epcClass": "urn:epc:class:lgtin:4012345.011111.4444"}],
         "outputQuantityList": [{"epcClass": "https://id.gs1.org/01/04012345111118/10/OUT1"}]},
        {"type": "ObjectEvent", "eventTime": "2024-01-01T00:00:00Z", "eventTimeZoneOffset": "+00:00", "action": "OBSERVE",
         "bizStep": "holding", "disposition": "recalled", "quantityList": [{"epcClass": "urn:epc:class:lgtin:4012345.011111.4444"}]},
    )).encode())
    packed, transformed, recalled = map_document(doc, "gs1co", Defaults())
    assert [(c.kind, c.subject) for c in packed.commands] == [("Packed", "106141412345678908"), ("PackedInto", "2017")]
    assert packed.gtins == {"2017": "70614141123451"}
    assert [(c.kind, c.subject, c.payload["inputs"]) for c in transformed.commands] == [("Transformed", "04012345111118/OUT1", ["04012345111118/4444"])]
    assert [(c.kind, c.subject) for c in recalled.commands] == [("Recalled", "04012345111118/4444")]
    with pytest.raises(epcis.EpcisError, match="at most 8388608") as refused:
        read_document(b" " * (9 * 1024 * 1024))
    assert refused.value.exception == "CaptureLimitExceededException"


def test_richer_export_fields_validate_against_gs1_schema():
    """Shipments name both owning parties, receipts the possessing party, recalls a persistent disposition."""
    cast = Cast()
    serial = "RICH1"
    label = cast.event("acme", "label", serial, "Issued", issued_payload() | {"certificates": ["CCC/2024011606123456"]})
    events = [label, cast.event("acme", "label", serial, "Shipped", {"consignee": "distributor", "territory": "44", "channel": "offline_retail", "region": None}),
              cast.event("distributor", "label", serial, "Received", {"region": None}),
              cast.event("regulator", "label", serial, "Recalled", {"reason": "overheating cells"})]
    doc = epcis.export(events, {serial: label.event.payload["gtin"]}.get, "id.example")
    assert not list(schema_validator().iter_errors(doc))
    issued, shipped, received, recalled = doc["epcisBody"]["eventList"]
    assert shipped["sourceList"] == [{"type": "owning_party", "source": "https://id.example/party/acme"}]
    assert shipped["destinationList"] == [{"type": "owning_party", "destination": "https://id.example/party/distributor"}]
    assert received["destinationList"] == [{"type": "possessing_party", "destination": "https://id.example/party/distributor"}]
    assert recalled["persistentDisposition"] == {"set": ["recalled"]} and "persistentDisposition" not in shipped
    assert issued["certificationInfo"] == ["https://id.example/certificate/CCC/2024011606123456"]  # event.v4 certificates
    # The export maps back: capturing it standard (without the tl: extensions) gives the same ledger commands.
    plain = epcis.document([{k: v for k, v in e.items() if not k.startswith("tl:")} for e in doc["epcisBody"]["eventList"]])
    mapped = map_document(read_document(json.dumps(plain).encode()), "acme", Defaults(territory="44", channel="offline_retail", party_host="id.example"))
    assert [(c.kind, c.subject) for m in mapped for c in m.commands] == [(s.event.kind, serial) for s in events]
    # (a signed payload has every schema field; a command leaves unset ones to their defaults)
    # event.v4: the re-capture also keeps what the EPCIS event said (its eventID, its parties).
    kept = {"epcis_event_id": shipped["eventID"], "sources": [{"type": "owning_party", "value": "https://id.example/party/acme"}],
            "destinations": [{"type": "owning_party", "value": "https://id.example/party/distributor"}]}
    assert payload_defaults("Shipped") | mapped[1].commands[0].payload == events[1].event.payload | kept
    assert mapped[0].commands[0].payload["gtin"] == label.event.payload["gtin"]
    assert mapped[0].commands[0].payload["certificates"] == ["CCC/2024011606123456"] and mapped[0].ignored == ["bizLocation"]
    foreign = plain["epcisBody"]["eventList"][0] | {"certificationInfo": "https://certs.example/x"}
    (refused,) = map_document(read_document(json.dumps(epcis.document([foreign])).encode()), "acme", Defaults(party_host="id.example"))
    assert refused.code == "not_captured" and "certificationInfo" in refused.detail


def test_batch_movements_export_as_one_event_each():
    """BatchShipped / BatchReceived / BatchRecalled (issue 16): one ObjectEvent each with the batch's whole epcList."""
    cast = Cast()
    issued = batches.issuance({"gtin": "06901234000023", "lot": "L1", "product": "p"}, ["M1", "M2", "M3"], actor="acme", key=cast.keys["acme"])
    heads = [(s, 1, h) for s, h in zip(["M1", "M2", "M3"], issued.step_hashes())]
    shipped, _ = batches.movement("BatchShipped", heads, actor="acme", key=cast.keys["acme"], region="44",
                                  confidential={"consignee": "distributor", "territory": "44", "channel": "offline_retail"})
    recalled, _ = batches.movement("BatchRecalled", heads, actor="regulator", key=cast.keys["regulator"], reason="overheating")
    manifests = {b.signed.event.event_id: b.manifest for b in (issued, shipped, recalled)}
    doc = epcis.export([issued.signed, shipped.signed, recalled.signed], lambda s: "06901234000023", "id.example", manifests=manifests)
    assert not list(schema_validator().iter_errors(doc))
    one, two, three = doc["epcisBody"]["eventList"]
    assert [e["bizStep"] for e in (one, two, three)] == ["commissioning", "shipping", "holding"]
    assert one["epcList"] == two["epcList"] == three["epcList"] and len(one["epcList"]) == 3
    assert two["action"] == "OBSERVE" and "destinationList" not in two  # the consignee is sealed (its opening is not exported yet)
    assert three["persistentDisposition"] == {"set": ["recalled"]} and all("manifest" in e[epcis.SIGNED][0] for e in (one, two, three))
