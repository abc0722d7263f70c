"""EPCIS named queries and subscriptions on the real API, relay and Kafka: a subscription's cursor lives in
PostgreSQL, so events delivered but not acknowledged come again after the API restarts, none lost; a long
poll answers as soon as a matching event arrives; only owners (and regulators) see or use their queries."""

from __future__ import annotations

import threading
from urllib.parse import urlencode

import httpx

from tests.conftest import wait_for_api
from tests.helpers import shipped_payload
from tests.pipeline import relay_all
from tests.test_epcis_cli import post
from traceledger.auth import authorization_header


def call(api, actor: str | None, method: str, path: str, **kwargs) -> httpx.Response:
    headers = {}
    if actor is not None:
        headers["authorization"] = authorization_header(api["cast"].keys[actor], method, path)
    return httpx.request(method, api["url"] + path, headers=headers, timeout=40, **kwargs)


def ship(api, serials) -> None:
    cast = api["cast"]
    events = [cast.event("acme", "label", s, "Shipped", shipped_payload("distributor")) for s in serials]
    assert post(api["url"], events)["refused"] == 0
    relay_all(api["settings"])


def delivered(api, path: str, **params) -> dict:
    answer = call(api, "acme", "GET", path + ("?" + urlencode(params) if params else ""))
    assert answer.status_code == 200, answer.text
    return answer.json()


def event_ids(doc: dict) -> list[str]:
    return [e["eventID"] for e in doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]]


def test_named_query_subscription_survives_an_api_restart(api):
    cast = api["cast"]
    issued = [cast.issue() for _ in range(5)]
    serials = [s.event.subject for s in issued]
    assert post(api["url"], cast.founding_events() + issued)["refused"] == 0
    ship(api, serials[:1])  # before the subscription: never delivered

    # Named queries: checked when saved, owned by their actor.
    body = {"name": "acme-shipping", "query": {"EQ_bizStep": "shipping", "eventType": ["ObjectEvent"]}}
    assert call(api, None, "POST", "/epcis/queries", json=body).status_code == 401
    for bad, reason in (({"name": "x", "query": {"EQ_colour": "red"}}, "unknown or unsupported"),
                        ({"name": "x", "query": {"perPage": "5"}}, "belong to a request"),
                        ({"name": "no spaces", "query": {"EQ_bizStep": "shipping"}}, "query name")):
        answer = call(api, "acme", "POST", "/epcis/queries", json=bad)
        assert answer.status_code == 400 and reason in answer.json()["detail"], answer.text
    assert call(api, "acme", "POST", "/epcis/queries", json=body).status_code == 201
    assert "exists already" in call(api, "acme", "POST", "/epcis/queries", json=body).json()["detail"]
    assert [q["name"] for q in call(api, "acme", "GET", "/epcis/queries").json()] == ["acme-shipping"]
    assert call(api, "distributor", "GET", "/epcis/queries").json() == []
    assert [q["name"] for q in call(api, "regulator", "GET", "/epcis/queries").json()] == ["acme-shipping"]
    assert call(api, "distributor", "GET", "/epcis/queries/acme-shipping").status_code == 403
    assert len(event_ids(delivered(api, "/epcis/queries/acme-shipping/events"))) == 1

    # A subscription from now: the shipment before it is not delivered, the two after it are, until acknowledged.
    subscription = call(api, "acme", "POST", "/epcis/queries/acme-shipping/subscriptions", json={"from": "now"}).json()
    feed = f"/epcis/queries/acme-shipping/subscriptions/{subscription['subscriptionID']}/events"
    assert call(api, "distributor", "GET", feed).status_code == 403
    assert event_ids(delivered(api, feed)) == []
    ship(api, serials[1:3])
    first = delivered(api, feed)
    assert len(event_ids(first)) == 2

    service = api["service"]
    service.kill()  # the API dies after delivering, before the subscriber acknowledged
    service.start()
    wait_for_api(service, api["url"])
    again = delivered(api, feed)
    assert event_ids(again) == event_ids(first)  # nothing lost: delivered again
    assert event_ids(delivered(api, feed, ack=again["ackToken"])) == []  # acknowledged: the cursor moved

    # A long poll answers when the next matching event arrives.
    answers = []
    waiting = threading.Thread(target=lambda: answers.append(delivered(api, feed, wait=20)))
    waiting.start()
    ship(api, serials[3:4])
    waiting.join(timeout=30)
    assert len(event_ids(answers[0])) == 1 and event_ids(answers[0])[0] not in event_ids(first)
    assert call(api, "acme", "GET", f"/epcis/queries/acme-shipping/subscriptions/{subscription['subscriptionID']}/events?ack=bogus").status_code == 400

    # Deleting the query ends its subscriptions.
    assert call(api, "distributor", "DELETE", "/epcis/queries/acme-shipping").status_code == 403
    assert call(api, "acme", "DELETE", "/epcis/queries/acme-shipping").status_code == 204
    assert call(api, "acme", "GET", feed).status_code == 404
