"""Who reads what, on the real API (issue 14 items 1-2, issue 19 item 2): one world, every role.

The table is in the README ("Who reads what"); :mod:`traceledger.api.access`
enforces it. Anonymous callers get public data only (and 401 problem+json for
the rest), a producer reads its own labels', lots' and containers' events but
not another producer's (403), an actor the events it signed, a regulator
everything; a revoked actor's signed requests stop working at once.
"""

from __future__ import annotations

import base64
import uuid
from urllib.parse import quote

from ledger import gs1
from ledger.events import SignedEvent
from ledger.transparency import merkle
from ledger.transparency.bundle import verify_bundle
from ledger.transparency.public_audit import verify_public_bundle
from tests.access_world import access_world  # noqa: F401 - the module's fixture
from tests.helpers import gtin

CONFIDENTIAL_PATHS = ("/trail", "/v1/containers/", "/impact", "/v1/epcis/events", "/epcis/events", "/events", "/v1/alerts")


def get_routes(w) -> list[str]:
    """Every GET route of the OpenAPI document, with its path parameters filled from the world."""
    spec = w.get("/openapi.json").json()
    serial, event_id = w.names["shipped"], next(iter(w.bodies))
    fill = {"serial": serial, "gtin": gtin(), "rest": f"21/{serial}", "lot": "L1", "sscc": w.names["pallet"], "actor_id": "acme",
            "event_id": f"urn:uuid:{event_id}", "alert_id": str(uuid.uuid4()), "capture_id": str(uuid.uuid4())}
    values = {"/epcis/eventTypes/": "ObjectEvent", "/epcis/bizSteps/": "shipping", "/epcis/dispositions/": "in_transit",
              "/epcis/epcs/": quote(gs1.digital_link_uri(gtin(), serial, w.settings.resolver_host), safe="")}
    routes = []
    for path, ops in spec["paths"].items():
        if "get" not in ops:
            continue
        for name, value in fill.items():
            path = path.replace("{" + name + "}", value)
        if "{value}" in path:
            path = path.replace("{value}", next(v for prefix, v in values.items() if path.startswith(prefix)))
        routes.append(path)
    return routes


QUERIES = {
    "/v1/log/entries": [{"start": 0, "end": 40}],
    "/v1/log/proof/inclusion": [{"index": 0, "size": 10}],
    "/v1/log/proof/consistency": [{"from": 1, "to": 10}],
    "/v1/channels/voice/audio": [{"call_id": "x"}],
    "/v1/epcis/events": [{}, {"perPage": 1000}, {"serial": "SHIPPED"}, {"lot": "LOT"}, {"container": "PALLET"}],
    "/epcis/events": [{}, {"perPage": 1000}],
}


def test_an_anonymous_client_gets_no_event_body_from_any_get_route(access_world):
    w = access_world
    routes = get_routes(w) + ["/", f"/01/{gtin()}/21/{w.names['shipped']}", f"/v1/labels/{w.names['packed']}/proof"]
    assert len(routes) > 25, routes
    secrets = [b64[40:100] for b64 in w.bodies.values()] + list(w.bodies)  # any slice of a body, any event id
    secrets += [w.names["pallet"], "distributor"]  # a container's code; a consignee (an actor id)
    refused = []
    for path in routes:
        for params in QUERIES.get(path, [{}]):
            params = {k: {"SHIPPED": w.names["shipped"], "LOT": w.names["lot"], "PALLET": w.names["pallet"]}.get(v, v) for k, v in params.items()}
            r = w.get(path, **params)
            text = r.text
            leaked = [s for s in secrets if s in text and not (s == "distributor" and path.startswith("/v1/actors/"))
                      and not (s == w.names["pallet"] and path.startswith("/v1/containers/"))]  # the 401's instance URL
            assert not leaked, (path, params, r.status_code, leaked, text[:300])
            assert r.status_code < 500, (path, r.status_code, text[:300])
            if any(marker in path for marker in CONFIDENTIAL_PATHS):
                assert r.status_code == 401, (path, params, r.status_code, text[:300])
                assert r.headers["content-type"].startswith("application/problem+json") and r.json()["code"] == "unauthenticated"
                refused.append(path)
    assert len(set(refused)) >= 12, refused  # trail, container, impact, both EPCIS exports, every EPCIS event query, alerts


def test_public_log_entries_are_leaf_hashes_and_each_signer_sees_its_rows(access_world):
    w = access_world
    n = w.get("/v1/log/checkpoint").json()["size"]
    anonymous = w.get("/v1/log/entries", start=0, end=n).json()["entries"]
    assert [set(e) for e in anonymous] == [{"index", "leaf_hash"}] * n
    everything = w.get("/v1/log/entries", "regulator", start=0, end=n).json()["entries"]
    assert all(e["readable"] for e in everything) and len(everything) == n
    assert [e["leaf_hash"] for e in everything] == [e["leaf_hash"] for e in anonymous]
    assert merkle.root_of([base64.b64decode(e["value"]) for e in everything]).hex() == w.get("/v1/log/checkpoint").json()["root"]
    for actor in ("acme", "other-producer", "distributor", "gateway", "retailer"):
        entries = w.get("/v1/log/entries", actor, start=0, end=n).json()["entries"]
        shown = {e["event_id"] for e in entries if e["readable"]}
        expected = {eid for eid, subject in w.subjects.items() if w.signers[eid] == actor
                    or subject == ("actor", actor) or owner(w, subject) == actor}
        assert shown == expected and shown, (actor, len(shown), len(expected))
        assert all(set(e) == {"index", "leaf_hash", "readable"} for e in entries if not e["readable"])
        for e in entries:
            if e["readable"]:
                signed = SignedEvent.from_envelope(base64.b64decode(e["value"]))
                assert signed.event.actor == actor or owner(w, (signed.event.subject_type, signed.event.subject)) == actor \
                    or signed.event.subject == actor
    distributor = {e["event_id"] for e in w.get("/v1/log/entries", "distributor", start=0, end=n).json()["entries"] if e["readable"]}
    assert {w.signers[e] for e in distributor} <= {"distributor", "registrar"}  # its Received, and its own registration


def owner(w, subject: tuple[str, str]) -> str | None:
    """Who owns a subject of the world (the producer that made it)."""
    kind, name = subject
    if kind == "label":
        return "other-producer" if name == w.names["other"] else "acme"
    if kind in ("container", "lot"):
        return "other-producer" if name == w.names["other_lot"] else "acme"
    return None


def test_a_label_bundle_is_public_leaf_hashes_for_outsiders_and_whole_for_its_producer(access_world):
    w = access_world
    serial = w.names["shipped"]
    for who in (None, "other-producer", "distributor", "gateway"):
        bundle = w.get(f"/v1/labels/{serial}/proof", who).json()
        assert bundle["format"] == "traceledger-public-bundle/v1", who
        assert all(set(e) == {"index", "leaf_hash", "proof"} for e in bundle["entries"]) and len(bundle["entries"]) == 3
        result = verify_public_bundle(bundle, w.log_key.public_key, origin=w.settings.log_origin)
        assert len(result.indexes) == 3
    for who in ("acme", "regulator"):
        bundle = w.get(f"/v1/labels/{serial}/proof", who).json()
        result = verify_bundle(bundle, w.log_key.public_key, origin=w.settings.log_origin)
        assert [e["kind"] for e in result.events] == ["Issued", "Shipped", "Received"] and result.label.custodian == "distributor"
    assert w.get(f"/v1/labels/{w.names['other']}/proof", "acme").json()["format"] == "traceledger-public-bundle/v1"
    assert w.get(f"/v1/labels/{w.names['other']}/proof", "other-producer").json()["format"] == "traceledger-proof-bundle/v1"


def test_trail_container_and_lot_impact_answer_their_owners_and_regulators_only(access_world):
    w = access_world
    serial, pallet, lot = w.names["shipped"], w.names["pallet"], w.names["lot"]
    gtin_, lot_id = lot.split("/", 1)
    cases = {
        f"/v1/labels/{serial}/trail": {"acme": 200, "regulator": 200, "other-producer": 403, "distributor": 403, "gateway": 403},
        f"/v1/containers/{pallet}": {"acme": 200, "regulator": 200, "other-producer": 403, "distributor": 403, "retailer": 403},
        f"/v1/lots/{gtin_}/{lot_id}/impact": {"acme": 200, "regulator": 200, "other-producer": 403, "distributor": 403},
        f"/v1/lots/{w.names['other_lot']}/impact": {"other-producer": 200, "acme": 403, "regulator": 200},
    }
    for path, expected in cases.items():
        assert w.get(path).status_code == 401, path
        for actor, status in expected.items():
            r = w.get(path, actor)
            assert r.status_code == status, (path, actor, r.status_code, r.text[:200])
            if status == 403:
                assert r.json()["code"] == "forbidden" and r.headers["content-type"].startswith("application/problem+json")
    assert w.get(f"/v1/containers/{pallet}", "acme").json()["contents"] == 2


def epcis_ids(response) -> set[str]:
    body = response.json()["epcisBody"]
    events = body["queryResults"]["resultsBody"]["eventList"] if "queryResults" in body else body["eventList"]
    return {e["eventID"] for e in events}


def test_epcis_queries_answer_each_role_its_own_events(access_world):
    w = access_world
    everything = epcis_ids(w.get("/epcis/events", "regulator", perPage=1000))
    acme = epcis_ids(w.get("/epcis/events", "acme", perPage=1000))
    other = epcis_ids(w.get("/epcis/events", "other-producer", perPage=1000))
    distributor = epcis_ids(w.get("/epcis/events", "distributor", perPage=1000))
    retailer = epcis_ids(w.get("/epcis/events", "retailer", perPage=1000))
    assert acme and other and distributor and acme < everything and not (acme & other)
    assert len(other) == 1 and retailer == set()  # other-producer's one label; the retailer signed nothing
    assert distributor <= acme  # what the distributor signed is on acme's label
    assert epcis_ids(w.get("/v1/epcis/events", "acme", perPage=1000)) == acme  # the whole-log export, paged
    other_id = next(iter(other))
    assert w.get(f"/epcis/events/{other_id}", "other-producer").status_code == 200
    assert w.get(f"/epcis/events/{other_id}", "acme").status_code == 404  # not among what acme may read
    shipping = epcis_ids(w.get("/epcis/bizSteps/shipping/events", "acme"))
    assert shipping and shipping <= acme and not epcis_ids(w.get("/epcis/bizSteps/shipping/events", "other-producer"))
    # A subject's whole history: its producer or a regulator.
    for params, allowed in (({"serial": w.names["shipped"]}, "acme"), ({"lot": w.names["other_lot"]}, "other-producer"),
                            ({"container": w.names["pallet"]}, "acme")):
        assert w.get("/v1/epcis/events", allowed, **params).status_code == 200
        assert w.get("/v1/epcis/events", "regulator", **params).status_code == 200
        intruder = "acme" if allowed == "other-producer" else "other-producer"
        r = w.get("/v1/epcis/events", intruder, **params)
        assert r.status_code == 403 and r.json()["code"] == "forbidden", (params, r.text[:200])
    assert w.get("/epcis/eventTypes").status_code == 200  # the vocabulary in use names no event


def test_a_revoked_actor_can_no_longer_read(access_world):
    w = access_world
    assert w.get("/epcis/events", "retailer").status_code == 200
    assert w.get(f"/v1/labels/{w.names['shipped']}/proof", "retailer").status_code == 200
    w.append([w.cast.event("registrar", "actor", "retailer", "ActorRevoked", {"reason": "licence withdrawn"})])
    for path in ("/epcis/events", f"/v1/labels/{w.names['shipped']}/proof", f"/v1/containers/{w.names['pallet']}"):
        r = w.get(path, "retailer")
        assert r.status_code == 401 and r.json()["code"] == "unauthenticated" and "not an active" in r.json()["detail"], path
