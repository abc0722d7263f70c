"""Simulated traffic through the real API -> relay -> Kafka -> detector; alerts over HTTP and the CLI, signed."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import psycopg
from click.testing import CliRunner

from ledger.keys import KeyPair
from ledger.service import Ledger
from tests.alerts_world import detect_all, signed_get
from tests.conftest import wait_for
from tests.pipeline import relay_all
from traceledger.cli import cli
from traceledger.simulate import read_truth, score, simulate

# Kinds whose every injected case the rules can see. Diversions seen only as
# "somewhere in the province" are missed on purpose (see BEHAVIOURS), so their
# recall is measured, not asserted.
ALWAYS_SEEN = ("diversion_channel", "clone_impossible_travel", "clone_overscan", "recalled_scan", "counterfeit_scan",
               "scan_before_ship", "unknown_code", "pin_reuse")
SVG = "{http://www.w3.org/2000/svg}"


def inbox_recorded(settings) -> bool:
    ledger = Ledger(settings)
    try:
        with psycopg.connect(settings.pg_conninfo) as conn:
            (last,) = conn.execute("SELECT coalesce(max(id), 0) FROM scan_inbox").fetchone()
        return (ledger.app.recorder.max_tracking_id("scan_inbox") or 0) >= last
    finally:
        ledger.close()


def test_simulated_incidents_become_alerts_served_by_the_api_and_cli(api, tmp_path):
    settings, url = api["settings"], api["url"]
    lines = []
    result = simulate(settings, seed=7, labels=600, out=tmp_path / "sim", demo_dir=tmp_path / "demo", echo=lines.append)
    assert result["events"] > 600 and result["api_scans"] > 0
    wait_for(lambda: inbox_recorded(settings), 60, what="the gateway to record the API scans")
    relay_all(settings)
    detector = detect_all(settings)
    assert detector.consumer.quarantined == 0
    keys = tmp_path / "demo" / "keys"
    regulator, acme, retailer = (KeyPair.load(keys / f"{name}.key") for name in ("regulator", "producer", "retailer"))

    def get(path, key=regulator, **params):
        return signed_get(url, key, path, **params)

    # Ground truth vs alerts (a regulator sees them all).
    meta, truth = read_truth(tmp_path / "sim" / "truth.jsonl")
    assert meta["seed"] == 7
    answer = get("/v1/alerts", limit=1000)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    scores = score(truth, body["alerts"])
    for kind, s in scores.items():
        assert s["precision"] == 1.0, (kind, s)
    for kind in ALWAYS_SEEN:
        assert scores[kind]["recall"] == 1.0, (kind, scores[kind])
    assert scores["diversion_territory"]["recall"] > 0.6
    # The legitimate PIN users (first use, the same phone checking again) raised nothing.
    assert "pin_checked" in {t["behaviour"] for t in truth}
    assert not any("pin_checked" in s["false_alarms_by_behaviour"] for s in scores.values())

    # Who sees what: unsigned 401, a producer its own labels' alerts only, other roles 403.
    alerts = body["alerts"]
    for path in ("/v1/alerts", "/v1/alerts/summary", "/v1/alerts/summary.svg", f"/v1/alerts/{alerts[0]['id']}"):
        r = get(path, key=None)
        assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json", (path, r.text)
        assert get(path, key=retailer).status_code == 403, path
    own = get("/v1/alerts", key=acme, limit=1000).json()["alerts"]
    assert own and sorted(a["id"] for a in own) == sorted(a["id"] for a in alerts if a["producer"] == "acme-batteries")
    assert get("/v1/alerts", key=acme, producer="zhejiang-cables").status_code == 403
    theirs = next(a for a in alerts if a["producer"] == "zhejiang-cables")
    assert get(f"/v1/alerts/{theirs['id']}", key=acme).status_code == 403
    unknown = next(a for a in alerts if a["kind"] == "unknown_code")
    assert get(f"/v1/alerts/{unknown['id']}", key=acme).status_code == 403  # no producer: regulators only
    mine = get("/v1/alerts/summary", key=acme).json()
    assert mine["total"] == len(own) and "unknown_code" not in mine["by_kind"]

    # Filters, pages, one alert with its evidence, the summary.
    first = get("/v1/alerts", limit=5).json()
    assert first["next_cursor"] is not None, first
    second = get("/v1/alerts", limit=5, cursor=first["next_cursor"]).json()
    assert [a["id"] for a in first["alerts"] + second["alerts"]] == [a["id"] for a in alerts[:10]]
    recalled = get("/v1/alerts", kind="recalled_scan").json()["alerts"]
    assert recalled and all(a["kind"] == "recalled_scan" for a in recalled)
    one = get("/v1/alerts", serial=recalled[0]["serial"], state="open").json()["alerts"]
    assert [a["id"] for a in one] == [recalled[0]["id"]]
    shown = get(f"/v1/alerts/{recalled[0]['id']}").json()
    assert [e["kind"] for e in shown["evidence_events"]] == ["Scanned"] and shown["producer"] in ("acme-batteries", "zhejiang-cables")
    assert shown["transitions"] == [] and shown["state"] == "open"
    assert len(get(f"/v1/alerts/{unknown['id']}").json()["evidence_events"]) == unknown["sightings"]
    in_44 = get("/v1/alerts", region="44", limit=1000).json()["alerts"]
    assert all(a["region"].startswith("44") for a in in_44)
    summary = get("/v1/alerts/summary").json()
    assert summary["total"] == len(alerts) and sum(summary["by_kind"].values()) == len(alerts)
    assert sum(r["total"] for r in summary["by_region"]) == len(alerts) and summary["series"]
    missing = get("/v1/alerts/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_alert"
    assert get("/v1/alerts/12345").status_code == 422
    bad = get("/v1/alerts", kind="nonsense")
    assert bad.status_code == 400 and bad.json()["field"] == "kind"

    # The chart: an SVG document whose legend and columns reflect the counts.
    chart = get("/v1/alerts/summary.svg")
    assert chart.status_code == 200 and chart.headers["content-type"].startswith("image/svg+xml")
    root = ET.fromstring(chart.text)
    assert root.tag == f"{SVG}svg" and not root.findall(f".//{SVG}script") and "href" not in chart.text
    texts = [t.text for t in root.iter(f"{SVG}text")]
    for kind, n in summary["by_kind"].items():
        assert f"{kind} {n}" in texts, (kind, n)
    assert f"{summary['total']} alerts · per day · by province" in texts
    columns = [r.find(f"{SVG}title").text for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None and ": " in r.find(f"{SVG}title").text]
    by_column: dict[str, int] = {}
    for title in columns:
        label, _, rest = title.partition(": ")
        count, _, kind = rest.partition(" ")
        if kind in summary["by_kind"] and label[:2].isdigit() and "-" in label:
            by_column[kind] = by_column.get(kind, 0) + int(count)
    assert by_column == summary["by_kind"]  # the time columns add up to the totals
    assert "Alerts of acme-batteries" in get("/v1/alerts/summary.svg", key=acme).text

    # The CLI, same answers, signed with --key.
    runner = CliRunner()
    reg = ["--key", str(keys / "regulator.key"), "--api", url]
    out = runner.invoke(cli, ["alerts", "list", "--kind", "recalled_scan", "--json"] + reg)
    assert out.exit_code == 0, out.output
    assert [a["id"] for a in json.loads(out.output)["alerts"]] == [a["id"] for a in recalled]
    out = runner.invoke(cli, ["alerts", "show", recalled[0]["id"]] + reg)
    assert out.exit_code == 0 and "recalled_scan" in out.output and "evidence:" in out.output
    out = runner.invoke(cli, ["alerts", "summary"] + reg)
    assert out.exit_code == 0 and f"{len(alerts)} alerts" in out.output
    # A query string with escaped characters is signed as sent ('+' and ':' percent-encoded).
    out = runner.invoke(cli, ["alerts", "list", "--all", "--json", "--since", "2000-01-01T00:00:00+00:00"] + reg)
    assert out.exit_code == 0, out.output
    assert len(json.loads(out.output)["alerts"]) == len(alerts)
    out = runner.invoke(cli, ["alerts", "chart", "--out", str(tmp_path / "alerts.svg")] + reg)
    assert out.exit_code == 0, out.output
    assert ET.parse(tmp_path / "alerts.svg").getroot().tag == f"{SVG}svg"
    out = runner.invoke(cli, ["alerts", "report", "--truth", str(tmp_path / "sim" / "truth.jsonl"), "--json"] + reg)
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["scores"] == scores
    out = runner.invoke(cli, ["alerts", "show", "00000000-0000-4000-8000-000000000000"] + reg)
    assert out.exit_code == 2 and "there is no alert 00000000-0000-4000-8000-000000000000" in out.output
    out = runner.invoke(cli, ["alerts", "list", "--key", str(keys / "retailer.key"), "--api", url])
    assert out.exit_code == 2 and "[forbidden]" in out.output
