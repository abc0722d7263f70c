"""A module-scoped world for the consumer-channel tests: one API subprocess with labels of every kind.

Starting the API and pushing events through Kafka costs seconds, so the API
tests and the browser tests each build this once per module (own database and
topic prefix) instead of once per test.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass, field

import httpx
import pytest

from ledger import gs1, pins
from tests.conftest import Service, free_port, wait_for_api
from tests.helpers import Cast, gtin, issued_payload, shipped_payload
from tests.pipeline import project_all, relay_all
from traceledger import sandbox

ZH_PRODUCT = "电动自行车锂电池 48V 20Ah（长续航版）"
CCC = "CCC 2024011101234567"


@dataclass
class World:
    url: str
    settings: object
    cast: Cast
    gtin: str
    labels: dict[str, str] = field(default_factory=dict)  # purpose -> serial
    pins: dict[str, str] = field(default_factory=dict)  # serial -> PIN
    service: Service | None = None

    def post(self, signed_events) -> dict:
        payload = {"events": [{"body": base64.b64encode(s.body).decode(), "signature": base64.b64encode(s.signature).decode()} for s in signed_events]}
        r = httpx.post(f"{self.url}/v1/events", json=payload, timeout=30)
        assert r.status_code == 200 and r.json()["refused"] == 0, r.text
        return r.json()

    def sync(self) -> None:
        """Relay and project everything written so far."""
        relay_all(self.settings)
        project_all(self.settings)


def build_world(base_settings, _created, tmp_path_factory, *, pin_labels: int = 6, genuine_labels: int = 6) -> World:
    run_id = uuid.uuid4().hex[:10]
    db = f"tl_test_{run_id}"
    sandbox.create_database(base_settings, db)
    _created["dbs"].append(db)
    _created["prefixes"].append(f"test-{run_id}.")
    cast = Cast()
    tmp = tmp_path_factory.mktemp("consumer")
    key_path = tmp / "gateway.key"
    cast.keys["gateway"].save(key_path)
    port = free_port()
    s = base_settings.with_(pg_db=db, topic_prefix=f"test-{run_id}.", partitions=4, listen_port=port,
                            api_url=f"http://127.0.0.1:{port}", gateway_key=key_path)
    svc = Service("traceledger.api", s, tmp).start()
    wait_for_api(svc, s.api_url)
    w = World(s.api_url, s, cast, gtin(), service=svc)
    w.post(cast.founding_events())
    events = []

    def issue(purpose: str, lot: str = "L1", pin: str | None = None, **extra) -> str:
        serial = gs1.new_serial()
        payload = issued_payload(lot=lot, expiry="2029-06-30", region="440300", **extra)
        if pin:
            payload["pin_hash"] = pins.hash_pin(serial, pin)
            w.pins[serial] = pin
        events.append(cast.event("acme", "label", serial, "Issued", payload))
        w.labels[purpose] = serial
        return serial

    for i in range(genuine_labels):
        serial = issue(f"genuine{i}")
        events.append(cast.event("acme", "label", serial, "Shipped", shipped_payload("distributor")))
    for i in range(6):  # labels nobody else queries: one per test that counts queries from zero
        issue(f"fresh{i}")
    for i in range(pin_labels):
        issue(f"pin{i}", pin=pins.new_pin())
    # A lot with a certificate and a Chinese name (the zh page, the phone in both languages).
    events.append(cast.event("acme", "lot", gs1.lot_key(w.gtin, "L3"), "LotCommissioned",
                             {"product": ZH_PRODUCT, "certificates": [CCC], "region": "440300"}))
    issue("certified", lot="L3", product=ZH_PRODUCT)
    issue("recalled", lot="L2")
    issue("recalled_pin", lot="L2", pin="11223344")
    fake = issue("counterfeit")
    own = issue("recalled_own")  # recalled by its own Recalled event, not its lot's
    events.append(cast.event("acme", "label", own, "Recalled", {"reason": "charger plug may overheat", "region": "440300"}))
    retired = issue("decommissioned")
    events.append(cast.event("acme", "label", retired, "Decommissioned", {"reason": "damaged in the warehouse"}))
    events.append(cast.event("regulator", "label", fake, "FlaggedCounterfeit", {"reason": "seized copy", "region": "440305"}))
    events.append(cast.event("regulator", "lot", gs1.lot_key(w.gtin, "L2"), "Recalled", {"reason": "cells overheat"}))
    w.post(events)
    w.sync()
    return w


@pytest.fixture(scope="module")
def world(base_settings, _created, tmp_path_factory):
    w = build_world(base_settings, _created, tmp_path_factory)
    yield w
    w.service.stop()
