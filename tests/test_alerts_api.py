"""Simulated traffic through the real API -> relay -> Kafka -> detector; alerts over HTTP and the CLI."""

from __future__ import annotations

import json

import httpx
import psycopg
from click.testing import CliRunner

from ledger.service import Ledger
from tests.alerts_world import detect_all
from tests.conftest import wait_for
from tests.pipeline import relay_all
from traceledger.cli import cli
from traceledger.simulate import read_truth, score, simulate

# Kinds whose every injected case the rules can see. Diversions seen only as
# "somewhere in the province" and far clones slow enough to be a flight are
# missed on purpose (see BEHAVIOURS), so their recall is measured, not asserted.
ALWAYS_SEEN = ("diversion_channel", "clone_overscan", "recalled_scan", "counterfeit_scan", "scan_before_ship", "unknown_code")


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

    # Ground truth vs alerts.
    meta, truth = read_truth(tmp_path / "sim" / "truth.jsonl")
    assert meta["seed"] == 7
    body = httpx.get(f"{url}/v1/alerts", params={"limit": 1000}).json()
    scores = score(truth, body["alerts"])
    for kind, s in scores.items():
        assert s["precision"] == 1.0, (kind, s)
    for kind in ALWAYS_SEEN:
        assert scores[kind]["recall"] == 1.0, (kind, scores[kind])
    assert scores["diversion_territory"]["recall"] > 0.6 and scores["clone_impossible_travel"]["recall"] > 0

    # Filters, pages, one alert with its evidence, the summary.
    alerts = body["alerts"]
    first = httpx.get(f"{url}/v1/alerts", params={"limit": 5}).json()
    second = httpx.get(f"{url}/v1/alerts", params={"limit": 5, "cursor": first["next_cursor"]}).json()
    assert [a["id"] for a in first["alerts"] + second["alerts"]] == [a["id"] for a in alerts[:10]]
    recalled = httpx.get(f"{url}/v1/alerts", params={"kind": "recalled_scan"}).json()["alerts"]
    assert recalled and all(a["kind"] == "recalled_scan" for a in recalled)
    one = httpx.get(f"{url}/v1/alerts", params={"serial": recalled[0]["serial"], "state": "open"}).json()["alerts"]
    assert [a["id"] for a in one] == [recalled[0]["id"]]
    shown = httpx.get(f"{url}/v1/alerts/{recalled[0]['id']}").json()
    assert [e["kind"] for e in shown["evidence_events"]] == ["Scanned"] and shown["producer"] in ("acme-batteries", "zhejiang-cables")
    unknown = httpx.get(f"{url}/v1/alerts", params={"kind": "unknown_code"}).json()["alerts"][0]
    assert len(httpx.get(f"{url}/v1/alerts/{unknown['id']}").json()["evidence_events"]) == unknown["sightings"]
    in_44 = httpx.get(f"{url}/v1/alerts", params={"region": "44", "limit": 1000}).json()["alerts"]
    assert all(a["region"].startswith("44") for a in in_44)
    summary = httpx.get(f"{url}/v1/alerts/summary").json()
    assert summary["total"] == len(alerts) and sum(summary["by_kind"].values()) == len(alerts)
    assert sum(r["total"] for r in summary["by_region"]) == len(alerts) and summary["series"]
    assert httpx.get(f"{url}/v1/alerts/999999").status_code == 404
    bad = httpx.get(f"{url}/v1/alerts", params={"kind": "nonsense"})
    assert bad.status_code == 400 and bad.json()["field"] == "kind"

    # The CLI, same answers.
    runner = CliRunner()
    out = runner.invoke(cli, ["alerts", "list", "--kind", "recalled_scan", "--json", "--api", url])
    assert out.exit_code == 0, out.output
    assert [a["id"] for a in json.loads(out.output)["alerts"]] == [a["id"] for a in recalled]
    out = runner.invoke(cli, ["alerts", "show", str(recalled[0]["id"]), "--api", url])
    assert out.exit_code == 0 and "recalled_scan" in out.output and "evidence:" in out.output
    out = runner.invoke(cli, ["alerts", "summary", "--api", url])
    assert out.exit_code == 0 and f"{len(alerts)} alerts" in out.output
    out = runner.invoke(cli, ["alerts", "report", "--truth", str(tmp_path / "sim" / "truth.jsonl"), "--json", "--api", url])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["scores"] == scores
    out = runner.invoke(cli, ["alerts", "show", "999999", "--api", url])
    assert out.exit_code == 2 and "there is no alert 999999" in out.output
