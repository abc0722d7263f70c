"""``traceledger labels print``: QR label sheets for issued labels.

Renders the issuance CSV as SVG pages and one PDF (:mod:`traceledger.labels_print`,
imported only when printing: segno and reportlab are slow to load).
"""

from __future__ import annotations

import click

from traceledger import commands as cmd
from traceledger.cli.base import LedgerGroup, State, common_options, emit, pass_state, progress


@click.group(cls=LedgerGroup)
@common_options
def labels() -> None:
    """Print sheets for issued labels."""


@labels.command("print")
@click.option("--csv", "csv_path", required=True, type=click.Path(exists=True, dir_okay=False), help="The issuance CSV (serial,gtin,lot,expiry,uri[,pin]).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory for labels-NNNN.svg pages and labels.pdf.")
@click.option("--product", metavar="NAME", help="Product name printed on each label (Chinese is fine), unless the CSV has a 'product' column.")
@click.option("--sms-number", default="", metavar="NUMBER", help="SMS number consumers text the number code to (printed on each label).")
@click.option("--phone-number", default="", metavar="NUMBER", help="Phone line (IVR) number printed on each label.")
@click.option("--hotline", default="", metavar="NUMBER", help="The brand's customer service number printed on each label.")
@click.option("--producer", metavar="ACTOR_ID", help="Without --hotline: print this producer's hotline from its signed profile on the ledger.")
@common_options
@pass_state
def labels_print(state: State, csv_path: str, out_dir: str, product: str | None, sms_number: str, phone_number: str, hotline: str,
                 producer: str | None) -> None:
    """Render QR label sheets (SVG pages and a PDF): QR, serial, number code, product, instructions, 防伪码 under its coating plate."""
    from traceledger.labels_print import Channels, print_sheets, producer_hotline  # segno/reportlab only when printing

    if not hotline and producer:  # without --producer, printing stays offline
        hotline = producer_hotline(state.client(), producer)
    channels = Channels(sms=sms_number, phone=phone_number, hotline=hotline)
    with progress(state, cmd.count_csv_rows(csv_path), "print") as update:
        result = print_sheets(csv_path, out_dir, product=product, on_progress=update, channels=channels)
    emit(state, {k: v for k, v in result.items() if k != "svg"} | {"svg_pages": len(result["svg"])},
         f"printed {result['labels']} labels on {result['pages']} pages: {out_dir}/labels-*.svg, {result['pdf']}")


COMMANDS = (labels,)
