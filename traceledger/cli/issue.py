"""``traceledger issue``: issue new labels in batch events and stream them to the printer's CSV.

By default each run of up to 8,192 labels is one signed batch event (event.v3,
``ledger/batches.py``); ``--single-events`` signs one event per label as before.

The CSV (serial,gtin,lot,expiry,uri[,pin]) is opened on the first accepted
batch, so a refused issuance leaves no file behind; ``--out -`` streams it to
stdout (the summary then goes to stderr).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ledger import gs1
from ledger.batches import MAX_BATCH_LABELS
from ledger.commitments import SealKey
from ledger.crash_points import crash_point
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
@click.option("--batch", default=None, type=click.IntRange(1, MAX_BATCH_LABELS), help=f"Labels per batch event (default {MAX_BATCH_LABELS}) or, with --single-events, per request (default {cmd.DEFAULT_CHUNK}, at most 2000).")
@click.option("--single-events", is_flag=True, help="One signed event per label (event.v2 style) instead of batch events.")
@click.option("--seal-key", "seal_key", type=click.Path(dir_okay=False), help="The verification service's X25519 public key (32 raw bytes) for --pins batches; default: this stack's key in the run directory.")
@click.option("--pins", is_flag=True, help="Double-layer labels: a scratch-off PIN per label (only its hash goes to the ledger; the PIN goes to the CSV's 'pin' column).")
@click.option("--pin-digits", default=8, show_default=True, type=click.IntRange(6, 12), help="Digits per PIN (with --pins).")
@common_options
@pass_state
def issue(state: State, key: str, as_actor: str | None, gtin: str, lot: str, product: str, count: int, expiry: str | None, region: str | None, out: str, append: bool,
          batch: int | None, single_events: bool, seal_key: str | None, pins: bool, pin_digits: int) -> None:
    """Issue COUNT new labels in batch events, streaming them to a CSV (serial,gtin,lot,expiry,uri)."""
    gs1.validate_lot(lot)
    cmd.check_expiry(expiry)
    payload = cmd.issued_payload(gtin, lot, product, expiry=expiry, region=region)
    signer = cmd.Signer.load(key, as_actor)
    sink = LabelSink(out, append=append, json_mode=state.json, pins=pins)
    try:
        with progress(state, count, "issue") as update:
            if single_events:
                if batch is not None and batch > 2000:
                    raise Refused("invalid_option", "--batch is at most 2000 with --single-events", field="batch")
                report = cmd.issue_labels(
                    state.client(), signer, payload, count,
                    resolver_host=state.settings.resolver_host, batch=batch or cmd.DEFAULT_CHUNK, on_rows=sink.write, on_progress=update,
                    pin_digits=pin_digits if pins else None,
                )
            else:
                report = cmd.issue_label_batches(
                    state.client(), signer, payload, count,
                    resolver_host=state.settings.resolver_host, batch=batch or MAX_BATCH_LABELS, on_rows=sink.write, on_progress=update,
                    pin_digits=pin_digits if pins else None, seal_public_key=_seal_public_key(state, seal_key) if pins else None,
                )
    finally:
        sink.close()
    finish(
        state, report, f"issue {payload['gtin']} lot {lot} -> {out}",
        summary_to_stderr=out == "-",  # stdout is the CSV itself
        gtin=payload["gtin"], lot=lot, out=out, rows=sink.rows,
    )


def _seal_public_key(state: State, path: str | None) -> bytes:
    """The verification service's seal key: ``--seal-key`` (32 raw bytes), else this stack's own."""
    if path is None:
        return SealKey.load_or_create(state.settings.seal_key_path).public_key
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise Refused("invalid_key_file", f"cannot read {path}: {exc.strerror}", field="seal-key") from None
    if len(raw) != 32:
        raise Refused("invalid_key_file", f"{path} does not hold a 32-byte X25519 public key", field="seal-key")
    return raw


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
        crash_point("cli.issue_accepted")  # tests only (ledger.crash_points): accepted, not yet in the CSV
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
