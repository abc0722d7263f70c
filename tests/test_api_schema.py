"""Schemathesis against the running API's own OpenAPI document.

Every operation in ``/openapi.json`` gets generated requests (valid and
invalid); no answer may be a server error (5xx), and every answer must match
the schema the document gives for its status code.

Generated requests alone would mostly meet 401 (signed routes), 404 (random
serials) and 400 (random signed bodies), so the document's successful answers
would never be checked. Two hooks let every operation reach a 2xx:

- a signing hook: half the requests carry a regulator's ``Authorization``
  header (``traceledger.auth``), signed over the exact path and query sent;
- known values: half the requests have their path and query parameters
  replaced by ones that exist (an issued serial, its GTIN and lot, an alert,
  a container, a capture job), and operations whose body must be signed by an
  actor (events, alert transitions, EPCIS capture) also get a signed body.

The test fails unless every operation answered a 2xx at least once, each on
schema. Example counts are kept small so the file runs in about a minute.
"""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import unquote, urlsplit

import httpx
import psycopg
import requests
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from ledger import batches, gs1, pins, report_photos
from ledger.service import Ledger
from tests.alerts_world import TimedCast, detect_all
from tests.helpers import append_accepted, events_body, gtin, issued_payload, signed_get
from tests.pipeline import project_all, relay_all
from traceledger.auth import authorization_header

EXAMPLES_PER_OPERATION = 12
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
PIN = "24681357"


class SignedAs(requests.auth.AuthBase):
    """The signing hook: sign each request as the API sees it (decoded path, raw query)."""

    def __init__(self, key):
        self.key = key

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(r.url)
        target = unquote(parts.path) + (f"?{parts.query}" if parts.query else "")
        r.headers["Authorization"] = authorization_header(self.key, r.method, target)
        return r


def seed(url: str, settings, cast: TimedCast) -> dict:
    """A small world where every path parameter has a value that exists; returns those values."""
    ledger = Ledger(settings)
    try:
        append_accepted(ledger, cast.founding_events())
        serial, moves = cast.to_retailer()
        pinned = gs1.new_serial()
        sscc = gs1.make_sscc(0, "6901234", 7)
        append_accepted(ledger, moves + [cast.scan(serial, 0, region="310101"),  # out of territory: an alert
                                         cast.event("acme", "label", pinned, "Issued", issued_payload() | {"pin_hash": pins.hash_pin(pinned, PIN)}),
                                         cast.event("acme", "container", sscc, "ContainerCreated", {"level": "case", "region": None})])
        batch_id = seeded_batch_movement(ledger, cast)
    finally:
        ledger.close()
    relay_all(settings)
    project_all(settings)
    detect_all(settings)
    with psycopg.connect(settings.pg_conninfo) as conn:
        assert conn.execute("SELECT * FROM alerts.quarantine LIMIT 3").fetchall() == []
        alert_id, alert_kind = conn.execute("SELECT alert_id::text, kind FROM alerts.alerts LIMIT 1").fetchone()
    document = signed_get(url, "/v1/epcis/events", cast.keys["regulator"], {"serial": serial}, timeout=30).json()
    capture = httpx.post(f"{url}/v1/epcis/capture", json=document, timeout=60)
    assert capture.status_code == 202, capture.text
    queries = epcis_queries(url, cast)
    return {"batch_id": batch_id, "sha256": asyncio.run(stored_photo(settings))} | {"serial": serial, "pinned": pinned, "gtin": gtin(), "lot": "L1", "sscc": sscc, "alert_id": alert_id, "alert_kind": alert_kind,
            "epcis_event_id": f"urn:uuid:{moves[0].event.event_id}",
            "actor_id": "acme", "capture_id": capture.json()["captureID"], "document": document} | queries


def seeded_batch_movement(ledger: Ledger, cast: TimedCast) -> str:
    """Two labels issued in a batch and shipped in a batch with sealed fields; the shipment's batch id."""
    serials = [gs1.new_serial() for _ in range(2)]
    issued = batches.issuance(issued_payload(gtin()), serials, actor="acme", key=cast.keys["acme"])
    assert ledger.append_batch(issued.signed, issued.manifest).status == "accepted"
    shipped, opening = batches.movement("BatchShipped", [(s, 1, h) for s, h in zip(serials, issued.step_hashes())], actor="acme",
                                        key=cast.keys["acme"], confidential={"consignee": "distributor", "territory": "44", "channel": "offline_retail"})
    assert ledger.append_batch(shipped.signed, shipped.manifest, opening=opening).status == "accepted"
    return shipped.signed.event.subject


async def stored_photo(settings) -> str:
    """A shopper's report photo, stored as the report form stores it; its hash."""
    async with await psycopg.AsyncConnection.connect(settings.pg_conninfo, autocommit=True) as conn:
        return await report_photos.store(conn, report_photos.checked_photo(tiny_png()))


def tiny_png() -> bytes:
    from io import BytesIO

    from PIL import Image

    out = BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def epcis_queries(url: str, cast: TimedCast) -> dict:
    """Named queries (one to keep, one to delete) and subscriptions (one to read, one to end), as a regulator."""
    def signed(method: str, path: str, body: dict) -> dict:
        headers = {"authorization": authorization_header(cast.keys["regulator"], method, path)}
        answer = httpx.request(method, url + path, json=body, headers=headers, timeout=30)
        assert answer.status_code == 201, answer.text
        return answer.json()

    for name in ("seeded", "doomed"):
        signed("POST", "/epcis/queries", {"name": name, "query": {"EQ_bizStep": "shipping"}})
    kept, ended = (signed("POST", "/epcis/queries/seeded/subscriptions", {"from": "start"})["subscriptionID"] for _ in range(2))
    return {"query_name": "seeded", "subscription_id": kept, "ended_subscription_id": ended}


def known_parameters(case, world: dict) -> None:
    """Replace the case's path and query parameters by values that exist."""
    path_values = {"serial": world["serial"], "gtin": world["gtin"], "lot": world["lot"], "sscc": world["sscc"], "alert_id": world["alert_id"],
                   "actor_id": world["actor_id"], "capture_id": world["capture_id"], "rest": f"21/{world['serial']}",
                   "batch_id": world["batch_id"], "sha256": world["sha256"],
                   "event_id": world["epcis_event_id"], "value": "ObjectEvent" if "/eventTypes/" in case.operation.path else "commissioning"}
    if case.operation.path.endswith("/pin"):
        path_values["serial"] = world["pinned"]
    if case.operation.path.startswith("/epcis/queries/"):
        deleting = case.operation.method.upper() == "DELETE"
        path_values["name"] = "doomed" if deleting and case.operation.path == "/epcis/queries/{name}" else world["query_name"]
        path_values["subscription_id"] = world["ended_subscription_id" if deleting else "subscription_id"]
    for name in list(case.path_parameters or {}):
        if name in path_values:
            case.path_parameters[name] = path_values[name]
    query_values = {"serial": world["serial"], "lot": world["lot"], "start": 0, "end": 3, "index": 0, "size": 3, "from": 1, "to": 3}
    for name in list(case.query or {}):
        if name in query_values:
            case.query[name] = query_values[name]


def signed_bodies(cast: TimedCast, world: dict) -> dict[str, object]:
    """Bodies an actor must sign, by "METHOD path": what generation cannot invent."""
    alert = world["alert_id"]
    ack = cast.event("acme", "alert", alert, "AlertAcknowledged",
                     {"alert_kind": world["alert_kind"], "serial": world["serial"], "producer": "acme", "note": "checking"})
    return {
        "POST /v1/events": events_body([cast.issue()]),
        "POST /v1/alerts/{alert_id}/transitions": events_body([ack])["events"][0],
        "POST /v1/epcis/capture": world["document"],
        # A standard capture whose one event the client could not map: a job, nothing to sign.
        "POST /v1/epcis/capture/signed": {"documentSha256": uuid.uuid4().hex * 2, "events": [
            {"index": 0, "eventKey": f"urn:uuid:{uuid.uuid4()}", "refused": {"code": "not_captured", "detail": "AssociationEvent"}}]},
        "POST /epcis/queries": {"name": "made-here", "query": {"EQ_bizStep": "receiving"}},
        "POST /epcis/queries/{name}/subscriptions": {"from": "now"},
        "POST /v1/heads": {"subjects": [{"subject_type": "label", "subject": world["serial"]}]},
        "POST /v1/labels/{serial}/pin": {"pin": PIN},
        "POST /v1/labels/{serial}/scans": {"channel": "web", "region": "440305"},
        "POST /v1/labels/{serial}/reports": {"note": "looks odd"},
    }


def test_every_operation_answers_on_schema_and_reaches_a_2xx(api):
    url, settings = api["url"], api["settings"]
    cast = TimedCast()
    cast.keys = api["cast"].keys  # the API's gateway key belongs to this cast
    world = seed(url, settings, cast)
    bodies = signed_bodies(cast, world)
    signed = requests.Session()
    signed.auth = SignedAs(cast.keys["regulator"])
    unsigned = requests.Session()

    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    failures: list[str] = []
    statuses: dict[str, set[int]] = {}
    operations = []
    for result in schema.get_all_operations():
        operation = result.ok()
        name = f"{operation.method.upper()} {operation.path}"
        operations.append(name)

        def call(case, sign: bool, name: str = name) -> None:
            response = case.call_and_validate(base_url=url, checks=CHECKS, timeout=30, session=signed if sign else unsigned)
            statuses.setdefault(name, set()).add(response.status_code)

        @hyp_settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=st.one_of(operation.as_strategy(), operation.as_strategy(GenerationMode.NEGATIVE)), sign=st.booleans(), known=st.booleans())
        def check(case, sign, known):
            if known:
                known_parameters(case, world)
            call(case, sign)

        try:
            check()
            # Once more with every value known and, where the body must be signed by an actor, such a body.
            case = operation.Case(body=bodies[name], media_type="application/json") if name in bodies else operation.Case()
            case.path_parameters = {p.name: None for p in operation.path_parameters}
            case.query = {}
            known_parameters(case, world)
            if name.startswith("POST /v1/channels/"):
                case = operation.Case(body={"from": "+8613800000000", "text": world["serial"], "call_id": str(uuid.uuid4()), "digits": "1"},
                                      media_type="application/x-www-form-urlencoded")
            elif name == "GET /v1/channels/voice/audio":
                call_id = str(uuid.uuid4())
                httpx.post(f"{url}/v1/channels/voice", data={"call_id": call_id, "from": "+8613800000000"}, timeout=30)
                case.query = {"call_id": call_id}
            call(case, sign=True)
        except Exception as exc:  # noqa: BLE001 -- collect every operation's failure, then fail once
            failures.append(f"{name}: {exc}"[:3000])
    print("\n".join(f"{op}: {sorted(codes)}" for op, codes in sorted(statuses.items())))
    assert len(operations) >= 10, "the OpenAPI document lists too few operations"
    assert not failures, "\n\n".join(failures)
    never_2xx = [op for op in operations if not any(200 <= c < 300 for c in statuses.get(op, ()))]
    assert not never_2xx, f"operations never seen answering 2xx (their success schema never checked): {never_2xx}"
