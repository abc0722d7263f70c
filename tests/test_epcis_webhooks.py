"""EPCIS webhook subscriptions on the real API, relay and Kafka: new matching events are POSTed to the
subscriber's URL, signed with its secret; failures are retried with backoff; a delivery the API died in the
middle of is made again after the restart (at least once); and the server is no SSRF tool: URLs that resolve to
loopback, private, link-local or reserved addresses are refused unless the operator allow-lists them, https only
unless http is allowed, no credentials in URLs, no redirects followed."""

from __future__ import annotations

import base64
import http.server
import threading
import time

import orjson
import pytest

from ledger import epcis_subscriptions
from ledger.epcis_webhooks import SIGNATURE_HEADER, check_target, verify
from ledger.errors import Refused
from tests.conftest import free_port, wait_for, wait_for_api
from tests.helpers import Cast
from tests.test_epcis_cli import post
from tests.test_epcis_subscriptions import call, ship


class Receiver:
    """A webhook receiver on 127.0.0.1: records every POST; answers ``plan`` statuses first, then 200."""

    def __init__(self):
        self.received: list[tuple[dict, bytes]] = []
        self.plan: list[int | str] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["content-length"]))
                with outer.lock:
                    outer.received.append((dict(self.headers), body))
                    step = outer.plan.pop(0) if outer.plan else 200
                if callable(step):
                    step()  # e.g. kill the API before it hears the answer
                    step = 200
                self.send_response(step)
                if step == 302:
                    self.send_header("Location", "http://10.0.0.1/internal")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/epcis/hook?partner=1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self) -> list[dict]:
        with self.lock:
            return [orjson.loads(b) for _, b in self.received]


@pytest.fixture
def hooked(fresh_settings, services, tmp_path):
    """The API allowing http and 127.0.0.1/32 only (the operator's allow-list), and a receiver there."""
    cast = Cast()
    port = free_port()
    s = fresh_settings(listen_port=port, api_url=f"http://127.0.0.1:{port}", epcis_webhook_allow=("127.0.0.1/32",), epcis_webhook_http=True)
    svc = services("traceledger.api", s)
    wait_for_api(svc, s.api_url)
    receiver = Receiver()
    yield {"settings": s, "cast": cast, "service": svc, "url": s.api_url, "receiver": receiver}
    receiver.server.shutdown()


def events_of(doc: dict) -> list[str]:
    return [e["tl:event"]["subject"] for e in doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]]


def test_webhook_deliveries_are_signed_retried_and_survive_an_api_restart(hooked):
    api, receiver, cast = hooked, hooked["receiver"], hooked["cast"]
    issued = [cast.issue() for _ in range(6)]
    serials = [s.event.subject for s in issued]
    assert post(api["url"], cast.founding_events() + issued)["refused"] == 0
    assert call(api, "acme", "POST", "/epcis/queries", json={"name": "shipped", "query": {"EQ_bizStep": "shipping"}}).status_code == 201
    subscribe = "/epcis/queries/shipped/subscriptions"

    # SSRF: the server refuses to be pointed at what only it can reach; nothing is stored.
    for dest in ("http://10.1.2.3/hook", "http://169.254.169.254/latest/meta-data/", "http://[::1]/hook", "http://0.0.0.0:8080/",
                 "http://[::ffff:192.168.0.1]/", "http://user:pw@127.0.0.1/hook", "ftp://127.0.0.1/hook", "http://no-such-host.invalid/",
                 "http://127.0.0.1/a b", "gopher://127.0.0.1:5432/"):
        r = call(api, "acme", "POST", subscribe, json={"dest": dest})
        assert r.status_code == 400 and r.json()["code"] == "forbidden_destination", (dest, r.text)
    assert call(api, "acme", "GET", "/epcis/queries/shipped").json()["subscriptions"] == []

    created = call(api, "acme", "POST", subscribe, json={"dest": receiver.url})
    assert created.status_code == 201, created.text
    sub = created.json()
    secret = base64.urlsafe_b64decode(sub["secret"])
    shown = f"/epcis/queries/shipped/subscriptions/{sub['subscriptionID']}"
    assert "secret" not in call(api, "acme", "GET", "/epcis/queries/shipped").json()["subscriptions"][0]  # shown once only

    # New matching events are pushed, signed with the subscription's secret.
    ship(api, serials[:2])
    wait_for(lambda: receiver.received, 20, 0.2, "the first delivery")
    headers, body = receiver.received[0]
    assert verify(secret, body, headers[SIGNATURE_HEADER]) and not verify(b"x" * 32, body, headers[SIGNATURE_HEADER])
    assert not verify(secret, body + b" ", headers[SIGNATURE_HEADER])
    assert headers["GS1-EPCIS-Version"] == "2.0.0" and headers["Content-Type"] == "application/ld+json"
    assert events_of(receiver.bodies()[0]) == serials[:2]

    # A redirect (towards an internal address) and an error status are failed attempts, retried with backoff;
    # every retry is the same delivery.
    receiver.plan = [302, 500]
    ship(api, serials[2:3])
    wait_for(lambda: len(receiver.received) == 4, 30, 0.2, "two failed attempts and a retry")
    retries = receiver.received[1:]
    assert len({h["TraceLedger-Delivery"] for h, _ in retries}) == 1 and all(events_of(orjson.loads(b)) == serials[2:3] for _, b in retries)
    state = wait_for(lambda: (x := call(api, "acme", "GET", "/epcis/queries/shipped").json()["subscriptions"][0])["deliveries"] == 2 and x, 10)
    assert state["attempts"] == 0 and state["state"] == "active" and state["lastError"] is None

    # The API dies after the receiver got a delivery, before it recorded the answer: sent again after the restart.
    receiver.plan = [api["service"].kill]
    ship(api, serials[3:5])
    wait_for(lambda: len(receiver.received) == 5, 20, 0.2, "the delivery the API dies in")
    api["service"].start()
    wait_for_api(api["service"], api["url"])
    wait_for(lambda: len(receiver.received) == 6, 40, 0.2, "the same delivery again after the restart")
    (h1, b1), (h2, b2) = receiver.received[4:6]
    assert h1["TraceLedger-Delivery"] == h2["TraceLedger-Delivery"] and orjson.loads(b1)["epcisBody"] == orjson.loads(b2)["epcisBody"]
    assert events_of(orjson.loads(b2)) == serials[3:5]
    seen = [s for b in receiver.bodies() for s in events_of(b)]
    assert set(seen) == set(serials[:5])  # nothing lost; the only repeats are the retried deliveries

    # At most 5 webhooks per actor (a delivery may hold a worker up to its timeout).
    extra = [call(api, "acme", "POST", subscribe, json={"dest": receiver.url}) for _ in range(5)]
    assert [r.status_code for r in extra] == [201] * 4 + [400] and "at most 5 webhook" in extra[-1].json()["detail"]
    for r in extra[:4]:
        assert call(api, "acme", "DELETE", f"/epcis/queries/shipped/subscriptions/{r.json()['subscriptionID']}").status_code == 204

    # Unsubscribed: nothing more is pushed.
    assert call(api, "acme", "DELETE", shown).status_code == 204
    ship(api, serials[5:6])
    time.sleep(2)
    assert len(receiver.received) == 6


def test_targets_are_checked_against_what_they_resolve_to():
    public = lambda host, port: ["93.184.216.34"]  # noqa: E731
    assert check_target("https://partner.example/hook", resolver=public).addresses == ("93.184.216.34",)
    with pytest.raises(Refused, match="https"):
        check_target("http://partner.example/hook", resolver=public)  # https only unless the operator allows http
    rebinding = lambda host, port: ["93.184.216.34", "127.0.0.1"]  # noqa: E731
    with pytest.raises(Refused, match="127.0.0.1"):
        check_target("https://partner.example/hook", resolver=rebinding)  # every address must be public
    for address in ("10.0.0.8", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "fd00::1", "fe80::1", "::1",
                    "::ffff:127.0.0.1", "224.0.0.1", "0.0.0.0", "240.0.0.1"):
        with pytest.raises(Refused):
            check_target("https://partner.example/", resolver=lambda h, p, a=address: [a])
    allowed = check_target("http://hooks.internal:8080/x", allow=("10.8.0.0/16",), http=True, resolver=lambda h, p: ["10.8.3.4"])
    assert allowed.port == 8080 and allowed.addresses == ("10.8.3.4",)


def test_retries_are_bounded_with_backoff():
    delays = [epcis_subscriptions.retry_delay(n) for n in range(1, epcis_subscriptions.MAX_ATTEMPTS + 1)]
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0] and delays == sorted(delays) and max(delays) <= epcis_subscriptions.MAX_RETRY_SECONDS
    assert epcis_subscriptions.retry_delay(50) == epcis_subscriptions.MAX_RETRY_SECONDS
