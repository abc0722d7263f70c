"""Consumer channels onto the ledger, and who sees what.

Through the real pipeline (API subprocess with its gateway worker → write
model → relay → Kafka → verification projector, and the auditor from Kafka
alone): reports of suspected fakes become signed ``ReportedFake`` events, PIN
checks become scans carrying ``pin_result``. Then privacy: the public views
show places and dates only; the full trail answers the label's producer and
regulators, nobody else.
"""

from __future__ import annotations

import hashlib
import json

import httpx
import psycopg
import pytest
from click.testing import CliRunner

from consumers.auditor import Auditor
from consumers.checkpointer import load_or_create_log_key
from ledger.channel_state import REPORT_REASON
from ledger.events import SignedEvent
from projections.verification import read_view
from tests.conftest import wait_for
from tests.consumer_world import world  # noqa: F401  (module-scoped fixture)
from tests.pipeline import topic_records
from traceledger.auth import authorization_header
from traceledger.cli import cli

JSON = {"accept": "application/json"}
BROWSER = {"accept": "text/html,application/xhtml+xml"}


def link(w, serial: str) -> str:
    return f"{w.url}/01/{w.gtin}/21/{serial}"


def head_seq(w, serial: str) -> int:
    h = httpx.post(f"{w.url}/v1/heads", json={"subjects": [{"type": "label", "subject": serial}]}).json()["heads"][serial]
    return h["seq"] if h else -1


def kafka_events(w, serial: str | None = None) -> tuple[list, list[bytes]]:
    """(decoded events of ``serial`` on the label topic, every raw record value on it)."""
    records = topic_records(w.settings, w.settings.label_topic)
    mine = [SignedEvent.from_envelope(r.value).event for r in records if serial is None or r.key == serial.encode()]
    return sorted(mine, key=lambda e: (e.subject, e.seq)), [r.value for r in records]


def signed_get(w, path: str, actor: str | None) -> httpx.Response:
    headers = {"authorization": authorization_header(w.cast.keys[actor], "GET", path)} if actor else {}
    return httpx.get(w.url + path, headers=headers)


# ---------------------------------------------------------------- reports


def test_reports_become_signed_reportedfake_events_on_kafka(world, tmp_path):
    serial = world.labels["genuine0"]  # issued and shipped: seq 0, 1
    page = httpx.post(link(world, serial), data={"action": "report", "lang": "en", "place": "Market", "price": "35"}, headers=BROWSER,
                      follow_redirects=True)
    assert page.status_code == 200 and 'id="reported"' in page.text
    note = "  bought at a market stall, call me on 13800138000  "
    api = httpx.post(f"{world.url}/v1/labels/{serial}/reports", json={"note": note})
    assert api.status_code == 201 and api.json()["on_ledger"] is True and api.json()["event_id"]
    unknown = httpx.post(f"{world.url}/v1/labels/NEVERISSUED7/reports", json={})
    assert unknown.status_code == 201 and unknown.json()["on_ledger"] is False and "never issued" in unknown.json()["detail"]
    for bad in ({"note": "x" * 501}, {"note": "a\x00b"}):
        r = httpx.post(f"{world.url}/v1/labels/{serial}/reports", json=bad)
        assert r.status_code in (400, 422) and r.headers["content-type"].startswith("application/problem+json")

    wait_for(lambda: head_seq(world, serial) == 3, 30, what="both reports to be signed onto the chain")
    world.sync()
    events, values = kafka_events(world, serial)
    reports = [e for e in events if e.kind == "ReportedFake"]
    assert [e.payload["channel"] for e in reports] == ["web", "api"] and reports[1].event_id == api.json()["event_id"]
    assert all(e.actor == "gateway" and e.payload["reason"] == REPORT_REASON for e in reports)
    # A per-label pseudonym of the client (not the address, not linkable to its other labels): one client, one session.
    assert all(e.payload["session"].startswith("c:") for e in reports) and len({e.payload["session"] for e in reports}) == 1
    # The consumer's free text is for regulators' eyes in the report table, never on the permanent ledger.
    assert not any(b"13800138000" in v or b"market stall" in v for v in values)
    assert not any(e.subject == "NEVERISSUED7" for e in kafka_events(world)[0])

    with psycopg.connect(world.settings.pg_conninfo) as conn:
        # The verification projector re-verified and applied them (nothing quarantined).
        view = read_view(conn, serial)
        assert [t["kind"] for t in view["trail"]] == ["Issued", "Shipped", "ReportedFake", "ReportedFake"]
        assert conn.execute("SELECT count(*) FROM verification.quarantine").fetchone()[0] == 0
        kept = conn.execute("SELECT serial, note, event_id FROM consumer_reports WHERE serial IN (%s, 'NEVERISSUED7') ORDER BY id", (serial,)).fetchall()
    assert [(r[0], r[1]) for r in kept] == [(serial, None), (serial, note.strip()), ("NEVERISSUED7", None)]

    # A regulator's auditor re-verifies every event, reports included, from Kafka and public keys alone.
    report = Auditor(world.settings, load_or_create_log_key(world.settings.log_key_path).public_key, state_path=tmp_path / "audit.state").run()
    assert report.ok, [f.line() for f in report.failures]

    # The regulator's view lists the reports, on the chain or not.
    full = signed_get(world, f"/v1/labels/{serial}/trail", "regulator").json()
    assert [r["on_ledger"] for r in full["reports"]] == [True, True] and full["reports"][1]["note"] == note.strip()
    assert [t["kind"] for t in full["trail"]][-2:] == ["ReportedFake", "ReportedFake"]
    assert full["trail"][-2]["details"]["session_hash"] == full["trail"][-1]["details"]["session_hash"]
    never = signed_get(world, "/v1/labels/NEVERISSUED7/trail", "regulator").json()
    assert never["verdict"] == "unknown" and never["trail"] == [] and [r["on_ledger"] for r in never["reports"]] == [False]


# ---------------------------------------------------------------- PIN outcomes


def test_pin_outcomes_travel_with_the_scans_on_kafka(world):
    serial = world.labels["pin0"]
    pin = world.pins[serial]
    wrong = "00000000" if pin != "00000000" else "11111111"
    assert httpx.post(f"{world.url}/v1/labels/{serial}/pin", json={"pin": wrong}).json()["pin_result"] == "wrong"
    assert httpx.post(f"{world.url}/v1/labels/{serial}/pin", json={"pin": pin}).json()["pin_result"] == "first_use"
    page = httpx.post(link(world, serial), data={"action": "pin", "pin": pin}, headers=BROWSER, follow_redirects=True)
    assert 'data-verdict="pin_used"' in page.text
    sms = httpx.post(f"{world.url}/v1/channels/sms", data={"from": "+8613900000001", "text": f"{serial} {pin}"})
    assert sms.text.startswith("【防伪查询】警告：此防伪码已于")
    malformed = httpx.post(f"{world.url}/v1/labels/{serial}/pin", json={"pin": "12"})
    assert malformed.status_code == 400  # checked nothing: no scan

    wait_for(lambda: head_seq(world, serial) == 4, 30, what="four PIN scans to be signed onto the chain")
    world.sync()
    events, values = kafka_events(world, serial)
    scans = [(e.payload["channel"], e.payload["pin_result"]) for e in events if e.kind == "Scanned"]
    assert scans == [("app", "wrong"), ("app", "first_use"), ("web", "reused"), ("sms", "reused")]
    assert not any(pin.encode() in v for v in values)  # the PIN itself never travels
    with psycopg.connect(world.settings.pg_conninfo) as conn:
        assert read_view(conn, serial)["scan_count"] == 4


def test_rate_limited_pin_tries_record_nothing(world):
    serial = world.labels["pin1"]
    wrong = "00000000" if world.pins[serial] != "00000000" else "11111111"
    statuses = [httpx.post(f"{world.url}/v1/labels/{serial}/pin", json={"pin": wrong}).status_code for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    with psycopg.connect(world.settings.pg_conninfo) as conn:
        results = [r[0] for r in conn.execute("SELECT pin_result FROM scan_inbox WHERE serial = %s ORDER BY id", (serial,))]
    assert results == ["wrong"] * 5


# ---------------------------------------------------------------- privacy


PUBLIC_KEYS = {"serial", "short_code", "verdict", "reasons", "scan_count", "first_scanned_at", "product", "producer", "gtin",
               "lot", "expiry", "pin_protected", "uri", "trail", "problems", "reason_codes", "producer_names", "hotline"}


def test_public_views_show_only_what_a_consumer_needs(world):
    serial = world.labels["genuine1"]  # shipped to "distributor"
    scan = httpx.post(f"{world.url}/v1/labels/{serial}/scans", json={"channel": "app", "region": "440305", "lat": 22.5431,
                                                                     "lon": 113.9344, "session": "someone-elses-phone"})
    assert scan.status_code == 200 and set(scan.json()) == PUBLIC_KEYS | {"scan_id"}
    wait_for(lambda: head_seq(world, serial) == 2, 30, what="the scan on the chain")
    world.sync()
    answers = {
        "label": httpx.get(f"{world.url}/v1/labels/{serial}"),
        "resolver": httpx.get(link(world, serial), headers=JSON),
        "page": httpx.get(link(world, serial), headers=BROWSER),
    }
    for name, r in answers.items():
        assert r.status_code == 200, name
        for private in ("distributor", "custodian", "consignee", "someone-elses-phone", "gateway", '"lat"', '"lon"'):
            assert private not in r.text, (name, private)
    label = answers["label"].json()
    assert set(label) == PUBLIC_KEYS and label["producer"] == "Acme" and label["scan_count"] == 1
    assert label["trail"] == [
        {"event": "Issued", "place": {"code": "4403", "zh": "广东深圳", "en": "Shenzhen, Guangdong"}, "date": label["trail"][0]["date"]},
        {"event": "Shipped", "place": None, "date": label["trail"][1]["date"]},
    ]
    assert set(answers["resolver"].json()) == PUBLIC_KEYS | {"display"}
    assert "Shenzhen" in httpx.get(link(world, serial) + "?lang=en", headers=BROWSER).text


# ---------------------------------------------------------------- the full trail


def test_full_trail_for_the_labels_producer_and_regulators_only(world):
    serial = world.labels["genuine2"]
    httpx.post(f"{world.url}/v1/labels/{serial}/scans", json={"channel": "shelf", "region": "440305", "session": "phone-xyz"})
    wait_for(lambda: head_seq(world, serial) == 2, 30, what="the scan on the chain")
    path = f"/v1/labels/{serial}/trail"

    unsigned = signed_get(world, path, None)
    assert unsigned.status_code == 401 and unsigned.json()["code"] == "unauthenticated" and unsigned.headers["www-authenticate"]
    elsewhere = httpx.get(world.url + path, headers={"authorization": authorization_header(world.cast.keys["acme"], "GET", "/v1/alerts")})
    assert elsewhere.status_code == 401  # a signature for another request
    for outsider in ("other-producer", "distributor", "retailer", "gateway"):
        r = signed_get(world, path, outsider)
        assert r.status_code == 403 and r.json()["code"] == "forbidden", outsider
    assert signed_get(world, "/v1/labels/NEVERISSUED8/trail", "acme").status_code == 403  # not a label of acme's

    for reader in ("acme", "regulator"):
        r = signed_get(world, path, reader)
        assert r.status_code == 200, r.text
        full = r.json()
        assert [t["kind"] for t in full["trail"]] == ["Issued", "Shipped", "Scanned"]
        issued, shipped, scanned = full["trail"]
        assert (issued["actor"], shipped["actor"], scanned["actor"]) == ("acme", "acme", "gateway")
        assert shipped["details"]["consignee"] == "distributor" and shipped["details"]["territory"] == "44"
        assert issued["biz_step"] == "commissioning" and len(scanned["event_id"]) == 36 and len(scanned["hash"]) == 64
        assert issued["details"]["pin_protected"] is False and "pin_hash" not in issued["details"]
        assert scanned["details"]["channel"] == "shelf"
        # The session the client sent is its claim, kept off the ledger: the gateway signs its own per-label pseudonym.
        assert scanned["details"]["session_hash"] != hashlib.sha256(b"phone-xyz").hexdigest()[:16]
        assert "phone-xyz" not in r.text and full["custodian"] == "acme"


def test_cli_label_trail_signs_with_a_key_file(world, tmp_path):
    serial = world.labels["genuine3"]
    for actor in ("acme", "other-producer"):
        world.cast.keys[actor].save(tmp_path / f"{actor}.key")
    ok = CliRunner().invoke(cli, ["label", "trail", serial, "--key", str(tmp_path / "acme.key"), "--api", world.url, "--json"])
    assert ok.exit_code == 0, ok.output
    assert [t["kind"] for t in json.loads(ok.output)["trail"]][:2] == ["Issued", "Shipped"]
    text = CliRunner().invoke(cli, ["label", "trail", serial, "--key", str(tmp_path / "acme.key"), "--api", world.url])
    assert text.exit_code == 0 and "Shipped" in text.output and "consignee=distributor" in text.output
    denied = CliRunner().invoke(cli, ["label", "trail", serial, "--key", str(tmp_path / "other-producer.key"), "--api", world.url])
    assert denied.exit_code == 2 and "forbidden" in denied.output


@pytest.mark.parametrize("serial", ["A" * 21, "x';DROP TABLE labels;--"])
def test_trail_bad_serial_is_a_clear_refusal(world, serial):
    from urllib.parse import quote

    path = f"/v1/labels/{quote(serial, safe='')}/trail"
    r = httpx.get(world.url + path, headers={"authorization": authorization_header(world.cast.keys["regulator"], "GET", f"/v1/labels/{serial}/trail")})
    assert r.status_code == 400 and r.json()["field"] == "serial"


# ---------------------------------------------------------------- the phone line's audio


def wav_seconds(data: bytes) -> float:
    """The length of a telephone WAV: 8 kHz 16-bit mono, and a header that states the file's true sizes."""
    import io
    import wave

    with wave.open(io.BytesIO(data)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2 and w.getframerate() == 8000
        frames = w.getnframes()
    assert int.from_bytes(data[4:8], "little") == len(data) - 8  # RIFF size: the whole file, not ~2 GB
    assert data[36:40] == b"data" and int.from_bytes(data[40:44], "little") == 2 * frames == len(data) - 44
    return frames / 8000


def longest_pause(data: bytes) -> float:
    """The longest stretch of near-silence inside the speech (seconds), leading and trailing silence left out."""
    import array

    samples = array.array("h", data[44:])
    loud = [i for i, v in enumerate(samples) if abs(v) > 300]
    gap = max((b - a for a, b in zip(loud, loud[1:])), default=0)
    return gap / 8000


def test_voice_prompts_as_wav_audio(world):
    def voice(call_id, **data):
        r = httpx.post(f"{world.url}/v1/channels/voice", data={"call_id": call_id, "from": "+8613700000000", **data})
        assert r.status_code == 200, r.text
        return r.json()

    welcome = voice("audio-1")
    assert welcome["audio"] == "/v1/channels/voice/audio?call_id=audio-1"
    zh = httpx.get(world.url + welcome["audio"])
    assert zh.status_code == 200 and zh.headers["content-type"] == "audio/wav" and zh.content.startswith(b"RIFF")
    assert wav_seconds(zh.content) > 3  # the whole Chinese welcome, not a click
    assert longest_pause(zh.content) >= 0.45  # a pause between the welcome's two phrases
    retry = voice("audio-1", digits="1234#")  # a short code: the prompt changes, so does the audio
    assert "位数不对" in retry["prompt"]
    again = httpx.get(world.url + retry["audio"])
    assert again.status_code == 200 and again.content != zh.content
    en = httpx.get(world.url + voice("audio-2", lang="en")["audio"])
    assert en.status_code == 200 and en.content != zh.content and wav_seconds(en.content) > 1
    missing = httpx.get(f"{world.url}/v1/channels/voice/audio", params={"call_id": "no-such-call"})
    assert missing.status_code == 404 and missing.json()["field"] == "call_id"
    for bad in ("", "x" * 65, "a b", "😀"):
        r = httpx.get(f"{world.url}/v1/channels/voice/audio", params={"call_id": bad})
        assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")


def test_trail_of_a_tampered_chain_says_so(world):
    from ledger.store import chain_id
    from tests.test_audit_tamper import _edit_stored_body

    serial = world.labels["genuine5"]  # Issued (version 1), Shipped (version 2)
    with psycopg.connect(world.settings.pg_conninfo, autocommit=True) as conn:
        _edit_stored_body(conn, chain_id("label", serial), 2, lambda body: body[:-7])  # no longer decodes
    r = signed_get(world, f"/v1/labels/{serial}/trail", "regulator")
    assert r.status_code == 200 and [t["kind"] for t in r.json()["trail"]] == ["Issued"]
    assert r.json()["verdict"] == "suspicious" and "stored event 1" in r.json()["integrity"]
    # The consumer's read is not re-hashed per request: the API's integrity sweep flags the label within a pass.
    wait_for(lambda: httpx.get(link(world, serial), headers=JSON).json()["verdict"] != "genuine", timeout=30)
    public = httpx.get(link(world, serial), headers=JSON).json()
    assert public["verdict"] == "suspicious" and public["integrity"]  # the consumer is never told "genuine"
