"""`traceledger issue` against the real API: streaming batches, and stopping
at the first refused batch (the batch signed meanwhile is never sent)."""

from __future__ import annotations

import base64
import csv
import json

import httpx
import psycopg

from tests.pipeline import project_all, relay_all
from tests.test_demo_e2e import cli


def test_issue_streams_batches_stops_at_a_refusal_and_batch_labels_answer(api, tmp_path):
    url, cast, settings = api["url"], api["cast"], api["settings"]
    events = cast.founding_events()
    r = httpx.post(f"{url}/v1/events", json={"events": [{"body": base64.b64encode(s.body).decode(), "signature": base64.b64encode(s.signature).decode()} for s in events]})
    assert r.json()["refused"] == 0
    key = tmp_path / "acme.key"
    cast.keys["acme"].save(key)

    out = tmp_path / "labels.csv"
    ok = cli(settings, "--json", "issue", "--key", str(key), "--gtin", "06901234000016", "--lot", "L1",
             "--product", "Battery", "--count", "2500", "--batch", "1000", "--out", str(out))
    with open(out) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2500 and len({r["serial"] for r in rows}) == 2500
    assert json.loads(ok.stdout)["accepted"] == 2500

    # A GTIN outside acme's prefixes: the first batch is refused and issuing stops there.
    bad = cli(settings, "--json", "issue", "--key", str(key), "--gtin", "06909876000012", "--lot", "L1",
              "--product", "Cable", "--count", "3000", "--batch", "1000", "--out", str(tmp_path / "bad.csv"), check=False)
    assert bad.returncode == 2
    assert json.loads(bad.stdout)["refused"] == 1000  # one batch sent, not three
    assert not (tmp_path / "bad.csv").exists(), "a CSV row (or file) for a refused batch"
    with psycopg.connect(settings.pg_conninfo) as conn:
        issued = conn.execute("SELECT count(*) FROM ledger_events WHERE topic LIKE %s", ("%Started%",)).fetchone()[0]
        heads = conn.execute("SELECT count(*) FROM label_heads").fetchone()[0]
    assert issued == 3 + len(events)  # batch events (event.v3): one signed event per 1,000 labels
    assert heads == 2500

    # --single-events keeps the one-event-per-label path.
    single = cli(settings, "--json", "issue", "--key", str(key), "--gtin", "06901234000016", "--lot", "L2", "--single-events",
                 "--product", "Battery", "--count", "30", "--batch", "20", "--out", str(tmp_path / "single.csv"))
    assert json.loads(single.stdout)["accepted"] == 30
    with psycopg.connect(settings.pg_conninfo) as conn:
        issued = conn.execute("SELECT count(*) FROM ledger_events WHERE topic LIKE %s", ("%Started%",)).fetchone()[0]
    assert issued == 3 + len(events) + 30

    # Batch labels with PINs, through relay and projector: genuine, and the PIN checks online.
    out = tmp_path / "pins.csv"
    ok = cli(settings, "--json", "issue", "--key", str(key), "--gtin", "06901234000016", "--lot", "P1", "--pins",
             "--product", "Battery", "--count", "1500", "--batch", "1000", "--out", str(out))
    assert json.loads(ok.stdout)["accepted"] == 1500
    with open(out) as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1500 and all(len(r["pin"]) == 8 for r in rows)
    relay_all(settings)
    project_all(settings)
    label = rows[1234]
    answer = httpx.get(f"{url}/v1/labels/{label['serial']}").json()
    assert answer["verdict"] == "genuine" and answer["pin_protected"] is True, answer
    wrong = "0" * 8 if label["pin"] != "0" * 8 else "1" * 8
    assert httpx.post(f"{url}/v1/labels/{label['serial']}/pin", json={"pin": wrong}).json()["pin_result"] == "wrong"
    assert httpx.post(f"{url}/v1/labels/{label['serial']}/pin", json={"pin": label["pin"]}).json()["pin_result"] == "first_use"
