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
@common_options
@pass_state
def labels_print(state: State, csv_path: str, out_dir: str, product: str | None) -> None:
    """Render QR label sheets (SVG pages and a PDF): QR, serial, short code, product, PIN layer."""
    from traceledger.labels_print import print_sheets  # segno/reportlab only when printing

    with progress(state, cmd.count_csv_rows(csv_path), "print") as update:
        result = print_sheets(csv_path, out_dir, product=product, on_progress=update)
    emit(state, {k: v for k, v in result.items() if k != "svg"} | {"svg_pages": len(result["svg"])},
         f"printed {result['labels']} labels on {result['pages']} pages: {out_dir}/labels-*.svg, {result['pdf']}")


COMMANDS = (labels,)
