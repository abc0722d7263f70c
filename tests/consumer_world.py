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

from ledger import batches, gs1, pins, shortcode
from ledger import events as events_module
from ledger.service import Ledger
from tests.conftest import Service, free_port, wait_for_api
from tests.helpers import Cast, gtin, issued_payload, shipped_payload
from tests.pipeline import project_all, relay_all
from traceledger import sandbox

ZH_PRODUCT = "电动自行车锂电池 48V 20Ah（长续航版）"
CCC = "CCC 2024011101234567"
# event.v4 (issue 17): a certification body's certificates, the brand's profile, the product's description.
CERT_OK, CERT_SUSPENDED, CERT_REVOKED = "CCC/2024011101234567", "CCC/2024011101230002", "CCC/2024011101230003"
BRAND_HOTLINE = "400-820-1234"
PRODUCT_ZH, PRODUCT_EN = "艾克美电动自行车锂电池 48V", "Acme e-bike lithium battery 48V"
RECALL_NOTICE = "https://www.recall.org.cn/notice/2026-0123"


V4_CONSUMER = "certifier" in events_module.ROLES  # event.v4 step B (issue 17) is in the schema


class ConsumerCast(Cast):
    """The usual cast and a certification body (``cqc``, role certifier, scheme CCC)."""

    ROLES = {**Cast.ROLES, "cqc": ("certifier", [])}

    def register(self, actor: str):
        if actor != "cqc":
            return super().register(actor)
        return self.event("registrar", "actor", actor, "ActorRegistered", {
            "role": "certifier", "name": "CQC", "public_key": self.keys[actor].public_key, "gtin_prefixes": [], "schemes": ["CCC"],
            "name_zh": "中国质量认证中心", "name_en": "China Quality Certification Centre", "hotline": None, "website": None,
            "gln": None, "pgln": None})


@dataclass
class World:
    url: str
    settings: object
    cast: Cast
    gtin: str
    gtin_v4: str = ""  # the product with a signed description, certificates and a quality commitment
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
    cast = ConsumerCast() if V4_CONSUMER else Cast()
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
    if V4_CONSUMER:
        add_v4_facts(w, cast)
    w.sync()
    return w


def add_v4_facts(w: World, cast: Cast) -> None:
    """Certificates (valid, suspended, revoked), the brand's profile, a described product with a quality commitment,
    labels linking the certificates and a recall with its remedy (event.v4, issue 17)."""
    w.gtin_v4 = gtin("00042")
    certs = []
    for cert in (CERT_OK, CERT_SUSPENDED, CERT_REVOKED):
        scheme, number = cert.split("/")
        certs.append(cast.event("cqc", "certificate", cert, "CertificateIssued", {
            "scheme": scheme, "number": number, "holder": "acme", "scope": "48V 电动自行车用锂离子蓄电池 A1–A9 型",
            "gtins": [w.gtin_v4], "gtin_prefixes": [], "valid_from": "2024-01-11", "valid_until": "2029-01-10",
            "issuer_name_zh": "中国质量认证中心", "issuer_name_en": "China Quality Certification Centre"}))
    certs.append(cast.event("acme", "actor", "acme", "ActorProfileChanged", {
        "name_zh": "艾克美电池有限公司", "name_en": "Acme Batteries Ltd.", "hotline": BRAND_HOTLINE, "website": None, "gln": None, "pgln": None}))
    certs.append(cast.event("acme", "product", w.gtin_v4, "ProductDescribed", {
        "name_zh": PRODUCT_ZH, "name_en": PRODUCT_EN, "brand_zh": "艾克美", "brand_en": "Acme", "image_sha256": bytes(range(32)),
        "image_url": "https://img.example.cn/acme-48v.jpg",
        "authorised_sellers": [{"name_zh": "艾克美京东自营旗舰店", "name_en": "Acme flagship store on JD", "region": "11"}]}))
    certs.append(cast.event("acme", "product", w.gtin_v4, "QualityCommitted", {
        "text_zh": "本产品符合国家强制性标准，假一赔十。", "text_en": "This product meets the mandatory national standard.",
        "standard": "GB 43854-2024", "valid_until": None}))
    w.post(certs)
    labels = []
    for purpose, cert in (("v4_certified", CERT_OK), ("v4_suspended", CERT_SUSPENDED), ("v4_revoked", CERT_REVOKED), ("v4_recalled", CERT_OK)):
        serial = next(s for s in iter(gs1.new_serial, None) if shortcode.has_short_code(s))  # phone and SMS tests key its code
        payload = issued_payload(w.gtin_v4, lot="L7", product="E-bike battery 48V", expiry="2029-06-30", region="440300")
        labels.append(cast.event("acme", "label", serial, "Issued", payload | {"certificates": [cert], "production_date": "2026-11-20"}))
        w.labels[purpose] = serial
    labels.append(cast.event("acme", "label", w.labels["v4_recalled"], "Recalled", {
        "reason": "cells may overheat while charging", "hazard_zh": "充电时电芯可能过热起火", "hazard_en": "cells may overheat and catch fire while charging",
        "remedy": "replace", "remedy_text_zh": "免费更换电池组", "remedy_text_en": "free replacement of the battery pack",
        "hotline": BRAND_HOTLINE, "notice_url": RECALL_NOTICE, "recall_id": "SAMR-2026-0123", "region": "440300"}))
    w.post(labels)
    add_batch_labels(w, cast)
    # After the labels were issued (a revoked certificate cannot be linked any more): one suspended, one revoked.
    w.post([cast.event("cqc", "certificate", CERT_SUSPENDED, "CertificateSuspended", {"reason": "factory inspection failed", "until": None}),
            cast.event("cqc", "certificate", CERT_REVOKED, "CertificateRevoked", {"reason": "certificate misused"})])


def add_batch_labels(w: World, cast: Cast) -> None:
    """The same labels issued in batches (the CLI's default, issue 17): ``batch_certified`` and the
    others, two labels per batch, the first named; ``batch_recalled`` is then recalled in a batch."""
    ledger = Ledger(w.settings)
    try:
        for purpose, cert in (("batch_certified", CERT_OK), ("batch_suspended", CERT_SUSPENDED), ("batch_revoked", CERT_REVOKED),
                              ("batch_recalled", CERT_OK)):
            serials = [next(s for s in iter(gs1.new_serial, None) if shortcode.has_short_code(s)) for _ in range(2)]
            payload = issued_payload(w.gtin_v4, lot="L7", product="E-bike battery 48V", expiry="2029-06-30", region="440300")
            b = batches.issuance(payload | {"certificates": [cert], "production_date": "2026-11-20"}, serials, actor="acme", key=cast.keys["acme"])
            assert ledger.append_batch(b.signed, b.manifest).status == "accepted"
            w.labels[purpose] = serials[0]
        recall, _ = batches.movement("BatchRecalled", [(serials[0], 1, b.step_hashes()[0])], actor="acme", key=cast.keys["acme"],
                                     reason="cells may swell in storage")
        assert ledger.append_batch(recall.signed, recall.manifest).status == "accepted"
    finally:
        ledger.close()


@pytest.fixture(scope="module")
def world(base_settings, _created, tmp_path_factory):
    w = build_world(base_settings, _created, tmp_path_factory)
    yield w
    w.service.stop()
