"""``traceledger audit``: the regulator's commands.

- ``audit run``: re-verify everything new on Kafka (``consumers.auditor``); exit 2 on any failure.
- ``audit verify-bundle FILE``: verify a label's proof bundle offline (``ledger.transparency.bundle``).
- ``audit checkpoint``: print the latest checkpoint this auditor verified, to exchange with
  another auditor; ``audit compare NOTE_FILE`` checks someone else's against ours (split view).
- ``audit public``: the public auditor, with no credentials at all
  (``ledger.transparency.public_audit``): checkpoint signatures, the root from every leaf
  hash, consistency between checkpoints, ``--bundle FILE`` (a label's public bundle,
  offline) and ``--compare NOTE_FILE`` (split view).

The log's public key is trusted from ``--log-key`` (a ``.pub`` key file or a note verifier
key string), by default ``<log key>.pub`` of this installation.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ledger.errors import Refused
from ledger.keys import key_id_of, load_public_key
from ledger.transparency.checkpoints import CheckpointError, parse_checkpoint, parse_verifier_key
from traceledger.cli.base import LedgerGroup, State, common_options, emit, pass_state


def load_log_public_key(path: str | Path) -> bytes:
    """Raw Ed25519 public key from a traceledger ``.pub`` file, a private key file or a verifier key string."""
    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        raise Refused("invalid_key_file", f"cannot read log key {path}: {exc.strerror}", field="log_key") from None
    try:
        data = json.loads(text)
        return bytes.fromhex(data["public_key"])
    except (ValueError, KeyError, TypeError):
        pass
    try:
        return parse_verifier_key(text)[1]
    except CheckpointError as exc:
        raise Refused("invalid_key_file", f"{path}: neither a key file nor a verifier key ({exc})", field="log_key") from None


def _log_key(state: State, log_key: str | None) -> bytes:
    return load_log_public_key(log_key or f"{state.settings.log_key_path}.pub")


log_key_option = click.option("--log-key", "log_key", metavar="FILE", help="The log's public key (.pub or verifier key); default <log key>.pub.")
state_option = click.option("--state", "state_file", metavar="FILE", type=click.Path(dir_okay=False), help="Audit state file (default under the run dir).")


@click.group(cls=LedgerGroup)
def audit() -> None:
    """Regulators' audit of the global Merkle log (Kafka and public keys only)."""


@audit.command("run")
@log_key_option
@state_option
@click.option("--proofs-from", "proofs_from", metavar="URL", help="Also require the log server at URL to prove each new checkpoint consistent with the previous one.")
@click.option("--registrar-key", "registrar_key", metavar="FILE", help="Pin the founding registrar's public key (.pub): a history founded by any other key fails.")
@common_options
@pass_state
def audit_run(state: State, log_key: str | None, state_file: str | None, proofs_from: str | None, registrar_key: str | None) -> None:
    """Verify every new record, chain, signature, authority and checkpoint; exit 2 on any failure."""
    from consumers.auditor import Auditor
    from ledger.logging_setup import configure

    configure("WARNING")
    anchor = key_id_of(load_public_key(registrar_key)) if registrar_key else None
    auditor = Auditor(state.settings, _log_key(state, log_key), state_path=Path(state_file) if state_file else None,
                      api_url=proofs_from, registrar_key_id=anchor)
    report = auditor.run() if state.json or not sys.stderr.isatty() else _run_with_bar(auditor)
    data = report.as_dict()
    if state.json:
        click.echo(json.dumps(data, default=str))
    else:
        for f in report.failures:
            click.echo(f.line(), err=True)
        if report.earlier_failures:
            click.echo(f"FAIL {report.earlier_failures} failures found by earlier runs stay recorded in {auditor.state_path}", err=True)
        click.echo(_summary_line(report.ok, data), err=not report.ok)
    if not report.ok:
        raise click.exceptions.Exit(2)


def _run_with_bar(auditor):
    """Run the audit with a progress bar on stderr, drawn once the auditor knows how many records are new."""
    holder = {}

    def on_total(n: int) -> None:
        holder["bar"] = click.progressbar(length=max(n, 1), label="audit", file=sys.stderr)
        holder["bar"].__enter__()

    report = auditor.run(on_progress=lambda n: holder["bar"].update(n) if "bar" in holder else None, on_total=on_total)
    if "bar" in holder:
        holder["bar"].__exit__(None, None, None)
    return report


def _summary_line(ok: bool, data: dict) -> str:
    cp = data["latest_checkpoint"]
    return (f"audit {'ok' if ok else 'FAILED'}: {data['new_events']} new events ({data['events']} in all), "
            f"{data['labels']} labels, {data['checkpoints']} checkpoints verified"
            + (f" (latest size {cp['size']} root {cp['root'][:16]}…)" if cp else "")
            + f", {data['waiting_records']} records wait for the next checkpoint, {data['seconds']} s"
            + (f", {data['events_per_second']} events/s" if data["events_per_second"] else ""))


@audit.command("verify-bundle")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@log_key_option
@common_options
@pass_state
def audit_verify_bundle(state: State, file: str, log_key: str | None) -> None:
    """Verify a label's proof bundle offline: checkpoint signature, inclusion proofs, signatures, chain."""
    from ledger.transparency.bundle import BundleError, verify_bundle

    try:
        bundle = json.loads(Path(file).read_text())
    except (OSError, ValueError) as exc:
        raise Refused("invalid_bundle", f"{file}: not a JSON bundle ({exc})", field="file") from None
    try:
        result = verify_bundle(bundle, _log_key(state, log_key), origin=state.settings.log_origin)
    except BundleError as exc:
        raise Refused("bundle_invalid", f"{file}: {exc}", field="bundle") from None
    data = result.as_dict()
    emit(state, {"ok": True, **data},
         f"bundle ok: {result.serial}, {len(result.events)} events proven in log of size {result.checkpoint.size} "
         f"(root {result.checkpoint.root.hex()[:16]}…), status {data['status']}"
         + (", recalled" if data["recalled"] else "") + (", flagged counterfeit" if data["counterfeit"] else ""))


@audit.command("checkpoint")
@state_option
@common_options
@pass_state
def audit_checkpoint(state: State, state_file: str | None) -> None:
    """Print the latest checkpoint note this auditor verified (to give to another auditor)."""
    from consumers.auditor import AuditState, default_state_path

    st = AuditState.load(Path(state_file) if state_file else default_state_path(state.settings))
    if st is None or st.latest is None:
        raise Refused("no_checkpoint", "this auditor has not verified a checkpoint yet; run `traceledger audit run`", field="state")
    emit(state, st.latest.as_dict(), st.latest.note.rstrip("\n"))


@audit.command("compare")
@click.argument("note_file", type=click.Path(exists=True, dir_okay=False))
@log_key_option
@state_option
@click.option("--proofs-from", "proofs_from", metavar="URL", help="Log server to ask for a consistency proof when sizes differ.")
@common_options
@pass_state
def audit_compare(state: State, note_file: str, log_key: str | None, state_file: str | None, proofs_from: str | None) -> None:
    """Check another auditor's checkpoint against ours: a signed different root for one history is a split view."""
    import httpx

    from consumers.auditor import AuditState, default_state_path
    from ledger.transparency import proofs

    key = _log_key(state, log_key)
    try:
        theirs = parse_checkpoint(Path(note_file).read_text(), key, origin=state.settings.log_origin)
    except CheckpointError as exc:
        raise Refused("bad_checkpoint", f"{note_file}: {exc}", field="note") from None
    st = AuditState.load(Path(state_file) if state_file else default_state_path(state.settings))
    if st is None or st.latest is None:
        raise Refused("no_checkpoint", "this auditor has not verified a checkpoint yet", field="state")
    ours = st.latest
    if theirs.size in st.roots:
        if st.roots[theirs.size] != theirs.root:
            raise Refused("split_view", f"the log signed two different roots for size {theirs.size}: a split view", field="note")
        emit(state, {"ok": True, "size": theirs.size}, f"consistent: we verified the same root for size {theirs.size}")
        return
    if not proofs_from:
        raise Refused("need_proof", f"sizes differ (ours {ours.size}, theirs {theirs.size}); pass --proofs-from URL for a consistency proof", field="proofs_from")
    old, new = (ours, theirs) if ours.size < theirs.size else (theirs, ours)
    r = httpx.get(f"{proofs_from.rstrip('/')}/v1/log/proof/consistency", params={"from": old.size, "to": new.size}, timeout=30)
    r.raise_for_status()
    try:
        proofs.verify_consistency(old.size, new.size, old.root, new.root, [bytes.fromhex(h) for h in r.json()["hashes"]])
    except proofs.ProofError as exc:
        raise Refused("split_view", f"checkpoints {old.size} and {new.size} are not consistent: {exc}", field="note") from None
    emit(state, {"ok": True, "from": old.size, "to": new.size}, f"consistent: size {new.size} extends size {old.size}")


def _public_get(api: str, path: str, **params) -> dict:
    """One unsigned GET of the public log API; a failure is an ``ApiUnavailable`` (exit 1) or a refusal (exit 2)."""
    import httpx

    from traceledger.client import ApiUnavailable, problem_to_refused

    url = f"{api.rstrip('/')}{path}"
    try:
        r = httpx.get(url, params=params, timeout=60)
    except httpx.HTTPError as exc:
        raise ApiUnavailable(url, f"{type(exc).__name__}: {exc}") from None
    if 400 <= r.status_code < 500:
        raise problem_to_refused(r.status_code, r.json() if r.headers.get("content-type", "").endswith("json") else None)
    if r.status_code >= 300:
        raise ApiUnavailable(url, f"HTTP {r.status_code}")
    return r.json()


def _public_leaves(api: str, start: int, end: int):
    """Leaf hashes ``start..end-1`` from the public entries (pages of 1000), in order."""
    for page in range(start, end, 1000):
        entries = _public_get(api, "/v1/log/entries", start=page, end=min(page + 1000, end))["entries"]
        for want, entry in enumerate(entries, start=page):
            if entry.get("index") != want:
                raise Refused("missing_leaves", f"the log served entry {entry.get('index')} where {want} belongs", field="entries")
            yield bytes.fromhex(entry["leaf_hash"])


def _public_consistency(api: str, first: int, second: int) -> list[bytes]:
    return [bytes.fromhex(h) for h in _public_get(api, "/v1/log/proof/consistency", **{"from": first, "to": second})["hashes"]]


@audit.command("public")
@log_key_option
@click.option("--state", "state_file", metavar="FILE", type=click.Path(dir_okay=False), help="Public audit state file (default under the run dir).")
@click.option("--bundle", "bundle_file", metavar="FILE", type=click.Path(exists=True, dir_okay=False), help="Only verify this public label bundle, offline.")
@click.option("--compare", "note_file", metavar="NOTE_FILE", type=click.Path(exists=True, dir_okay=False), help="Also check another reader's checkpoint note (split view).")
@common_options
@pass_state
def audit_public(state: State, log_key: str | None, state_file: str | None, bundle_file: str | None, note_file: str | None) -> None:
    """Audit the log with no credentials: checkpoint signatures, roots from leaf hashes, consistency; exit 2 on any failure."""
    from ledger.transparency import public_audit as pa

    key, origin = _log_key(state, log_key), state.settings.log_origin
    try:
        if bundle_file:
            try:
                bundle = json.loads(Path(bundle_file).read_text())
            except (OSError, ValueError) as exc:
                raise Refused("invalid_bundle", f"{bundle_file}: not a JSON bundle ({exc})", field="file") from None
            result = pa.verify_public_bundle(bundle, key, origin=origin)
            emit(state, {"ok": True, **result.as_dict()}, f"public bundle ok: {result.serial}, {len(result.indexes)} leaves proven in log of size "
                 f"{result.checkpoint.size} (root {result.checkpoint.root.hex()[:16]}…)")
            return
        path = Path(state_file) if state_file else state.settings.run_dir / "public-audit.json"
        st = pa.PublicAuditState.from_json(json.loads(path.read_text()), key, origin) if path.exists() else pa.PublicAuditState()
        api = state.settings.api_url
        cp = pa.checked_checkpoint(_public_get(api, "/v1/log/checkpoint")["note"], key, origin)
        old = st.latest
        proof = _public_consistency(api, old.size, cp.size) if old is not None and 0 < old.size < cp.size else None
        hashed = pa.advance(st, cp, _public_leaves(api, st.tree.size, cp.size), proof)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(st.to_json()))
        lines = [f"public audit ok: checkpoint {cp.size} (root {cp.root.hex()[:16]}…) signed by the log key, "
                 f"{hashed} new leaf hashes make its root" + (f", consistent with checkpoint {old.size}" if proof is not None else "")]
        data = {"ok": True, "size": cp.size, "root": cp.root.hex(), "new_leaves": hashed, "note": cp.note}
        if note_file:
            theirs = pa.checked_checkpoint(Path(note_file).read_text(), key, origin)
            sizes = sorted((theirs.size, cp.size))
            lines.append(pa.compare(st, theirs, None if theirs.size in st.roots else _public_consistency(api, *sizes)))
            data["compare"] = lines[-1]
        emit(state, data, "\n".join(lines))
    except pa.PublicAuditError as exc:
        raise Refused(exc.code, str(exc), field="log") from None


COMMANDS = (audit,)
