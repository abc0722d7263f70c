"""Who reads a batch movement's sealed fields (issue 14 item 3, on the real API).

The signed body of a batch shipment holds a salted commitment to its consignee, territory
and channel. A competitor or an anonymous reader gets only that; the entitled readers (the
signer, the consignee, the labels' producer, regulators) get the opening and check it
against the signed commitment themselves.
"""

from __future__ import annotations

import base64
import csv
import json

import psycopg
from click.testing import CliRunner

from ledger import batches, commitments
from ledger.events import SignedEvent
from ledger.service import Ledger
from tests.helpers import gtin, issued_payload, signed_get
from traceledger.cli import cli as traceledger
from traceledger.client import Client

SHIP = {"consignee": "distributor", "territory": "44", "channel": "retail"}


def test_only_entitled_readers_open_a_shipment_and_the_cli_moves_batches(api, tmp_path):
    settings, cast, url = api["settings"], api["cast"], api["url"]
    ledger = Ledger(settings)
    try:
        assert all(r.status == "accepted" for r in ledger.append(cast.founding_events()))
        serials = [f"OP{i:05d}" for i in range(40)]
        issued = batches.issuance(issued_payload(gtin()), serials, actor="acme", key=cast.keys["acme"])
        shipped, opening = batches.movement("BatchShipped", [(s, 1, h) for s, h in zip(serials, issued.step_hashes())],
                                            actor="acme", key=cast.keys["acme"], confidential=SHIP, region="1101")
    finally:
        ledger.close()
    with Client(url) as client:
        assert client.post_batch_event(issued.signed, issued.manifest)["status"] == "accepted"
        # Through the API: the opening travels beside the signed body and is checked there.
        lying = batches.Opening(opening.salt, {**opening.fields, "territory": "11"}).as_json()
        refused = client.post_batch_event(shipped.signed, shipped.manifest, lying)
        assert refused["status"] == "refused" and refused["code"] == "wrong_opening"
        assert client.post_batch_event(shipped.signed, shipped.manifest, opening.as_json())["status"] == "accepted"

    path = f"/v1/batches/{shipped.signed.event.subject}"
    assert signed_get(url, path, None).status_code == 401
    for outsider in ("other-producer", "retailer", "gateway"):
        answer = signed_get(url, path, cast.keys[outsider])
        assert answer.status_code == 403, (outsider, answer.text)
        assert "distributor" not in answer.text and "retail\"" not in answer.text
    for entitled in ("acme", "distributor", "regulator"):
        answer = signed_get(url, path, cast.keys[entitled])
        assert answer.status_code == 200, (entitled, answer.text)
        got = answer.json()
        body = SignedEvent.from_parts(base64.b64decode(got["body"]), base64.b64decode(got["signature"]))
        disclosed = batches.Opening.from_json(got["opening"])
        # The reader checks the disclosure against the commitment the producer signed.
        assert commitments.check_disclosure(body.event.payload["sealed"], disclosed.salt, disclosed.fields)
        assert disclosed.fields == SHIP
    # What the public holds of the event (the body) names none of the sealed fields.
    assert b"distributor" not in shipped.signed.body and b"retail" not in shipped.signed.body
    # Without the salt, guessing the consignee among the registered actors does not work:
    # the commitment is salted with 128 random bits.
    for guess in ("distributor", "retailer"):
        assert not commitments.check_disclosure(shipped.signed.event.payload["sealed"], bytes(16), {**SHIP, "consignee": guess})
    cli_moves_labels_in_batch_events(api, tmp_path)


def cli_moves_labels_in_batch_events(api, tmp_path):
    """The CLI's ship, receive, recall: batch events by default, --single-events per label."""
    settings, cast = api["settings"], api["cast"]
    runner = CliRunner()

    def cli(settings, *args, check=True):
        result = runner.invoke(traceledger, ["--api", api["url"], *args], catch_exceptions=False)
        assert not check or result.exit_code == 0, result.output
        result.returncode = result.exit_code
        return result

    keys = {}
    for actor in ("acme", "distributor", "retailer"):
        keys[actor] = str(tmp_path / f"{actor}.key")
        cast.keys[actor].save(tmp_path / f"{actor}.key")
    out = tmp_path / "labels.csv"
    cli(settings, "issue", "--key", keys["acme"], "--gtin", gtin(), "--lot", "L1", "--product", "Battery", "--count", "300", "--out", str(out))
    with open(out) as fh:
        serials = [r["serial"] for r in csv.DictReader(fh)]

    def events() -> int:
        with psycopg.connect(settings.pg_conninfo) as conn:
            return conn.execute("SELECT count(*) FROM ledger_events").fetchone()[0]

    before = events()
    shipped = cli(settings, "--json", "ship", "--key", keys["acme"], "--to", "distributor", "--territory", "44", "--channel", "retail", "--from-csv", str(out))
    assert json.loads(shipped.stdout)["accepted"] == 300 and events() == before + 1  # one signed event for 300 labels
    # A receipt by someone who is not the consignee: refused whole, naming a label, exit 2.
    wrong = cli(settings, "--json", "receive", "--key", keys["retailer"], "--from-csv", str(out), check=False)
    report = json.loads(wrong.stdout)
    assert wrong.returncode == 2 and report["refused"] == 300 and report["refusals"][0]["code"] == "not_authorized"
    assert any(s in report["refusals"][0]["detail"] for s in serials) and events() == before + 1
    cli(settings, "receive", "--key", keys["distributor"], "--from-csv", str(out))
    # --single-events keeps one event per label.
    recalled = cli(settings, "--json", "recall", "--key", keys["acme"], "--reason", "overheat", "--single-events", *serials[:5])
    assert json.loads(recalled.stdout)["accepted"] == 5 and events() == before + 2 + 5
    cli(settings, "recall", "--key", keys["acme"], "--reason", "overheat", *serials[5:])
    assert events() == before + 3 + 5
    ledger = Ledger(settings)
    try:
        heads = ledger.heads([("label", s) for s in serials])
        assert {h["seq"] for h in heads.values()} == {3} and not any(h["broken"] for h in heads.values())
        assert ledger.app.load_chain("label", serials[200]).state.recalled
    finally:
        ledger.close()
    pipelined_moves(api, keys)


def pipelined_moves(api, keys):
    """move_labels signs the next batch while the current one is with the server: 120 labels in
    groups of 40 with an unknown label in the third (refused before signing, whole): every
    other label is moved once, in its own batch event, and the report counts it so."""
    from traceledger import commands

    settings, more = api["settings"], str(keys["acme"]) + ".more.csv"
    result = CliRunner().invoke(traceledger, ["--api", api["url"], "issue", "--key", keys["acme"], "--gtin", gtin(), "--lot", "L2", "--product", "Battery",
                                              "--count", "120", "--out", more], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with open(more) as fh:
        serials = [r["serial"] for r in csv.DictReader(fh)]
    listed = serials[:80] + ["ZZUNKNOWN0001"] + serials[80:]  # groups: 0-39, 40-79, unknown + 80-118, 119
    with Client(api["url"]) as client:
        report = commands.move_labels(client, commands.Signer.load(keys["acme"]), "Shipped", listed,
                                      {"consignee": "distributor", "territory": "44", "channel": "retail", "region": None}, batch=40)
    assert (report.accepted, report.refused, report.retried) == (81, 40, 0), report.as_dict()
    assert report.refusals[0]["code"] == "unknown_subject"
    ledger = Ledger(settings)
    try:
        heads = ledger.heads([("label", s) for s in serials])
        assert {s for s, h in heads.items() if h["seq"] == 1} == set(serials[:80] + serials[119:])
        assert {s for s, h in heads.items() if h["seq"] == 0} == set(serials[80:119]) and not any(h["broken"] for h in heads.values())
    finally:
        ledger.close()
