"""``traceledger verify SERIAL``: the public verification view of a label.

Anyone may ask: a verdict, the product and the trail as places and dates
(the full trail with actors is ``traceledger label trail``, :mod:`traceledger.cli.label`).
"""

from __future__ import annotations

import click

from ledger import gs1
from traceledger.cli.base import State, common_options, emit, pass_state


@click.command()
@click.argument("serial")
@common_options
@pass_state
def verify(state: State, serial: str) -> None:
    """Show a label's verdict, product and trail."""
    gs1.validate_serial(serial)
    view = state.client().label(serial)
    emit(state, view, format_view(view))


def format_view(view: dict) -> str:
    """The human form of the public verification view: a verdict line, details, the trail (places and dates)."""
    verdict = view.get("verdict", "?")
    if verdict == "unknown" and not view.get("product"):
        head = f"unknown  {view.get('serial')} is not a label of this ledger"
    else:
        head = f"{verdict}  {view.get('product')}  by {view.get('producer')}  lot {view.get('lot')}  scans {view.get('scan_count', 0)}"
        if view.get("first_scanned_at"):
            head += f", first {view['first_scanned_at']}"
    lines = [head]
    if view.get("reasons"):
        lines.append("  reasons   " + "; ".join(str(r) for r in view["reasons"]))
    if view.get("gtin"):
        lines.append(f"  gtin      {view['gtin']}   expiry {view.get('expiry') or '-'}")
    if view.get("uri"):
        lines.append(f"  uri       {view['uri']}")
    trail = view.get("trail") or []
    if trail:
        lines.append("  trail")
        for step in trail:
            place = (step.get("place") or {}).get("en") or ""
            lines.append(f"    {step.get('date') or '':<10}  {step.get('event', ''):<18} {place}".rstrip())
    return "\n".join(lines)


COMMANDS = (verify,)
