"""Rules of event.v4 for issue 17: certifiers and certificates, actor profiles, product
master data and quality commitments, production dates and recalls a consumer can act on."""

import hashlib
from dataclasses import replace

import pytest

from ledger.encoding import event_codec
from ledger.errors import Refused
from ledger.lifecycle import CertificateState, authorize, fold, signer_of
from ledger.replay import Replay
from tests.helpers import Cast, gtin, issued_payload
from tests.test_lifecycle import refused, run


class CertCast(Cast):
    ROLES = {**Cast.ROLES, "cqc": ("certifier", []), "other-body": ("certifier", [])}
    SCHEMES = {"cqc": ["CCC"], "other-body": ["CQC-ECO"]}

    def register(self, actor):
        if actor not in self.SCHEMES:
            return super().register(actor)
        return self.event("registrar", "actor", actor, "ActorRegistered", {
            "role": "certifier", "name": actor, "public_key": self.keys[actor].public_key, "gtin_prefixes": [],
            "schemes": self.SCHEMES[actor], "name_zh": "中国质量认证中心", "name_en": "China Quality Certification Centre",
            "hotline": "400-888-0000", "website": "https://www.cqc.com.cn", "gln": None, "pgln": None})

    def actor_state(self, actor):
        return replace(super().actor_state(actor), schemes=tuple(self.SCHEMES.get(actor, ())))


@pytest.fixture
def cast():
    return CertCast()


CERT = "CCC/2024011101234567"


def issue_cert(cast, signer="cqc", cert=CERT, holder="acme", **kw):
    scheme, number = cert.split("/")
    payload = {"scheme": scheme, "number": number, "holder": holder, "scope": "48V e-bike batteries, models A1-A9",
               "gtins": [gtin()], "gtin_prefixes": [], "valid_from": "2024-01-11", "valid_until": "2029-01-10",
               "issuer_name_zh": "中国质量认证中心", "issuer_name_en": None} | kw
    return cast.event(signer, "certificate", cert, "CertificateIssued", payload)


def move(cast, kind, signer="cqc", cert=CERT, advance=True, **kw):
    payload = {"reason": "factory inspection failed"} | ({"until": None} if kind == "CertificateSuspended" else {}) | kw
    return cast.event(signer, "certificate", cert, kind, payload, advance=advance)


def field_refusal(build) -> Refused:
    with pytest.raises(Refused) as err:
        build()
    return err.value


# ---------------------------------------------------------------- certificates


def test_a_certificate_is_issued_suspended_reinstated_and_revoked_for_good(cast):
    s = run(cast, issue_cert(cast), None)
    assert isinstance(s, CertificateState) and (s.status, s.issuer, s.holder) == ("valid", "cqc", "acme")
    s = run(cast, move(cast, "CertificateSuspended", until="2025-06-30"), s)
    assert s.status == "suspended"
    s = run(cast, move(cast, "CertificateReinstated"), s)
    assert s.status == "valid"
    s = run(cast, move(cast, "CertificateRevoked"), s)
    assert s.status == "revoked"
    for kind in ("CertificateReinstated", "CertificateSuspended", "CertificateRevoked"):
        assert refused(cast, move(cast, kind, advance=False), s).code == "invalid_transition"


@pytest.mark.parametrize("signer", ["acme", "regulator", "registrar", "other-body"])
def test_only_a_certifier_holding_the_scheme_issues(cast, signer):
    assert refused(cast, issue_cert(cast, signer=signer), None).code == "not_authorized"


def test_only_the_issuing_certifier_moves_its_certificate(cast):
    s = run(cast, issue_cert(cast), None)
    assert refused(cast, move(cast, "CertificateRevoked", signer="other-body", advance=False), s).code == "not_authorized"
    assert refused(cast, move(cast, "CertificateRevoked", signer="regulator", advance=False), s).code == "not_authorized"


def test_a_certificate_is_issued_once_under_its_own_id(cast):
    s = run(cast, issue_cert(cast), None)
    assert refused(cast, issue_cert(cast), s).code == "already_exists"
    assert refused(cast, issue_cert(cast, cert="CCC/999", number="998"), None).field == "subject"


def test_a_certificate_holder_is_a_registered_actor(cast):
    assert refused(cast, issue_cert(cast, holder="nobody"), None).field == "holder"


def test_reinstating_needs_a_suspension(cast):
    s = run(cast, issue_cert(cast), None)
    assert refused(cast, move(cast, "CertificateReinstated"), s).code == "invalid_transition"


def test_a_certificate_event_cannot_open_a_chain_but_issuance(cast):
    assert refused(cast, move(cast, "CertificateRevoked"), None).code == "unknown_subject"


@pytest.mark.parametrize("change, fld", [
    ({"scope": ""}, "scope"),
    ({"scope": "x" * 501}, "scope"),
    ({"gtins": ["123"]}, "gtins"),
    ({"gtins": [gtin()] * 1001}, "gtins"),
    ({"gtin_prefixes": ["12"]}, "gtin_prefixes"),
    ({"valid_from": "2024-02-30"}, "valid_from"),
    ({"valid_until": "2023-01-01"}, "valid_until"),
    ({"holder": "Not An Id"}, "holder"),
    ({"issuer_name_en": "x" * 201}, "issuer_name_en"),
])
def test_certificate_fields_are_checked(cast, change, fld):
    assert field_refusal(lambda: issue_cert(cast, **change)).field == fld


@pytest.mark.parametrize("cert", ["ccc/1", "CCC", "CCC/", "CCC/has space", "TOOLONGSCHEMENAME17/1", "CCC/" + "9" * 65])
def test_certificate_ids_are_checked(cast, cert):
    payload = {"reason": "r"}
    assert field_refusal(lambda: cast.event("cqc", "certificate", cert, "CertificateRevoked", payload)).field == "subject"


def test_suspension_until_is_a_date(cast):
    assert field_refusal(lambda: move(cast, "CertificateSuspended", until="soon")).field == "until"


# ---------------------------------------------------------------- certifier role, profiles


def test_a_certifier_names_its_schemes_and_nobody_else_has_any(cast):
    base = {"role": "certifier", "name": "CQC", "public_key": bytes(32), "gtin_prefixes": []}
    assert field_refusal(lambda: cast.event("registrar", "actor", "cqc2", "ActorRegistered", base)).field == "schemes"
    assert field_refusal(lambda: cast.event("registrar", "actor", "p2", "ActorRegistered", base | {"role": "producer", "schemes": ["CCC"]})).field == "schemes"
    assert field_refusal(lambda: cast.event("registrar", "actor", "cqc2", "ActorRegistered", base | {"schemes": ["ccc"]})).field == "schemes"
    assert field_refusal(lambda: cast.event("registrar", "actor", "cqc2", "ActorRegistered", base | {"schemes": ["CCC", "CCC"]})).field == "schemes"


def test_registration_folds_the_schemes(cast):
    signed = cast.register("cqc")
    state = fold(None, signed.event, signed.hash)
    assert state.schemes == ("CCC",) and state.role == "certifier"


def profile(**kw):
    return {"name_zh": "艾克美电池", "name_en": "Acme Batteries", "hotline": "+86 400-123-4567", "website": "https://acme.example.cn",
            "gln": "6901234000009", "pgln": None} | kw


def test_the_actor_itself_or_the_registrar_changes_its_profile(cast):
    registration = cast.register("acme")
    state = fold(None, registration.event, registration.hash)
    for signer in ("acme", "registrar"):
        signed = cast.event(signer, "actor", "acme", "ActorProfileChanged", profile(), seq=1, prev=state.head, advance=False)
        assert run(cast, signed, state).seq == 1
    signed = cast.event("other-producer", "actor", "acme", "ActorProfileChanged", profile(), seq=1, prev=state.head, advance=False)
    assert refused(cast, signed, state).code == "not_authorized"


@pytest.mark.parametrize("change, fld", [
    ({"gln": "6901234000005"}, "gln"),  # wrong check digit
    ({"gln": "６901234000009"}, "gln"),  # a full-width digit
    ({"pgln": "690123400000"}, "pgln"),
    ({"hotline": "call us"}, "hotline"),
    ({"hotline": "1"}, "hotline"),
    ({"website": "http://acme.example.cn"}, "website"),
    ({"website": "javascript:alert(1)"}, "website"),
    ({"name_zh": "x" * 201}, "name_zh"),
    ({"name_en": "a\nb"}, "name_en"),
])
def test_profile_fields_are_checked(cast, change, fld):
    assert field_refusal(lambda: cast.event("acme", "actor", "acme", "ActorProfileChanged", profile(**change), seq=1, prev=b"\x01" * 32)).field == fld
    register = {"role": "producer", "name": "Acme", "public_key": bytes(32), "gtin_prefixes": ["6901234"]} | profile(**change)
    assert field_refusal(lambda: cast.event("registrar", "actor", "acme2", "ActorRegistered", register)).field == fld


# ---------------------------------------------------------------- products and quality commitments


def described(**kw):
    return {"name_zh": "48V 电动自行车电池", "name_en": "48V e-bike battery", "brand_zh": "艾克美", "brand_en": "Acme",
            "image_sha256": hashlib.sha256(b"png").digest(), "image_url": "https://acme.example.cn/a1.png",
            "authorised_sellers": [{"name_zh": "深圳车行", "name_en": None, "region": "440305"}]} | kw


def test_the_gtin_owner_describes_its_product_and_commits_to_its_quality(cast):
    g = gtin()
    s = run(cast, cast.event("acme", "product", g, "ProductDescribed", described()), None)
    assert (s.gtin, s.producer) == (g, "acme")
    s = run(cast, cast.event("acme", "product", g, "QualityCommitted", {"text_zh": "质量承诺", "text_en": None, "standard": "GB/T 36972-2018", "valid_until": None}), s)
    assert s.seq == 1
    decoded = event_codec().decode(cast.event("acme", "product", g, "ProductDescribed", described(), advance=False).body)["payload"][1]
    assert decoded["authorised_sellers"][0] == {"name_zh": "深圳车行", "name_en": None, "region": "440305"}


def test_another_producer_cannot_describe_a_gtin_it_does_not_own(cast):
    for signer in ("other-producer", "retailer"):
        assert refused(cast, cast.event(signer, "product", gtin(), "ProductDescribed", described(), advance=False), None).code == "not_authorized"


def test_a_quality_commitment_on_a_lot_needs_the_lot(cast):
    lot = f"{gtin()}/L1"
    commitment = {"text_zh": "质量承诺", "text_en": None, "standard": None, "valid_until": "2027-12-31"}
    assert refused(cast, cast.event("acme", "lot", lot, "QualityCommitted", commitment, advance=False), None).code == "unknown_subject"
    s = run(cast, cast.event("acme", "lot", lot, "LotCommissioned", {"product": "cells", "certificates": [], "region": None}), None)
    s = run(cast, cast.event("acme", "lot", lot, "QualityCommitted", commitment), s)
    assert s.seq == 1 and s.product == "cells"


@pytest.mark.parametrize("change, fld", [
    ({"name_zh": ""}, "name_zh"),
    ({"image_sha256": b"short"}, "image_sha256"),
    ({"image_url": "ftp://x.example/a.png"}, "image_url"),
    ({"authorised_sellers": [{"name_zh": "s", "name_en": None, "region": None}] * 51}, "authorised_sellers"),
    ({"authorised_sellers": [{"name_zh": "", "name_en": None, "region": None}]}, "authorised_sellers.name_zh"),
    ({"authorised_sellers": [{"name_zh": "s", "name_en": None, "region": "Guangdong"}]}, "authorised_sellers.region"),
])
def test_product_fields_are_checked(cast, change, fld):
    assert field_refusal(lambda: cast.event("acme", "product", gtin(), "ProductDescribed", described(**change))).field == fld


def test_a_product_subject_is_a_gtin_14(cast):
    assert field_refusal(lambda: cast.event("acme", "product", "12345", "ProductDescribed", described())).field == "subject"


@pytest.mark.parametrize("change, fld", [
    ({"text_zh": "x" * 1001}, "text_zh"),
    ({"standard": "x" * 101}, "standard"),
    ({"valid_until": "2027-13-01"}, "valid_until"),
])
def test_quality_commitment_fields_are_checked(cast, change, fld):
    payload = {"text_zh": "质量承诺", "text_en": None, "standard": None, "valid_until": None} | change
    assert field_refusal(lambda: cast.event("acme", "product", gtin(), "QualityCommitted", payload)).field == fld


# ---------------------------------------------------------------- labels link certificates, dates, recalls


def test_a_label_links_its_producers_valid_certificates(cast):
    certs = {CERT: run(cast, issue_cert(cast), None)}
    lookup = lambda t, s: certs.get(s) if t == "certificate" else None  # noqa: E731
    actors = {a: cast.actor_state(a) for a in cast.ROLES}.get

    def check(signed):
        e = signed.event
        authorize(None, e, signer_of(e, actors), actors, lookup)

    check(cast.event("acme", "label", "S1", "Issued", issued_payload() | {"certificates": [CERT], "production_date": "2026-01-05"}))
    with pytest.raises(Refused) as err:
        check(cast.event("acme", "label", "S2", "Issued", issued_payload() | {"certificates": ["CCC/404"]}))
    assert (err.value.code, err.value.field) == ("unknown_subject", "certificates")
    # another producer's certificate is not this producer's to show
    certs["CCC/77"] = replace(certs[CERT], cert_id="CCC/77", holder="other-producer")
    with pytest.raises(Refused) as err:
        check(cast.event("acme", "label", "S3", "Issued", issued_payload() | {"certificates": ["CCC/77"]}))
    assert err.value.code == "not_authorized"
    certs[CERT] = replace(certs[CERT], status="revoked")
    with pytest.raises(Refused) as err:
        check(cast.event("acme", "label", "S4", "Issued", issued_payload() | {"certificates": [CERT]}))
    assert err.value.code == "invalid_transition"


@pytest.mark.parametrize("change, fld", [
    ({"certificates": ["CCC/1"] * 2}, "certificates"),
    ({"certificates": [f"CCC/{i}" for i in range(21)]}, "certificates"),
    ({"certificates": ["not a certificate"]}, "certificates"),
    ({"production_date": "2026-02-30"}, "production_date"),
    ({"production_date": "2027-01-01", "expiry": "2026-12-31"}, "production_date"),
])
def test_issued_v4_fields_are_checked(cast, change, fld):
    assert field_refusal(lambda: cast.event("acme", "label", "S1", "Issued", issued_payload() | change)).field == fld


def test_lot_production_date_is_a_date(cast):
    payload = {"product": "cells", "certificates": [], "region": None, "production_date": "yesterday"}
    assert field_refusal(lambda: cast.event("acme", "lot", f"{gtin()}/L1", "LotCommissioned", payload)).field == "production_date"


def notice(**kw):
    return {"reason": "cells overheat", "hazard_zh": "电池过热", "hazard_en": "cells overheat", "remedy": "replace",
            "remedy_text_zh": "免费更换", "remedy_text_en": "free replacement", "hotline": "400-123-4567",
            "notice_url": "https://www.samr.gov.cn/zhgl/recall/1", "recall_id": "SAMR-2026-001"} | kw


def test_a_recall_carries_what_a_consumer_can_act_on(cast):
    s = run(cast, cast.issue("S1"), None)
    signed = cast.event("acme", "label", "S1", "Recalled", notice())
    assert run(cast, signed, s).recalled
    decoded = event_codec().decode(signed.body)["payload"][1]
    assert (decoded["remedy"], decoded["recall_id"]) == ("replace", "SAMR-2026-001")


@pytest.mark.parametrize("change, fld", [
    ({"remedy": "pray"}, "remedy"),
    ({"hotline": "twelve"}, "hotline"),
    ({"notice_url": "www.samr.gov.cn"}, "notice_url"),
    ({"hazard_zh": "x" * 501}, "hazard_zh"),
    ({"recall_id": "x" * 65}, "recall_id"),
])
def test_recall_notice_fields_are_checked(cast, change, fld):
    assert field_refusal(lambda: cast.event("acme", "label", "S1", "Recalled", notice(**change), seq=1, prev=b"\x01" * 32)).field == fld


def test_the_auditors_replay_accepts_certificates_products_and_linked_labels(cast):
    replay = Replay()
    g = gtin()
    log = cast.founding_events() + [
        issue_cert(cast),
        cast.event("acme", "product", g, "ProductDescribed", described()),
        cast.event("acme", "label", "S1", "Issued", issued_payload() | {"certificates": [CERT], "production_date": "2026-01-05"}),
        move(cast, "CertificateSuspended"),
        cast.event("acme", "actor", "acme", "ActorProfileChanged", profile()),
    ]
    for index, signed in enumerate(log):
        replay.apply(signed, index)
    assert replay.states[("certificate", CERT)].status == "suspended"
    with pytest.raises(Refused) as err:  # the auditor sees the link to an unknown certificate too
        replay.apply(cast.event("acme", "label", "S2", "Issued", issued_payload() | {"certificates": ["CCC/404"]}), len(log))
    assert err.value.field == "certificates"


def test_epcis_export_skips_kinds_without_an_epcis_form(cast):
    from ledger import epcis

    lot = f"{gtin()}/L1"
    commissioned = cast.event("acme", "lot", lot, "LotCommissioned", {"product": "cells", "certificates": [], "region": None})
    committed = cast.event("acme", "lot", lot, "QualityCommitted", {"text_zh": "质量承诺", "text_en": None, "standard": None, "valid_until": None})
    assert epcis.group_events([commissioned, committed]) == [[commissioned]]
