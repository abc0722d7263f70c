"""``traceledger issue``: issue new labels in batches and stream them to the printer's CSV.

The CSV (serial,gtin,lot,expiry,uri[,pin]) is opened on the first accepted
batch, so a refused issuance leaves no file behind; ``--out -`` streams it to
stdout (the summary then goes to stderr).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ledger import gs1
from ledger.errors import Refused
from traceledger import commands as cmd
from traceledger.cli.base import State, common_options, finish, pass_state, progress, signing_options


@click.command()
@signing_options
@click.option("--gtin", required=True, help="GTIN-8/12/13/14 (check digit verified; stored as GTIN-14).")
@click.option("--lot", required=True)
@click.option("--product", required=True, help="Product name.")
@click.option("--count", required=True, type=click.IntRange(min=1))
@click.option("--expiry", metavar="YYYY-MM-DD")
@click.option("--region", metavar="CODE", help="Region code where the labels are issued.")
@click.option("--out", default="labels.csv", show_default=True, type=click.Path(dir_okay=False, allow_dash=True), help="CSV for the printer ('-' for stdout).")
@click.option("--append", is_flag=True, help="Append to an existing --out file instead of refusing.")
@click.option("--batch", default=cmd.DEFAULT_CHUNK, show_default=True, type=click.IntRange(1, 2000), help="Labels per request.")
@click.option("--pins", is_flag=True, help="Double-layer labels: a scratch-off PIN per label (only its hash goes to the ledger; the PIN goes to the CSV's 'pin' column).")
@click.option("--pin-digits", default=8, show_default=True, type=click.IntRange(6, 12), help="Digits per PIN (with --pins).")
@common_options
@pass_state
def issue(state: State, key: str, as_actor: str | None, gtin: str, lot: str, product: str, count: int, expiry: str | None, region: str | None, out: str, append: bool, batch: int, pins: bool, pin_digits: int) -> None:
    """Issue COUNT new labels in batches, streaming them to a CSV (serial,gtin,lot,expiry,uri)."""
    gs1.validate_lot(lot)
    cmd.check_expiry(expiry)
    payload = cmd.issued_payload(gtin, lot, product, expiry=expiry, region=region)
    signer = cmd.Signer.load(key, as_actor)
    sink = LabelSink(out, append=append, json_mode=state.json, pins=pins)
    try:
        with progress(state, count, "issue") as update:
            report = cmd.issue_labels(
                state.client(), signer, payload, count,
                resolver_host=state.settings.resolver_host, batch=batch, on_rows=sink.write, on_progress=update,
                pin_digits=pin_digits if pins else None,
            )
    finally:
        sink.close()
    finish(
        state, report, f"issue {payload['gtin']} lot {lot} -> {out}",
        summary_to_stderr=out == "-",  # stdout is the CSV itself
        gtin=payload["gtin"], lot=lot, out=out, rows=sink.rows,
    )


class LabelSink:
    """The --out CSV, opened on the first accepted rows (nothing is written if nothing is issued)."""

    def __init__(self, out: str, *, append: bool, json_mode: bool, pins: bool = False):
        if out == "-" and json_mode:
            raise Refused("invalid_option", "--json needs stdout; write the CSV to a file with --out", field="out")
        path = Path(out)
        if out != "-" and path.exists() and not append:
            raise Refused("file_exists", f"{out} exists; pass --append or another --out", field="out")
        self.out, self.append, self.rows, self.pins = out, append, 0, pins
        self._fh = None
        self._csv: cmd.LabelCsv | None = None

    def write(self, rows: list[cmd.LabelRow]) -> None:
        if self._csv is None:
            if self.out == "-":
                self._fh, header = sys.stdout, True
            else:
                path = Path(self.out)
                header = not (self.append and path.exists() and path.stat().st_size > 0)
                self._fh = open(path, "a" if self.append else "w", newline="")
            self._csv = cmd.LabelCsv(self._fh, write_header=header, pins=self.pins)
        self._csv.write(rows)
        self.rows += len(rows)

    def close(self) -> None:
        if self._fh is not None and self.out != "-":
            self._fh.close()


COMMANDS = (issue,)
