"""Containers, lots and EPCIS 2.0 through the CLI and the HTTP API, on real Kafka and PostgreSQL:
pack into cases and onto a pallet, ship the pallet, unpack at the distributor, ship units on,
recall the input lot (impact shown first); export as EPCIS 2.0 (valid against GS1's schema),
capture into a fresh ledger and export again: identical."""

from __future__ import annotations

import base64
import copy
import csv
import json

import httpx
import jsonschema
import psycopg
import pytest

from ledger import epcis, gs1
from ledger.epcis_query import EventQuery, Page
from projections import epcis_index
from projections.verification import read_view
from tests.conftest import free_port, wait_for_api
from tests.helpers import PREFIX, Cast, gtin, signed_get
from tests.pipeline import project_all, relay_all
from tests.test_aggregation import CELLS
from tests.test_demo_e2e import cli


def post(url: str, events) -> dict:
    body = {"events": [{"body": base64.b64encode(s.body).decode(), "signature": base64.b64encode(s.signature).decode()} for s in events]}
    return httpx.post(f"{url}/v1/events", json=body, timeout=30).json()


def schema_validator():
    schema = json.loads(epcis.SCHEMA_PATH.read_text())
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def full_view(settings, serial: str) -> dict:
    """The read model's whole view (custody, containers), not just the public part."""
    with psycopg.connect(settings.pg_conninfo) as conn:
        return read_view(conn, serial)


def refresh(settings) -> None:
    relay_all(settings)
    assert project_all(settings).quarantined == 0


@pytest.fixture
def network(api, tmp_path):
    """Actors registered through the API; key files for the CLI."""
    url, cast, settings = api["url"], api["cast"], api["settings"]
    assert post(url, cast.founding_events())["refused"] == 0
    keys = {}
    for actor in ("acme", "other-producer", "distributor", "retailer", "regulator"):
        keys[actor] = str(tmp_path / f"{actor}.key")
        cast.keys[actor].save(keys[actor])
    return {"url": url, "cast": cast, "settings": settings, "keys": keys, "tmp": tmp_path}


def build_through_cli(network, *, single_events: bool = False) -> dict:
    """Lots, six units (issued in a batch event unless ``single_events``), cases, a pallet, shipped and received."""
    s, keys, tmp = network["settings"], network["keys"], network["tmp"]
    cell_gtin, cell_lot = CELLS.split("/")
    cli(s, "lot", "commission", "--key", keys["other-producer"], "--gtin", cell_gtin, "--lot", cell_lot,
        "--product", "18650 cells", "--certificate", "CCC 2024011606123456")
    cli(s, "lot", "transform", "--key", keys["acme"], "--gtin", gtin("00002"), "--lot", "PACK-1", "--input", CELLS)
    labels = tmp / "labels.csv"
    cli(s, "issue", "--key", keys["acme"], "--gtin", gtin("00002"), "--lot", "PACK-1", "--product", "Battery 48V", "--count", "6",
        *(["--single-events"] if single_events else []), "--out", str(labels))
    units = [row["serial"] for row in csv.DictReader(open(labels))]
    case1, case2, pallet = (gs1.make_sscc(0, PREFIX, n) for n in (11, 12, 13))
    cli(s, "container", "create", "--key", keys["acme"], "--level", "case", case1, case2)
    cli(s, "container", "create", "--key", keys["acme"], "--level", "pallet", pallet)
    cli(s, "pack", "--key", keys["acme"], "--into", case1, *units[:3])
    cli(s, "pack", "--key", keys["acme"], "--into", case2, *units[3:])
    cli(s, "pack", "--key", keys["acme"], "--into", pallet, case1, case2)
    cli(s, "ship", "--key", keys["acme"], "--to", "distributor", "--territory", "44", "--channel", "offline_retail", pallet)
    cli(s, "receive", "--key", keys["distributor"], pallet)
    refresh(s)
    return {"units": units, "case1": case1, "case2": case2, "pallet": pallet}


def test_cli_pack_ship_unpack_and_recall_an_input_lot(network):
    s, keys = network["settings"], network["keys"]
    net = build_through_cli(network)
    units, case1, case2, pallet = net["units"], net["case1"], net["case2"], net["pallet"]
    seen = json.loads(cli(s, "--json", "verify", units[0]).stdout)
    # The public view: the pallet's journey shows in the unit's trail (places and dates only).
    assert seen["verdict"] == "genuine" and [t["event"] for t in seen["trail"]][-2:] == ["Shipped", "Received"]
    inside = full_view(s, units[0])
    assert inside["custodian"] == "distributor" and inside["in_container"] == case1

    # Bad inputs: clear one-line refusals, exit 2, nothing written.
    again = cli(s, "--json", "pack", "--key", keys["acme"], "--into", case2, units[0], check=False)
    assert again.returncode == 2 and "already_packed" in again.stderr and json.loads(again.stdout)["accepted"] == 0
    bad_sscc = cli(s, "pack", "--key", keys["acme"], "--into", "123456789012345678", units[0], check=False)
    assert bad_sscc.returncode == 2 and "invalid_sscc" in bad_sscc.stderr
    stranger = cli(s, "unpack", "--key", keys["retailer"], pallet, check=False)
    assert stranger.returncode == 2 and "custodian" in stranger.stderr
    shown = json.loads(cli(s, "--json", "container", "show", pallet, "--key", keys["regulator"]).stdout)
    assert cli(s, "container", "show", pallet, "--key", keys["retailer"], check=False).returncode == 2  # not its container
    assert shown["contents"] == 2 and shown["children"] == [case1, case2] and shown["custodian"] == "distributor"

    # The distributor splits the pallet and one case (children from the read model), ships units on.
    cli(s, "unpack", "--key", keys["distributor"], pallet)
    refresh(s)
    cli(s, "unpack", "--key", keys["distributor"], case1)
    cli(s, "ship", "--key", keys["distributor"], "--to", "retailer", "--territory", "4403", "--channel", "offline_retail", *units[:2])
    cli(s, "receive", "--key", keys["retailer"], *units[:2])
    refresh(s)
    shop = full_view(s, units[0])
    assert shop["verdict"] == "genuine" and shop["custodian"] == "retailer" and shop["territory"] == "4403"
    assert {c["sscc"] for c in shop["containers"]} == {case1, pallet}

    # The regulator sees the impact, then signs one recall of the cell lot.
    assert "reaches 6 units in 2 lots" in cli(s, "lot", "impact", CELLS, "--key", keys["regulator"]).stdout
    refused = cli(s, "--json", "recall", "--key", keys["regulator"], "--input-lot", CELLS, "--reason", "cells overheat", check=False)
    assert refused.returncode == 2 and "confirmation_needed" in refused.stdout
    done = json.loads(cli(s, "--json", "recall", "--key", keys["regulator"], "--input-lot", CELLS, "--reason", "cells overheat", "--yes").stdout)
    assert done["accepted"] == 1
    assert done["impact"]["units"] == 6
    assert [x["lot"] for x in done["impact"]["affected_lots"]] == sorted([CELLS, f"{gtin('00002')}/PACK-1"])
    refresh(s)
    for u in units:
        assert json.loads(cli(s, "--json", "verify", u).stdout)["verdict"] == "recalled"


def test_epcis_export_is_valid_and_round_trips_through_a_fresh_ledger(network, fresh_settings, services):
    url, s = network["url"], network["settings"]
    # The units are issued in ONE batch event: it exports as one commissioning ObjectEvent with the whole epcList.
    net = build_through_cli(network)
    regulator = network["cast"].keys["regulator"]  # EPCIS reads are signed (issue 14)
    document = signed_get(url, "/v1/epcis/events", regulator, timeout=60).json()
    validator = schema_validator()
    exported = network["tmp"] / "all.jsonld"
    cli(s, "epcis", "export", "--out", str(exported), "--key", network["keys"]["regulator"])
    assert json.loads(exported.read_text())["epcisBody"] == document["epcisBody"]
    assert not list(validator.iter_errors(document))
    types = {e["type"] for e in document["epcisBody"]["eventList"]}
    assert types == {"ObjectEvent", "AggregationEvent", "TransformationEvent"}
    packs = [e for e in document["epcisBody"]["eventList"] if e["type"] == "AggregationEvent"]
    assert len(packs) == 3 and all(e["action"] == "ADD" and e["bizStep"] == "packing" for e in packs)
    assert len(packs[0][epcis.SIGNED]) == 4  # the case's Packed + three units' PackedInto, one EPCIS event
    assert packs[0]["childEPCs"][0].startswith("https://") and "/01/" in packs[0]["childEPCs"][0]
    batch = [e for e in document["epcisBody"]["eventList"] if e["tl:event"]["kind"] == "BatchIssued"]
    assert len(batch) == 1 and batch[0]["type"] == "ObjectEvent" and batch[0]["action"] == "ADD"
    assert batch[0]["bizStep"] == "commissioning" and batch[0]["ilmd"]["cbvmda:lotNumber"] == "PACK-1"
    assert [epc.rsplit("/21/", 1)[1] for epc in batch[0]["epcList"]] == net["units"]
    assert all(epc.startswith("https://") and f"/01/{gtin('00002')}/21/" in epc for epc in batch[0]["epcList"])
    assert "manifest" in batch[0][epcis.SIGNED][0]

    lot_only = signed_get(url, "/v1/epcis/events", regulator, {"lot": f"{gtin('00002')}/PACK-1"}).json()
    assert [e["type"] for e in lot_only["epcisBody"]["eventList"]] == ["ObjectEvent", "TransformationEvent"]  # cells, then packs
    later = signed_get(url, "/v1/epcis/events", regulator, {"since": "2100-01-01T00:00:00Z"}).json()
    assert later["epcisBody"]["eventList"] == [] and not list(validator.iter_errors(later))
    history = signed_get(url, "/v1/epcis/events", regulator, {"serial": net["units"][0]}).json()
    assert not list(validator.iter_errors(history))
    kinds = [e["tl:event"]["kind"] for e in history["epcisBody"]["eventList"]]
    assert {"BatchIssued", "Packed", "Shipped", "Received", "Transformed", "LotCommissioned"} <= set(kinds)  # with its commissioning
    mine = signed_get(url, "/epcis/events", regulator, {"MATCH_epc": batch[0]["epcList"][2], "EQ_bizStep": "commissioning"}).json()
    assert [e["eventID"] for e in mine["epcisBody"]["queryResults"]["resultsBody"]["eventList"]] == [batch[0]["eventID"]]
    with psycopg.connect(s.pg_conninfo) as conn:  # on a page, a batch event weighs as its labels (bounded pages)
        (row,) = epcis_index.page_rows(conn, EventQuery(event_ids=(batch[0]["eventID"],)), Page(after=-1, size=1))
    assert row[2] == len(net["units"])

    # A fresh ledger with the same members.
    fresh = fresh_settings()
    port = free_port()
    fresh = fresh.with_(listen_port=port, api_url=f"http://127.0.0.1:{port}")
    svc = services("traceledger.api", fresh, name="fresh-api")
    wait_for_api(svc, fresh.api_url)
    members = Cast()
    members.keys = dict(network["cast"].keys)
    assert post(fresh.api_url, members.founding_events())["refused"] == 0

    # Refused documents write nothing and answer with the EPCIS exception.
    tampered = copy.deepcopy(document)
    tampered["epcisBody"]["eventList"][-1]["bizStep"] = "destroying"
    r = httpx.post(f"{fresh.api_url}/v1/epcis/capture", json=tampered, timeout=60)
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["type"] == "epcisException:ValidationException" and "bizStep" in r.json()["detail"]
    unsigned = copy.deepcopy(document)
    del unsigned["epcisBody"]["eventList"][0][epcis.SIGNED]
    assert httpx.post(f"{fresh.api_url}/v1/epcis/capture", json=unsigned, timeout=60).status_code == 400
    invalid = copy.deepcopy(document)
    del invalid["epcisBody"]["eventList"][0]["eventTime"]
    assert httpx.post(f"{fresh.api_url}/v1/epcis/capture", json=invalid, timeout=60).json()["type"] == "epcisException:ValidationException"
    partial = copy.deepcopy(document)
    # (The input lot's commissioning left out: the transformation, before the batch, is refused.)
    partial["epcisBody"]["eventList"] = [e for e in partial["epcisBody"]["eventList"] if e["tl:event"]["kind"] != "LotCommissioned"]
    refused = httpx.post(f"{fresh.api_url}/v1/epcis/capture", json=partial, timeout=60)
    assert refused.status_code == 400 and refused.json()["eventIndex"] == 0, refused.text
    forged = copy.deepcopy(document)  # a batch event whose manifest lists another label set than it signed
    (entry,) = [e for e in forged["epcisBody"]["eventList"] if e["tl:event"]["kind"] == "BatchIssued"][0][epcis.SIGNED]
    entry["manifest"] = base64.b64encode(base64.b64decode(entry["manifest"])[:-1]).decode()
    assert httpx.post(f"{fresh.api_url}/v1/epcis/capture", json=forged, timeout=60).status_code == 400
    job = httpx.get(f"{fresh.api_url}/v1/epcis/capture/{refused.json()['captureID']}").json()
    assert job["success"] is False and job["errors"][0]["type"] == "epcisException:ValidationException"
    heads = httpx.post(f"{fresh.api_url}/v1/heads", json={"subjects": [{"type": "label", "subject": net["units"][0]}]}).json()["heads"]
    assert heads[net["units"][0]] is None  # nothing of the refused documents was written

    # The real capture: 202, a job to poll, then the fresh ledger exports the identical body.
    r = httpx.post(f"{fresh.api_url}/v1/epcis/capture", json=document, timeout=60)
    assert r.status_code == 202, r.text
    job = httpx.get(f"{fresh.api_url}{r.headers['location']}").json()
    assert job["success"] is True and job["running"] is False and job["events"] == r.json()["accepted"]
    relay_all(fresh)
    again = signed_get(fresh.api_url, "/v1/epcis/events", regulator, timeout=60).json()
    assert again["epcisBody"] == document["epcisBody"]
    assert json.dumps(again["epcisBody"], sort_keys=True) == json.dumps(document["epcisBody"], sort_keys=True)
    # Capturing the same document twice (here with the CLI) adds nothing.
    twice = json.loads(cli(fresh, "--json", "epcis", "capture", str(exported)).stdout)
    assert twice["success"] is True and twice["events"] == job["events"]
    assert signed_get(fresh.api_url, "/v1/epcis/events", regulator, timeout=60).json()["epcisBody"] == document["epcisBody"]
