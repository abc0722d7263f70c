"""The EPCIS 2.0 query interface against the real API (a subprocess) on real PostgreSQL.

Every supported query parameter answers an expected result set over a small supply
chain (lots, labels, cases, a pallet shipped and received, a consumer scan); an
unknown or malformed parameter is a ``QueryParameterException``; paging over 10,000
events returns each exactly once, in log order, a page never larger than ``perPage``,
and the API worker's memory bounded while it does.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import httpx
import jsonschema
import pytest

from ledger import epcis, gs1
from ledger.keys import KeyPair
from ledger.service import Ledger
from tests.helpers import Cast, gtin, scanned_payload, shipped_payload, signed_get
from tests.pipeline import relay_all
from tests.test_aggregation import CELLS, PACKS, accepted, build_network, supplier_gtin
from traceledger.api.epcis_query import within_budget
from traceledger.client import Client


def validator():
    schema = json.loads(epcis.SCHEMA_PATH.read_text())
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


REGULATORS: dict[str, KeyPair] = {}  # API url -> the regulator its ledger registered: EPCIS reads are signed (issue 14)


def get(url: str, path: str, params=None) -> httpx.Response:
    """GET signed by the regulator of the API at ``url`` (who reads every event)."""
    return signed_get(url, path, REGULATORS[url], params, timeout=300)


def results(response: httpx.Response) -> list[dict]:
    assert response.status_code == 200, response.text
    return response.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]


def named(events: list[dict]) -> list[tuple[str, str]]:
    """(ledger kind, subject) of each EPCIS event, in order."""
    return [(e["tl:event"]["kind"], e["tl:event"]["subject"]) for e in events]


@pytest.fixture
def chain(api):
    """The supply chain of test_aggregation plus a shipment, a receipt and a consumer scan, relayed in two runs."""
    settings, cast = api["settings"], api["cast"]
    ledger = Ledger(settings)
    try:
        assert accepted(ledger.append(cast.founding_events()))
        REGULATORS[api["url"]] = cast.keys["regulator"]
        net = build_network(ledger, cast)
        relay_all(settings)
        pallet, unit = net["pallet"], net["units"][0]
        assert accepted(ledger.append([cast.event("acme", "container", pallet, "Shipped", shipped_payload("distributor"))]))
        assert accepted(ledger.append([cast.event("distributor", "container", pallet, "Received", {"region": "4403"})]))
        assert accepted(ledger.append([cast.event("gateway", "label", unit, "Scanned", scanned_payload(region="440305"))]))
        relay_all(settings)
    finally:
        ledger.close()
    everything = results(get(api["url"], "/epcis/events", {"perPage": 1000}))
    return net | {"url": api["url"], "host": settings.resolver_host, "all": everything, "cast": cast}


def test_each_query_parameter_answers_its_result_set(chain):
    url, host, every = chain["url"], chain["host"], chain["all"]
    units, case1, pallet = chain["units"], chain["case1"], chain["pallet"]
    unit_uri = gs1.digital_link_uri(gtin("00002"), units[0], host)

    def q(**params) -> list[tuple[str, str]]:
        return named(results(get(url, "/epcis/events", params | {"perPage": 1000})))

    assert len(every) == 17 and [k for k, _ in named(every)][:2] == ["LotCommissioned", "Transformed"]
    packs = [("Packed", case1), ("Packed", chain["case2"]), ("Packed", pallet)]
    assert q(eventType="AggregationEvent") == packs == q(EQ_eventType="AggregationEvent")
    assert q(eventType="TransformationEvent|AggregationEvent") == [("Transformed", PACKS)] + packs
    assert q(EQ_bizStep="shipping") == [("Shipped", pallet)] == q(EQ_bizStep="https://ref.gs1.org/cbv/BizStep-shipping")
    assert q(EQ_disposition="in_transit") == [("Shipped", pallet)]
    assert len(q(EQ_disposition="active")) == 11  # the lot, the transformation, 6 labels, 3 containers
    assert q(EQ_action="OBSERVE") == [("Shipped", pallet), ("Received", pallet), ("Scanned", units[0])]

    # Times: every event at or after / before a given event's time (computed from the whole list).
    t = every[9]["eventTime"]
    assert q(GE_eventTime=t) == named([e for e in every if e["eventTime"] >= t])
    assert q(LT_eventTime=t) == named([e for e in every if e["eventTime"] < t])
    first_run, second_run = every[0]["recordTime"], every[-1]["recordTime"]
    assert first_run < second_run  # two relay runs: two record times
    assert q(GE_recordTime=second_run) == [("Shipped", pallet), ("Received", pallet), ("Scanned", units[0])]
    assert len(q(LT_recordTime=second_run)) == 14

    # Identifiers: Digital Link on any host, EPC URNs, patterns.
    unit_events = [("Issued", units[0]), ("Packed", case1), ("Scanned", units[0])]
    assert q(MATCH_epc=unit_uri) == unit_events
    assert q(MATCH_epc=unit_uri.replace(host, "id.gs1.org")) == unit_events
    assert q(MATCH_epc=f"urn:epc:id:sgtin:6901234.000002.{units[0]}") == unit_events
    assert len(q(MATCH_epc="urn:epc:idpat:sgtin:6901234.000002.*")) == 6 + 2 + 1  # issued, two case packs, the scan
    assert len(q(MATCH_epc=f"https://{host}/01/{gtin('00002')}/21/*")) == 9
    case_uri = f"https://{host}/00/{case1}"
    assert q(MATCH_parentID=case_uri) == [("Packed", case1)]
    assert q(MATCH_parentID=f"urn:epc:id:sscc:{case1[1:8]}.{case1[0]}{case1[8:17]}") == [("Packed", case1)]
    assert q(MATCH_anyEPC=case_uri) == [("ContainerCreated", case1), ("Packed", case1), ("Packed", pallet)]
    assert q(MATCH_inputEPC=case_uri) == [] == q(MATCH_outputEPC=case_uri)  # transformations here name lots (classes)
    cells = epcis.lot_uri(CELLS, host)
    assert q(MATCH_epcClass=cells) == [("LotCommissioned", CELLS)]
    assert q(MATCH_inputEPCClass=cells) == [("Transformed", PACKS)]
    assert q(MATCH_outputEPCClass=epcis.lot_uri(PACKS, host)) == [("Transformed", PACKS)]
    assert q(MATCH_anyEPCClass=f"urn:epc:class:lgtin:6909876.{supplier_gtin()[0]}00011.CELL-7") == [
        ("LotCommissioned", CELLS), ("Transformed", PACKS)]

    # Places.
    assert q(EQ_bizLocation=epcis.party_uri("distributor", host)) == [("Received", pallet)]
    assert q(EQ_readPoint=epcis.region_uri("440305", host)) == [("Scanned", units[0])]
    region = epcis.region_uri("4403", host)
    assert q(EQ_bizStep="commissioning", EQ_readPoint=region) == [("Transformed", PACKS)] + [
        ("ContainerCreated", box) for box in (case1, chain["case2"], pallet)]  # parameters combine with AND
    assert q(EQ_eventID=every[3]["eventID"]) == named([every[3]])
    distributor = epcis.party_uri("distributor", host)
    assert q(EQ_destination_owning_party=distributor) == [("Shipped", pallet)]
    assert q(**{"EQ_destination_urn:epcglobal:cbv:sdt:owning_party": distributor}) == [("Shipped", pallet)]
    assert q(EQ_destination_location=distributor) == [] == q(EQ_source_owning_party=distributor)


def test_answers_are_standard_documents_and_single_events(chain):
    url, every = chain["url"], chain["all"]
    r = get(url, "/epcis/events", {"perPage": 5})
    assert r.headers["content-type"].startswith("application/ld+json")
    assert r.headers["GS1-EPCIS-Version"] == "2.0.0" and r.headers["GS1-CBV-Version"] == "2.0.0"
    assert r.json()["type"] == "EPCISQueryDocument" and not list(validator().iter_errors(r.json()))
    assert 'rel="next"' in r.headers["link"] and len(results(r)) == 5

    one = get(url, f"/epcis/events/{quote(every[4]['eventID'], safe=':')}")
    assert one.status_code == 200 and one.json() == every[4] and one.headers["GS1-EPCIS-Version"] == "2.0.0"
    missing = get(url, "/epcis/events/urn:uuid:00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and missing.json()["type"] == "epcisException:NoSuchResourceException"

    assert get(url, "/epcis/eventTypes").json() == ["ObjectEvent", "AggregationEvent", "TransformationEvent"]
    assert "shipping" in get(url, "/epcis/bizSteps").json() and "recalled" in get(url, "/epcis/dispositions").json()
    assert named(results(get(url, "/epcis/eventTypes/AggregationEvent/events"))) == named(
        [e for e in every if e["type"] == "AggregationEvent"])
    assert named(results(get(url, "/epcis/bizSteps/receiving/events"))) == [("Received", chain["pallet"])]
    assert len(results(get(url, "/epcis/dispositions/in_progress/events", {"perPage": 100}))) == 4  # 3 packs, a receipt
    case_uri = f"https://{chain['host']}/00/{chain['case1']}"
    assert len(results(get(url, f"/epcis/epcs/{case_uri}/events"))) == 3

    # The project's own endpoint: the same query answered as a capturable EPCISDocument.
    legacy = get(url, "/v1/epcis/events", {"EQ_bizStep": "shipping"})
    assert legacy.json()["type"] == "EPCISDocument" and named(legacy.json()["epcisBody"]["eventList"]) == [("Shipped", chain["pallet"])]
    assert "recordTime" not in legacy.json()["epcisBody"]["eventList"][0]
    order_limits_identifier_lists_and_versions(chain)  # one chain built for both (a build costs ~30 s)


BAD_PARAMETERS = [
    {"EQ_bizstep": "shipping"},  # a misspelt name is not ignored
    {"orderBy": "bizStep"}, {"orderDirection": "UP"}, {"orderBy": ["eventTime", "recordTime"]},
    {"eventCountLimit": "0"}, {"eventCountLimit": "-3"},
    {"perPage": "0"}, {"perPage": "1001"}, {"perPage": "ten"},
    {"GE_eventTime": "yesterday"},
    {"eventType": "PartyEvent"},
    {"MATCH_epc": "urn:epc:idpat:sgtin:6901234.*.*"},
    {"nextPageToken": "not-a-token"},
    {"EQ_bizStep": ""},
    {"EQ_bizStep": "shipping\x00"},
]


def test_bad_parameters_are_refused_and_a_page_token_only_continues_its_own_query(chain):
    url = chain["url"]
    for params in BAD_PARAMETERS:
        for path in ("/epcis/events", "/v1/epcis/events", "/epcis/eventTypes/ObjectEvent/events"):
            r = get(url, path, params)
            assert r.status_code == 400, (path, params, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.json()["type"] == "epcisException:QueryParameterException", r.json()
    fixed_twice = get(url, "/epcis/eventTypes/ObjectEvent/events", {"eventType": "ObjectEvent"})
    assert fixed_twice.json()["type"] == "epcisException:QueryParameterException"

    first = get(url, "/epcis/events", {"EQ_disposition": "active", "perPage": 2})
    token = first.links["next"]["url"].split("nextPageToken=")[1]
    other = get(url, "/epcis/events", {"EQ_disposition": "in_transit", "nextPageToken": token})
    assert other.status_code == 400 and other.json()["type"] == "epcisException:QueryParameterException"
    more = get(url, "/epcis/events", {"EQ_disposition": "active", "perPage": 2, "nextPageToken": token})
    assert [e["disposition"] for e in results(more)] == ["active", "active"]
    history = get(url, "/v1/epcis/events", {"serial": chain["units"][0], "EQ_bizStep": "shipping"})
    assert history.status_code == 400 and history.json()["type"] == "epcisException:QueryParameterException"


def follow(url: str, path: str, params: dict) -> tuple[list[dict], int]:
    """Every event of a query, following its Link headers: (events, pages)."""
    seen, pages = [], 0
    while path:
        r = get(url, path, params)
        seen += results(r)
        pages += 1
        path, params = r.links.get("next", {}).get("url"), None
    return seen, pages


def order_limits_identifier_lists_and_versions(chain):
    """orderBy/orderDirection/eventCountLimit, /bizLocations, /readPoints, /epcs, version headers (on the same chain)."""
    url, host, every = chain["url"], chain["host"], chain["all"]
    by_time = results(get(url, "/epcis/events", {"orderBy": "eventTime", "perPage": 1000}))
    assert [e["eventTime"] for e in by_time] == sorted(e["eventTime"] for e in every) and len(by_time) == len(every)
    desc = results(get(url, "/epcis/events", {"orderBy": "eventTime", "orderDirection": "DESC", "perPage": 1000}))
    assert named(desc) == named(by_time)[::-1]
    assert named(results(get(url, "/epcis/events", {"orderDirection": "DESC", "perPage": 1000}))) == named(every)[::-1]
    by_record = results(get(url, "/epcis/events", {"orderBy": "recordTime", "perPage": 1000}))
    assert named(by_record) == named(every) and [e["recordTime"] for e in by_record] == sorted(e["recordTime"] for e in every)
    # Pages of 3 in eventTime order, newest first, at most 7 events in all: 3 pages, the last of one event.
    seen, pages = follow(url, "/epcis/events", {"orderBy": "eventTime", "orderDirection": "DESC", "perPage": 3, "eventCountLimit": 7})
    assert named(seen) == named(desc)[:7] and pages == 3
    two = get(url, "/epcis/events", {"eventCountLimit": 2, "perPage": 10})
    assert named(results(two)) == named(every)[:2] and "link" not in two.headers
    token = get(url, "/epcis/events", {"perPage": 2}).links["next"]["url"].split("nextPageToken=")[1]
    reordered = get(url, "/epcis/events", {"perPage": 2, "orderBy": "eventTime", "nextPageToken": token})
    assert reordered.status_code == 400  # a token continues only the ordering it was made for

    # Identifiers in use, paged, and their events.
    distributor, scanned_at = epcis.party_uri("distributor", host), epcis.region_uri("440305", host)
    locations, _ = follow_list(url, "/epcis/bizLocations")
    assert distributor in locations and locations == sorted(locations) and len(set(locations)) == len(locations)
    points, pages = follow_list(url, "/epcis/readPoints", perPage=1)
    assert scanned_at in points and pages == len(points)
    assert named(results(get(url, f"/epcis/bizLocations/{distributor}/events"))) == [("Received", chain["pallet"])]
    assert named(results(get(url, f"/epcis/readPoints/{scanned_at}/events"))) == [("Scanned", chain["units"][0])]
    epcs, pages = follow_list(url, "/epcis/epcs", perPage=4)
    unit_uri = gs1.digital_link_uri(gtin("00002"), chain["units"][0], host)
    assert len(epcs) == 6 + 3 and unit_uri in epcs and f"https://{host}/00/{chain['case1']}" in epcs and pages == 3
    assert signed_get(url, "/epcis/epcs", chain["cast"].keys["acme"]).status_code == 403  # every label: regulators only
    assert signed_get(url, "/epcis/bizLocations", None).status_code == 401

    # Versions: a request for another EPCIS or CBV version is refused, not answered in 2.0.
    for header in ("GS1-EPCIS-Version", "GS1-CBV-Version"):
        r = httpx.get(f"{url}/epcis/eventTypes", headers={header: "1.2"}, timeout=30)
        assert r.status_code == 406 and r.json()["type"] == "epcisException:NotAcceptableException", r.text
        assert httpx.get(f"{url}/epcis/eventTypes", headers={header: "2.0.0"}, timeout=30).status_code == 200


def follow_list(url: str, path: str, **params) -> tuple[list[str], int]:
    """Every value of a paged list of identifiers in use: (values, pages)."""
    values, pages = [], 0
    while path:
        r = get(url, path, params)
        assert r.status_code == 200, r.text
        values += r.json()
        pages += 1
        path, params = r.links.get("next", {}).get("url"), None
    return values, pages


def rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_paging_over_ten_thousand_events_returns_each_once_in_order_with_bounded_memory(api):
    settings, cast, url = api["settings"], Cast(), api["url"]
    ledger = Ledger(settings)
    try:
        assert accepted(ledger.append(cast.founding_events()))
        REGULATORS[url] = cast.keys["regulator"]
        serials = [gs1.serial_of(n) for n in range(10_000)]
        for start in range(0, len(serials), 2000):
            assert accepted(ledger.append([cast.issue(s) for s in serials[start:start + 2000]]))
    finally:
        ledger.close()
    relay_all(settings)
    pid = api["service"].proc.pid
    before = rss_kb(pid, "VmRSS")

    seen, pages, path, params = [], 0, "/epcis/events", {"perPage": 1000}
    while path:
        r = get(url, path, params)
        page = results(r)
        assert 0 < len(page) <= 1000
        seen += [e["tl:event"]["subject"] for e in page]
        pages += 1
        path, params = r.links.get("next", {}).get("url"), None
    assert seen == serials  # every event exactly once, in log order
    assert pages == 10
    grown_mb = (rss_kb(pid, "VmHWM") - before) / 1024
    print(f"API worker: {before / 1024:.0f} MB before, peak grew {grown_mb:.0f} MB over 10 pages of 1000")
    assert grown_mb < 100

    # The client (and so `traceledger epcis export`) follows the pages of the project's own endpoint into one document.
    exported = Client(url).epcis_events(cast.keys["regulator"])
    assert [e["tl:event"]["subject"] for e in exported["epcisBody"]["eventList"]] == serials

    # A small page size and a filter page the same way.
    odd = get(url, "/epcis/events", {"MATCH_epc": gs1.digital_link_uri(gtin(), serials[7777], settings.resolver_host), "perPage": 1})
    assert named(results(odd)) == [("Issued", serials[7777])] and "link" not in odd.headers


def test_a_page_stops_early_rather_than_carry_too_many_signed_events():
    rows = [(i, None, 4_000) for i in range(5)]
    assert [r[0] for r in within_budget(rows, 30)] == [0, 1]  # 8,000 signed events; a third would be 12,000
    assert [r[0] for r in within_budget([(7, None, 50_000)] + rows, 30)] == [7]  # one event is always shown whole
    assert [r[0] for r in within_budget(rows, 1)] == [0]
