"""Print sheets for a batch of labels: SVG pages and one PDF, from the issuance CSV.

Each label has its QR code (the GS1 Digital Link URI, segno, error level M
pinned: segno's ``boost_error`` would otherwise raise it silently and change
the code's size), the human-readable serial, the 32-digit short code for the
phone line and SMS, the product name, GTIN and lot, and, for double-layer
labels, the PIN in a separate layer (``<g id="pin-layer-…">`` in SVG; a grey
box in the PDF) where the printer puts the scratch-off coating.

Product names are mostly Chinese. The PDF embeds (a subset of) WenQuanYi Micro
Hei from Debian's ``fonts-wqy-microhei`` when it is installed, so the print
shop needs no font of its own; otherwise it falls back to reportlab's built-in
``STSong-Light`` CID font (no font file, but not embedded: the printer's RIP
must have an Adobe-compatible Chinese font).

A4 portrait, 3 × 8 labels of 70 × 37 mm. The CSV is streamed: one page of
labels is held at a time, so a batch of 100,000 needs no more memory than 24.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator
from xml.sax.saxutils import escape

import segno

from ledger import shortcode
from ledger.errors import Refused

PAGE_W, PAGE_H = 210.0, 297.0  # mm
COLS, ROWS = 3, 8
CELL_W, CELL_H = 70.0, 37.125
QR_SIZE = 30.0
PER_PAGE = COLS * ROWS
MM = 72 / 25.4  # PDF points per mm
WQY_MICROHEI = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")  # fonts-wqy-microhei (ops/browser.sh)
PRODUCT_WIDTH = CELL_W - (2 + QR_SIZE + 1.5) - 1.5  # mm of the cell right of the QR code


@dataclass(frozen=True)
class Label:
    serial: str
    gtin: str
    lot: str
    uri: str
    pin: str | None = None
    product: str | None = None

    @property
    def short_code(self) -> str | None:
        return shortcode.to_short_code(self.serial) if shortcode.has_short_code(self.serial) else None


def read_labels(path: str | Path, product: str | None = None) -> Iterator[Label]:
    """Labels from the issuance CSV (``serial,gtin,lot,expiry,uri[,pin][,product]``), streamed.

    ``product`` names the product of rows without a ``product`` column (the
    issuance CSV has none: one batch is one product).
    """
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"serial", "gtin", "lot", "uri"} - set(reader.fieldnames or ())
        if missing:
            raise Refused("invalid_field", f"{path} lacks the column(s) {', '.join(sorted(missing))}", field="csv")
        for row in reader:
            if row.get("serial"):
                yield Label(row["serial"], row["gtin"], row["lot"], row["uri"], row.get("pin") or None, row.get("product") or product)


def qr_for(uri: str) -> segno.QRCode:
    """The label's QR code: error level M exactly (see the module doc)."""
    return segno.make(uri, error="m", boost_error=False)


def _pages(labels: Iterator[Label]) -> Iterator[list[Label]]:
    page: list[Label] = []
    for label in labels:
        page.append(label)
        if len(page) == PER_PAGE:
            yield page
            page = []
    if page:
        yield page


def _cell(i: int) -> tuple[float, float]:
    """Top-left corner (mm) of the i-th cell of a page."""
    return (i % COLS) * CELL_W, (i // COLS) * CELL_H


def _code_lines(label: Label) -> list[str]:
    code = label.short_code
    if not code:
        return []
    groups = shortcode.group(code).split()
    return [" ".join(groups[:4]), " ".join(groups[4:])]


# ---------------------------------------------------------------- SVG


def svg_page(labels: list[Label], page_no: int, product_font: str | None = None) -> str:
    """One A4 page as an SVG document (mm units, white background for print and decoding).

    ``product_font``: the registered font product names are measured with (default :func:`cjk_font`).
    """
    product_font = product_font or cjk_font()
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{PAGE_W}mm" height="{PAGE_H}mm" viewBox="0 0 {PAGE_W} {PAGE_H}">',
        f'<rect width="{PAGE_W}" height="{PAGE_H}" fill="#fff"/>',
        '<g font-family="DejaVu Sans Mono,WenQuanYi Micro Hei,monospace" fill="#000">',
    ]
    for i, label in enumerate(labels):
        x, y = _cell(i)
        qr = qr_for(label.uri)
        scale = QR_SIZE / qr.symbol_size(scale=1, border=4)[0]
        qr_svg = qr.svg_inline(scale=scale, border=4, light="#fff", dark="#000", omitsize=False, unit="")
        out.append(f'<g id="label-{escape(label.serial)}" transform="translate({x + 2:.3f},{y + 3.5:.3f})">{qr_svg}')
        tx = QR_SIZE + 1.5
        lines = [(label.serial, 2.9, 5.0)] + [(ln, 2.6, 10.0 + 3.6 * j) for j, ln in enumerate(_code_lines(label))]
        if label.product:
            lines.append((_product_line(label.product, product_font), 2.2, 16.9))
        lines.append((f"GTIN {label.gtin} LOT {label.lot}", 2.0, 19.6))
        for text, size, ty in lines:
            out.append(f'<text x="{tx:.2f}" y="{ty:.2f}" font-size="{size}">{escape(text)}</text>')
        if label.pin:
            out.append(
                f'<g id="pin-layer-{escape(label.serial)}"><rect x="{tx:.2f}" y="21.5" width="30" height="7" fill="#ddd"/>'
                f'<text x="{tx + 1.5:.2f}" y="26.5" font-size="3.6">PIN {escape(label.pin)}</text></g>'
            )
        out.append("</g>")
    out.append(f'<text x="4" y="{PAGE_H - 2}" font-size="2.2">page {page_no}</text></g></svg>')
    return "".join(out)


# ---------------------------------------------------------------- PDF


def cjk_font(font_file: Path | None = WQY_MICROHEI) -> str:
    """Register a font for Chinese text and return its name (see the module doc for the choice)."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfbase.ttfonts import TTFont

    if font_file is not None and Path(font_file).is_file():
        name = "WenQuanYiMicroHei"
        if name not in pdfmetrics.getRegisteredFontNames():
            pdfmetrics.registerFont(TTFont(name, str(font_file), subfontIndex=0))  # embedded as a subset
        return name
    name = "STSong-Light"
    if name not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(name))
    return name


def _fit(text: str, font: str, size: float, width_mm: float) -> str:
    """``text``, shortened with an ellipsis until it fits ``width_mm``."""
    from reportlab.pdfbase.pdfmetrics import stringWidth

    if stringWidth(text, font, size) <= width_mm * MM:
        return text
    while text and stringWidth(text + "…", font, size) > width_mm * MM:
        text = text[:-1]
    return text + "…"


PRODUCT_POINTS = 6.2  # the product name's size (2.2 mm)


def _product_line(product: str, font: str) -> str:
    """The product name as it fits beside the QR code (same in the SVG and the PDF)."""
    return _fit(product, font, PRODUCT_POINTS, PRODUCT_WIDTH)


def _pdf_label(c, label: Label, x_mm: float, y_mm: float, product_font: str) -> None:
    qr = qr_for(label.uri)
    matrix = qr.matrix
    n = len(matrix)
    border = 4
    module = QR_SIZE / (n + 2 * border) * MM
    ox, oy = (x_mm + 2) * MM, (PAGE_H - y_mm - 3.5) * MM  # PDF origin is bottom-left
    c.setFillColorRGB(0, 0, 0)
    for r, row in enumerate(matrix):
        col = 0
        while col < n:  # one rectangle per horizontal run of dark modules: fewer operators
            if row[col] & 1:
                start = col
                while col < n and row[col] & 1:
                    col += 1
                c.rect(ox + (start + border) * module, oy - (r + border + 1) * module, (col - start) * module, module, stroke=0, fill=1)
            else:
                col += 1
    tx = (x_mm + 2 + QR_SIZE + 1.5) * MM
    top = PAGE_H - y_mm - 3.5
    c.setFont("Courier-Bold", 8.2)
    c.drawString(tx, (top - 5.0) * MM, label.serial)
    c.setFont("Courier", 7.4)
    for j, ln in enumerate(_code_lines(label)):
        c.drawString(tx, (top - 10.0 - 3.6 * j) * MM, ln)
    if label.product:
        c.setFont(product_font, PRODUCT_POINTS)
        c.drawString(tx, (top - 16.9) * MM, _product_line(label.product, product_font))
    c.setFont("Helvetica", 5.6)
    c.drawString(tx, (top - 19.6) * MM, f"GTIN {label.gtin} LOT {label.lot}"[:60])
    if label.pin:
        c.setFillColorRGB(0.87, 0.87, 0.87)
        c.rect(tx, (top - 28.5) * MM, 30 * MM, 7 * MM, stroke=0, fill=1)
        c.setFillColorRGB(0, 0, 0)
        c.setFont("Courier-Bold", 10)
        c.drawString(tx + 1.5 * MM, (top - 26.5) * MM, f"PIN {label.pin}")


def print_sheets(csv_path: str | Path, out_dir: str | Path, *, product: str | None = None,
                 on_progress: Callable[[int], None] | None = None, font_file: Path | None = WQY_MICROHEI) -> dict:
    """Write ``labels-NNNN.svg`` pages and ``labels.pdf`` for every label of ``csv_path``.

    ``product``: the product name printed on labels whose row has none.
    ``font_file``: the CJK font to embed (None: the built-in STSong-Light).
    Returns {"labels", "pages", "svg": [paths], "pdf": path, "font"}.
    """
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pdf_path = out / "labels.pdf"
    c = canvas.Canvas(str(pdf_path), pagesize=A4, pageCompression=1)
    c.setTitle("traceledger labels")
    product_font = cjk_font(font_file)
    svgs, count = [], 0
    for page_no, page in enumerate(_pages(read_labels(csv_path, product)), start=1):
        path = out / f"labels-{page_no:04d}.svg"
        path.write_text(svg_page(page, page_no, product_font), encoding="utf-8")
        svgs.append(str(path))
        for i, label in enumerate(page):
            _pdf_label(c, label, *_cell(i), product_font)
        c.setFont("Helvetica", 6)
        c.drawString(4 * MM, 2 * MM, f"page {page_no}")
        c.showPage()
        count += len(page)
        if on_progress:
            on_progress(len(page))
    if not count:
        raise Refused("empty", f"{csv_path} has no labels", field="csv")
    c.save()
    return {"labels": count, "pages": len(svgs), "svg": svgs, "pdf": str(pdf_path), "font": product_font}
