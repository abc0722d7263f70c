"""The auditor on a genuine log, the log API and offline proof bundles (real Kafka + PostgreSQL)."""

from __future__ import annotations

import base64
import json

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from ledger.transparency import merkle, proofs
from ledger.transparency.bundle import BundleError, verify_bundle
from tests.audit_world import make_world
from tests.helpers import append_accepted
from traceledger.api import create_app
from traceledger.auth import authorization_header
from traceledger.cli import cli


@pytest.fixture
def world(fresh_settings, tmp_path):
    w = make_world(fresh_settings, tmp_path)
    yield w
    w.ledger.close()


def test_a_genuine_log_audits_clean_and_a_second_run_only_checks_what_is_new(world):
    first = world.audit()
    n = 7 + 40 + 2 * 13
    assert first.ok, [f.line() for f in first.failures]
    assert (first.new_events, first.state.labels, first.state.tree.size) == (n, 40, n)
    assert first.state.latest.size == n and first.new_checkpoints >= 3  # every 25 events, and the last
    again = world.audit()
    assert again.ok and again.new_events == 0 and again.new_checkpoints == 0
    append_accepted(world.ledger, [world.cast.issue() for _ in range(10)])
    world.relay()
    third = world.audit()
    assert third.ok and third.new_events == 10 and third.state.latest.size == n + 10


def test_audit_cli_prints_a_summary_and_json(world):
    env = world.settings.to_env()
    args = ["audit", "run", "--log-key", f"{world.settings.log_key}.pub", "--state", str(world.state_path)]
    out = CliRunner().invoke(cli, args, env=env)
    assert out.exit_code == 0, out.output
    assert "audit ok: 73 new events" in out.output and "40 labels" in out.output
    out = CliRunner().invoke(cli, args + ["--json"], env=env)
    assert json.loads(out.output)["ok"] is True


def test_log_api_serves_checkpoint_entries_and_proofs_that_verify(world):
    with TestClient(create_app(world.settings)) as client:
        cp = client.get("/v1/log/checkpoint").json()
        n, root = cp["size"], bytes.fromhex(cp["root"])
        assert n == 73 and cp["key_id"] == world.log_key.key_id and cp["note"].startswith(world.settings.log_origin + "\n73\n")
        target = f"/v1/log/entries?start=0&end={n}"  # event bytes: a signed request by a regulator (issue 14)
        entries = client.get(target, headers={"authorization": authorization_header(world.cast.keys["regulator"], "GET", target)}).json()["entries"]
        leaves = [base64.b64decode(e["value"]) for e in entries]
        assert merkle.root_of(leaves) == root
        assert entries[10]["serial"] and entries[10]["leaf_hash"] == merkle.leaf_hash(leaves[10]).hex()
        for i in (0, 31, n - 1):
            p = client.get("/v1/log/proof/inclusion", params={"index": i, "size": n}).json()
            proofs.verify_inclusion(i, n, merkle.leaf_hash(leaves[i]), [bytes.fromhex(h) for h in p["hashes"]], root)
        c = client.get("/v1/log/proof/consistency", params={"from": 30, "to": n}).json()
        proofs.verify_consistency(30, n, merkle.root_of(leaves[:30]), root, [bytes.fromhex(h) for h in c["hashes"]])
        for path, params, field in [
            ("/v1/log/proof/inclusion", {"index": n, "size": n}, "index"),
            ("/v1/log/proof/inclusion", {"index": 0, "size": n + 1}, "size"),
            ("/v1/log/proof/consistency", {"from": 5, "to": 4}, "from"),
            ("/v1/log/proof/consistency", {"from": 1, "to": n + 1}, "to"),
            ("/v1/log/entries", {"start": 5, "end": 5}, "end"),
        ]:
            r = client.get(path, params=params)
            assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json", (path, r.text)
            assert r.json()["field"] == field
        assert client.get("/v1/log/proof/inclusion", params={"index": -1, "size": 3}).status_code == 422


def test_label_bundle_verifies_offline_and_detects_edits(world, tmp_path):
    serial = world.serials[0]  # issued, shipped, received
    with TestClient(create_app(world.settings)) as client:
        target = f"/v1/labels/{serial}/proof"  # the whole bundle: the label's producer (or a regulator)
        bundle = client.get(target, headers={"authorization": authorization_header(world.cast.keys["acme"], "GET", target)}).json()
        assert client.get("/v1/labels/NEVERISSUED1/proof").status_code == 404
    result = verify_bundle(bundle, world.log_key.public_key, origin=world.settings.log_origin)
    assert [e["kind"] for e in result.events] == ["Issued", "Shipped", "Received"]
    assert result.label.custodian == "distributor"
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    out = CliRunner().invoke(cli, ["audit", "verify-bundle", str(path), "--log-key", f"{world.settings.log_key}.pub"], env=world.settings.to_env())
    assert out.exit_code == 0 and "bundle ok" in out.output, out.output

    forged = json.loads(json.dumps(bundle))
    label_entry = next(e for e in forged["entries"] if e["serial"] == serial and e["seq"] == 1)
    raw = bytearray(base64.b64decode(label_entry["value"]))
    raw[-70] ^= 1  # one bit of the signature
    label_entry["value"] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(BundleError, match="leaf hash"):
        verify_bundle(forged, world.log_key.public_key)
    label_entry["leaf_hash"] = merkle.leaf_hash(bytes(raw)).hex()
    with pytest.raises(BundleError, match="inclusion proof"):
        verify_bundle(forged, world.log_key.public_key)
    path.write_text(json.dumps(forged))
    out = CliRunner().invoke(cli, ["audit", "verify-bundle", str(path), "--log-key", f"{world.settings.log_key}.pub"], env=world.settings.to_env())
    assert out.exit_code == 2 and "inclusion proof" in out.output
    other_key = tmp_path / "other.key"
    from ledger.keys import KeyPair

    KeyPair.generate().save(other_key)
    with pytest.raises(BundleError, match="checkpoint"):
        verify_bundle(bundle, KeyPair.load(other_key).public_key)


def test_a_pinned_registrar_key_refuses_a_history_founded_by_another(world, tmp_path):
    """An auditor given the registrar's public key cannot be handed a whole
    forged history signed by a registrar of the operator's making."""
    from ledger.keys import KeyPair

    env = world.settings.to_env()
    base = ["audit", "run", "--log-key", f"{world.settings.log_key}.pub"]
    genuine = tmp_path / "registrar.key"
    world.cast.keys["registrar"].save(genuine)
    out = CliRunner().invoke(cli, base + ["--state", str(tmp_path / "a.state"), "--registrar-key", f"{genuine}.pub"], env=env)
    assert out.exit_code == 0, out.output

    other = tmp_path / "other.key"
    KeyPair.generate("registrar").save(other)
    out = CliRunner().invoke(cli, base + ["--state", str(tmp_path / "b.state"), "--registrar-key", f"{other}.pub"], env=env)
    assert out.exit_code == 2
    assert "untrusted_registrar" in out.output and "log_index=0" in out.output


def test_two_auditors_exchanging_checkpoints_detect_a_split_view(world, tmp_path):
    """Auditor B hands auditor A the checkpoint it was shown. The same signed
    root agrees; a log-signed different root for the same size is a split view."""
    from ledger.transparency.checkpoints import sign_checkpoint

    env = world.settings.to_env()
    key_args = ["--log-key", f"{world.settings.log_key}.pub", "--state", str(world.state_path)]
    assert CliRunner().invoke(cli, ["audit", "run", *key_args], env=env).exit_code == 0
    shown = CliRunner().invoke(cli, ["audit", "checkpoint", "--state", str(world.state_path)], env=env)
    assert shown.exit_code == 0
    same = tmp_path / "same.note"
    same.write_text(shown.output)
    out = CliRunner().invoke(cli, ["audit", "compare", str(same), *key_args], env=env)
    assert out.exit_code == 0 and "consistent" in out.output, out.output

    latest = world.audit().state.latest
    forked = sign_checkpoint(world.log_key, world.settings.log_origin, latest.size, bytes(32))  # what B was shown
    fork = tmp_path / "fork.note"
    fork.write_text(forked.note)
    out = CliRunner().invoke(cli, ["audit", "compare", str(fork), *key_args], env=env)
    assert out.exit_code == 2 and "split_view" in out.output, out.output
