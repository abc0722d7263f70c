"""Who reads what, on the real API (issue 14 items 1-2, issue 19 item 2): one world, every role.

The table is in the README ("Who reads what"); :mod:`traceledger.api.access`
enforces it. Anonymous callers get public data only (and 401 problem+json for
the rest), a producer reads its own labels', lots' and containers' events but
not another producer's (403), an actor the events it signed, a regulator
everything; a revoked actor's signed requests stop working at once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from urllib.parse import quote

import pytest
from click.testing import CliRunner

from ledger import gs1
from ledger.events import SignedEvent
from ledger.keys import KeyPair
from ledger.transparency import merkle
from ledger.transparency.bundle import verify_bundle
from ledger.transparency.checkpoints import sign_checkpoint
from ledger.transparency.public_audit import PublicAuditError, PublicAuditState, advance, checked_checkpoint, verify_public_bundle
from tests.access_world import access_world  # noqa: F401 - the module's fixture
from tests.helpers import gtin
from tests.pipeline import relay_all
from traceledger.cli import cli

CONFIDENTIAL_PATHS = ("/trail", "/v1/containers/", "/impact", "/v1/epcis/events", "/epcis/events", "/events", "/v1/alerts")


def get_routes(w) -> list[str]:
    """Every GET route of the OpenAPI document, with its path parameters filled from the world."""
    spec = w.get("/openapi.json").json()
    serial, event_id = w.names["shipped"], next(iter(w.bodies))
    fill = {"serial": serial, "gtin": gtin(), "rest": f"21/{serial}", "lot": "L1", "sscc": w.names["pallet"], "actor_id": "acme",
            "event_id": f"urn:uuid:{event_id}", "alert_id": str(uuid.uuid4()), "capture_id": str(uuid.uuid4())}
    values = {"/epcis/eventTypes/": "ObjectEvent", "/epcis/bizSteps/": "shipping", "/epcis/dispositions/": "in_transit",
              "/epcis/epcs/": quote(gs1.digital_link_uri(gtin(), serial, w.settings.resolver_host), safe=""),
              "/epcis/bizLocations/": quote(f"https://{w.settings.resolver_host}/party/acme", safe=""), "/epcis/readPoints/": "44"}
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
    "/v1/log/entries": [{"start": 0, "end": "SIZE"}],
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
    names = {"SHIPPED": w.names["shipped"], "LOT": w.names["lot"], "PALLET": w.names["pallet"], "SIZE": w.get("/v1/log/checkpoint").json()["size"]}
    for path in routes:
        for params in QUERIES.get(path, [{}]):
            params = {k: names.get(v, v) for k, v in params.items()}
            r = w.get(path, **params)
            assert r.status_code != 400, (path, params, r.text[:300])  # every query is well formed: the door is what answers
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


# ---------------------------------------------------------------- the public auditor (no credentials)


def audit_public(w, *args):
    runner = CliRunner()
    out = runner.invoke(cli, ["audit", "public", "--api", w.url, "--log-key", f"{w.settings.log_key}.pub", "--json", *args], env=w.settings.to_env())
    return out.exit_code, (json.loads(out.stdout) if out.exit_code == 0 else out.output)


def test_the_public_auditor_checks_roots_consistency_bundles_and_split_views_without_credentials(access_world, tmp_path):
    w = access_world
    state = str(tmp_path / "public.json")
    code, first = audit_public(w, "--state", state)
    assert code == 0, first
    size = w.get("/v1/log/checkpoint").json()["size"]
    assert first["size"] == size and first["new_leaves"] == size
    # The log grows: the next run hashes only the new leaves and checks the consistency proof too.
    w.append([w.cast.issue() for _ in range(12)])
    relay_all(w.settings)
    code, second = audit_public(w, "--state", state)
    assert code == 0 and second["size"] >= size + 12 and second["new_leaves"] == second["size"] - size, second
    # Another reader's checkpoint: the same note is consistent; a second root signed for that size is a split view.
    theirs = tmp_path / "theirs.note"
    theirs.write_text(w.get("/v1/log/checkpoint").json()["note"])
    assert audit_public(w, "--state", state, "--compare", str(theirs))[0] == 0
    forked = sign_checkpoint(w.log_key, w.settings.log_origin, size, hashlib.sha256(b"another history").digest())
    theirs.write_text(forked.note)
    code, out = audit_public(w, "--state", state, "--compare", str(theirs))
    assert code == 2 and "split_view" in out and "two different roots" in out
    # A label's public bundle, offline; an edited leaf hash fails its proof.
    bundle_path = tmp_path / "bundle.json"
    bundle = w.get(f"/v1/labels/{w.names['shipped']}/proof").json()
    bundle_path.write_text(json.dumps(bundle))
    code, out = audit_public(w, "--bundle", str(bundle_path))
    assert code == 0 and out["proven_entries"] == 3, out
    bundle["entries"][1]["leaf_hash"] = hashlib.sha256(b"x").hexdigest()
    bundle_path.write_text(json.dumps(bundle))
    code, out = audit_public(w, "--bundle", str(bundle_path))
    assert code == 2 and "bad_proof" in out


def test_the_public_auditor_refuses_leaves_that_do_not_make_the_signed_root(access_world):
    w = access_world
    cp = checked_checkpoint(w.get("/v1/log/checkpoint").json()["note"], w.log_key.public_key, w.settings.log_origin)
    leaves = [bytes.fromhex(e["leaf_hash"]) for e in w.get("/v1/log/entries", start=0, end=cp.size).json()["entries"]]
    state = PublicAuditState()
    assert advance(state, cp, leaves, None) == cp.size and state.latest == cp
    for lie in (leaves[:-1], leaves[:3] + [hashlib.sha256(b"x").digest()] + leaves[4:]):
        with pytest.raises(PublicAuditError) as caught:
            advance(PublicAuditState(), cp, lie, None)
        assert caught.value.code in ("missing_leaves", "root_mismatch")
    impostor = sign_checkpoint(KeyPair.generate(), w.settings.log_origin, cp.size, cp.root)
    with pytest.raises(PublicAuditError, match="checkpoint"):
        checked_checkpoint(impostor.note, w.log_key.public_key, w.settings.log_origin)
    smaller = sign_checkpoint(w.log_key, w.settings.log_origin, 5, merkle.root_of_hashes(leaves[:5]))
    with pytest.raises(PublicAuditError, match="below"):
        advance(state, smaller, [], None)
