"""``traceledger epcis export|capture``: GS1 EPCIS 2.0 (JSON-LD) documents.

``export`` writes the selected history as one document; ``capture`` submits a
document of traceledger-signed events (all or nothing) and shows the capture job.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ledger.errors import Refused
from traceledger.cli.base import LedgerGroup, State, common_options, emit, pass_state, reader_key, reader_options


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
@common_options
@pass_state
def epcis_capture(state: State, path) -> None:
    """Capture an EPCIS 2.0 document of traceledger-signed events (all or nothing)."""
    try:
        doc = json.loads(Path(path).read_text())
    except ValueError as exc:
        raise Refused("invalid_json", f"{path} is not JSON: {exc}", field="path") from None
    answer = state.client().epcis_capture(doc)
    job = state.client().capture_job(answer["captureID"])
    emit(state, job, f"capture {job['captureID']}: {answer['events']} events, success={job['success']}")


COMMANDS = (epcis,)
