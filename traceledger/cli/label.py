"""``traceledger label``: what a label's producer and regulators may read about it.

- ``label trail SERIAL --key FILE``: the label's full trail (actors, event ids,
  details, consumer reports) from ``GET /v1/labels/{serial}/trail``, the
  request signed with the key file's actor (the label's producer or a
  regulator; anyone else is refused, exit 2).

The public view (``traceledger verify``) shows places and dates only.
"""

from __future__ import annotations

import click

from ledger import gs1
from traceledger.cli.base import LedgerGroup, State, common_options, emit, pass_state, reader_key, reader_options


@click.group(cls=LedgerGroup)
@common_options
def label() -> None:
    """Read a label's full trail (its producer or a regulator)."""


@label.command("trail")
@click.argument("serial")
@reader_options("Private key file of the producer or regulator asking.")
@common_options
@pass_state
def trail(state: State, serial: str, key: str, as_actor: str | None) -> None:
    """Show every event on a label's chain and every consumer report about it."""
    gs1.validate_serial(serial)
    answer = state.client().label_trail(serial, reader_key(key, as_actor))
    emit(state, answer, format_trail(answer))


def format_trail(answer: dict) -> str:
    """The human form of a full trail: a summary line, one line per event, then the reports."""
    lines = [f"{answer.get('verdict', '?')}  {answer.get('serial')}  {answer.get('product') or ''}  producer {answer.get('producer') or '-'}"
             f"  lot {answer.get('lot') or '-'}  custodian {answer.get('custodian') or '-'}  scans {answer.get('scan_count', 0)}"]
    for step in answer.get("trail") or []:
        details = " ".join(f"{k}={v}" for k, v in step.get("details", {}).items())
        lines.append(f"  {step['seq']:>3}  {step['at']}  {step['kind']:<18} {step['actor']:<20} {step['event_id']}  {details}".rstrip())
    reports = answer.get("reports") or []
    if reports:
        lines.append(f"  reports ({len(reports)})")
        for r in reports:
            where = "on ledger" if r.get("on_ledger") else "not on a chain"
            lines.append(f"    #{r['report_id']}  {r['at']}  {r['channel']:<5} client {r.get('client_hash')}  {where}  {r.get('note') or ''}".rstrip())
    return "\n".join(lines)


COMMANDS = (label,)
