"""``traceledger epcis export|capture``: GS1 EPCIS 2.0 (JSON-LD) documents.

``export`` writes the selected history as one document; ``capture DOC --key``
maps a standard EPCIS document to ledger events, signs them with the actor's key
here and submits them event by event (:mod:`traceledger.cli.epcis_capture`);
``capture`` without a key submits a document of traceledger-signed events (all
or nothing); ``jobs`` lists capture jobs.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ledger.epcis_capture import MAX_DOCUMENT_BYTES, Defaults
from ledger.errors import Refused
from traceledger.cli.base import LedgerGroup, State, common_options, emit, pass_state, reader_key, reader_options
from traceledger.cli.epcis_capture import capture_standard
from traceledger.commands import Signer


@click.group(cls=LedgerGroup)
@common_options
def epcis() -> None:
    """GS1 EPCIS 2.0 (JSON-LD) export and capture."""


@epcis.command("export")
@click.option("--serial")
@click.option("--lot", "lot_key", metavar="GTIN/LOT")
@click.option("--container", "box", metavar="SSCC")
@click.option("--since", metavar="ISO-TIME")
@click.option("--until", metavar="ISO-TIME")
@click.option("--out", default="-", show_default=True, type=click.Path(dir_okay=False, allow_dash=True))
@reader_options("Private key file signing the request: a history needs a regulator or the subject's producer; the log, what the key may read.")
@common_options
@pass_state
def epcis_export(state: State, serial, lot_key, box, since, until, out, key: str, as_actor: str | None) -> None:
    """Export a label's, lot's or container's history, or a time range, as an EPCIS 2.0 document (a signed request)."""
    doc = state.client().epcis_events(reader_key(key, as_actor), serial=serial, lot=lot_key, container=box, since=since, until=until)
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    if out == "-":
        click.echo(text)
    else:
        Path(out).write_text(text + "\n")
        click.echo(f"{len(doc['epcisBody']['eventList'])} EPCIS events written to {out}", err=True)


@epcis.command("capture")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--key", type=click.Path(dir_okay=False), help="Sign a standard EPCIS document's events with this key (client-side).")
@click.option("--as", "as_actor", metavar="ACTOR_ID", help="Actor the key belongs to (default: the key file's actor).")
@click.option("--consignee", metavar="ACTOR_ID", help="Who a shipping event without an owning_party destination ships to.")
@click.option("--territory", metavar="REGION", help="Authorized territory of shipping events (EPCIS has no field for it).")
@click.option("--channel", metavar="CHANNEL", help="Authorized channel of shipping events (EPCIS has no field for it).")
@common_options
@pass_state
def epcis_capture(state: State, path, key, as_actor, consignee, territory, channel) -> None:
    """Capture an EPCIS 2.0 document.

    With --key: an ordinary EPCIS document, mapped to ledger events and signed here with the
    actor's key, event by event (each accepted or refused with its reason; exit 2 if any is
    refused). Without: a document of traceledger-signed events (an export), all or nothing.
    """
    if key is None:
        capture_signed_export(state, path)
        return
    if Path(path).stat().st_size > MAX_DOCUMENT_BYTES:
        raise Refused("CaptureLimitExceededException", f"{path} is larger than {MAX_DOCUMENT_BYTES} bytes", field="path")
    signer = Signer.load(key, as_actor)
    defaults = Defaults(consignee=consignee, territory=territory, channel=channel, party_host=state.settings.resolver_host)
    job = capture_standard(state.client(), signer, Path(path).read_bytes(), defaults)
    results = job.get("results") or []
    refused = [r for r in results if r["status"] == "refused"]
    emit(state, job, f"capture {job['captureID']}: {len(results)} EPCIS events, {len(results) - len(refused)} accepted, {len(refused)} refused")
    for r in refused:
        click.echo(f"refused: event {r['index']} ({r['eventID'][:60]}): {r['detail']} [{r['code']}]", err=True)
    if refused:
        raise click.exceptions.Exit(2)


def capture_signed_export(state: State, path) -> None:
    """Capture a document of traceledger-signed events (all or nothing) and show the job."""
    try:
        doc = json.loads(Path(path).read_text())
    except ValueError as exc:
        raise Refused("invalid_json", f"{path} is not JSON: {exc}", field="path") from None
    answer = state.client().epcis_capture(doc)
    job = state.client().capture_job(answer["captureID"])
    emit(state, job, f"capture {job['captureID']}: {answer['events']} events, success={job['success']}")


@epcis.command("jobs")
@reader_options("Key of the actor whose capture jobs to list (a regulator sees all).")
@click.option("--limit", default=30, show_default=True, type=click.IntRange(1, 500))
@common_options
@pass_state
def epcis_jobs(state: State, key, as_actor, limit) -> None:
    """List capture jobs, newest first."""
    jobs = state.client().capture_jobs(reader_key(key, as_actor), limit)
    lines = [f"{j['captureID']}  {j['createdAt']}  {j.get('actor') or '-'}  events={j['events']}  success={j['success']}" for j in jobs]
    emit(state, {"jobs": jobs}, "\n".join(lines) or "no capture jobs")


COMMANDS = (epcis,)
