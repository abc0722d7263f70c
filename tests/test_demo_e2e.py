"""The demo scenario end to end: the CLI, the HTTP API, the relay and the
projector as real processes on real Kafka and PostgreSQL."""

from __future__ import annotations

import csv
import json
import os
import stat
import subprocess
import sys

from ledger.config import REPO_ROOT
from ledger.keys import KeyPair
from tests.conftest import free_port, wait_for_api


def cli(settings, *args, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACELEDGER_")} | settings.to_env()
    proc = subprocess.run([sys.executable, "-m", "traceledger.cli", *args], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_demo_scenario_through_cli_and_api(settings, services, tmp_path):
    demo_dir = tmp_path / "demo"
    (demo_dir / "keys").mkdir(parents=True)
    KeyPair.generate("gateway").save(demo_dir / "keys" / "gateway.key")
    port = free_port()
    s = settings.with_(listen_port=port, api_url=f"http://127.0.0.1:{port}", gateway_key=demo_dir / "keys" / "gateway.key")
    services("consumers.relay", s)
    services("consumers.projector", s)
    wait_for_api(services("traceledger.api", s), s.api_url)

    out = json.loads(cli(s, "--json", "demo", "--labels", "200", "--out-dir", str(demo_dir)).stdout)

    # Keys by role, private ones 0600; labels.csv with the columns a printer needs.
    for role in ("registrar", "producer", "distributor", "retailer", "regulator", "gateway"):
        key = demo_dir / "keys" / f"{role}.key"
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, role
    with open(demo_dir / "labels.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {"serial", "gtin", "lot", "uri"} <= set(rows[0])
    assert len(rows) >= 200 and len({r["serial"] for r in rows}) == len(rows)
    assert all(r["uri"].endswith(f"/01/{r['gtin']}/21/{r['serial']}") for r in rows)

    def verdict(serial):
        return json.loads(cli(s, "--json", "verify", serial).stdout)["verdict"]

    assert verdict(out["genuine"]) == "genuine"
    assert verdict(out["recalled"]) == "recalled"
    assert verdict(out["counterfeit"]) == "counterfeit"
    assert cli(s, "verify", "NOSUCHSERIAL1").returncode == 0  # unknown is an answer, not an error
    # The public view has places and dates only; the producer's signed request gets the full trail.
    public = json.loads(cli(s, "--json", "verify", out["genuine"]).stdout)
    assert "custodian" not in public and all(set(step) == {"event", "place", "date"} for step in public["trail"])
    full = json.loads(cli(s, "--json", "label", "trail", out["genuine"], "--key", str(demo_dir / "keys" / "producer.key")).stdout)
    assert full["trail"][0]["kind"] == "Issued" and full["trail"][0]["actor"] == "acme-batteries"
    denied = cli(s, "label", "trail", out["genuine"], "--key", str(demo_dir / "keys" / "distributor.key"), check=False)
    assert denied.returncode == 2 and "forbidden" in denied.stderr

    # A user carries on by hand with the demo's keys: ship one more label on.
    ship = cli(s, "--json", "ship", "--key", str(demo_dir / "keys" / "distributor.key"), "--to", "sz-retail",
               "--territory", "4403", "--channel", "offline_retail", out["at_distributor"])
    assert json.loads(ship.stdout)["accepted"] == 1
    # The same command again is refused with exit 2 and a reason naming what is wrong.
    again = cli(s, "ship", "--key", str(demo_dir / "keys" / "distributor.key"), "--to", "sz-retail",
                "--territory", "4403", "--channel", "offline_retail", out["at_distributor"], check=False)
    assert again.returncode == 2 and "invalid_transition" in again.stderr + again.stdout

    # Running the demo again works (idempotent set-up).
    cli(s, "demo", "--labels", "20", "--out-dir", str(demo_dir))

