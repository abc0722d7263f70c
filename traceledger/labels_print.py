"""Print sheets for a batch of labels: SVG pages and one PDF, from the issuance CSV.

Each label has its QR code (the GS1 Digital Link URI, segno, error level M
pinned: segno's ``boost_error`` would otherwise raise it silently and change
the code's size), the product name (wrapped on two lines, shortened only past
them), the human-readable serial, the 32-digit number code for the phone line
and SMS, lot and GTIN, the consumer's instructions in Chinese (扫码验真, the SMS
and phone numbers, the brand's hotline) and, for double-layer labels, the
防伪码 under a scratch-off coating that is its own printing plate: a spot colour
``ScratchOff`` (a PDF Separation colour space, overprinting) in the PDF, a
separate layer group (``<g id="pin-layer-…">``) in the SVG. The print shop
coats exactly what that plate covers.

A4 portrait, 3 × 7 labels of 64 × 38 mm with 3 mm gutters, nothing printed
within 3 mm of the paper's edge and no label content within 2 mm of a cut
line; cut marks in the margins at every cut line. Text is 6.5 pt or larger.

Product names are mostly Chinese. The PDF embeds (a subset of) WenQuanYi Micro
Hei from Debian's ``fonts-wqy-microhei`` when it is installed, so the print
shop needs no font of its own; otherwise it falls back to reportlab's built-in
``STSong-Light`` CID font (no font file, but not embedded: the printer's RIP
must have an Adobe-compatible Chinese font).

The CSV is streamed: one page of labels is held at a time, so a batch of
100,000 needs no more memory than 21.
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
COLS, ROWS = 3, 7
CELL_W, CELL_H = 64.0, 38.0
GUTTER = 3.0  # between cells: each cell is cut on its own lines
GRID_X = (PAGE_W - COLS * CELL_W - (COLS - 1) * GUTTER) / 2  # 6 mm
GRID_Y = (PAGE_H - ROWS * CELL_H - (ROWS - 1) * GUTTER) / 2  # 6.5 mm
PAD = 2.0  # no content within this of a cut line
EDGE = 3.0  # nothing at all within this of the paper's edge
QR_SIZE = 23.0  # with its quiet zone
PER_PAGE = COLS * ROWS
MM = 72 / 25.4  # PDF points per mm
WQY_MICROHEI = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")  # fonts-wqy-microhei (ops/browser.sh)
TEXT_X = PAD + QR_SIZE + 1.5  # the text column right of the QR code
TEXT_W = CELL_W - TEXT_X - PAD
MIN_POINTS = 6.5
SCRATCH_SPOT = "ScratchOff"  # the coating's plate


@dataclass(frozen=True)
class Channels:
    """The numbers printed on each label for consumers without a QR scanner (empty: not printed)."""

    sms: str = ""  # where to text the number code
    phone: str = ""  # the phone line (IVR)
    hotline: str = ""  # the brand's customer service


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


def producer_hotline(client, producer: str) -> str:
    """``producer``'s hotline from its signed profile on the ledger (``GET /v1/actors/{id}``; '' when it has none).

    What ``labels print --producer`` prints when ``--hotline`` is not given: the number the
    brand signed, the one its labels' pages show, not one typed again at the printer.
    """
    actor = client.actor(producer)
    if actor is None:
        raise Refused("unknown_actor", f"actor {producer} is not registered", field="producer")
    return actor.get("hotline") or ""


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


def cell(i: int) -> tuple[float, float]:
    """Top-left corner (mm) of the i-th cell of a page."""
    return GRID_X + (i % COLS) * (CELL_W + GUTTER), GRID_Y + (i // COLS) * (CELL_H + GUTTER)


def cut_lines() -> tuple[list[float], list[float]]:
    """(x of every vertical cut line, y of every horizontal one), mm from the page's top-left."""
    xs = sorted({GRID_X + c * (CELL_W + GUTTER) + d for c in range(COLS) for d in (0.0, CELL_W)})
    ys = sorted({GRID_Y + r * (CELL_H + GUTTER) + d for r in range(ROWS) for d in (0.0, CELL_H)})
    return xs, ys


def cut_marks() -> list[tuple[float, float, float, float]]:
    """Cut marks as (x1, y1, x2, y2) mm: short ticks in the margins, on every cut line, never within :data:`EDGE` of the edge."""
    xs, ys = cut_lines()
    lo, hi = EDGE + 0.5, GRID_X - 0.8
    marks = [(x, lo, x, GRID_Y - 0.8) for x in xs] + [(x, PAGE_H - lo, x, PAGE_H - GRID_Y + 0.8) for x in xs]
    marks += [(lo, y, hi, y) for y in ys] + [(PAGE_W - lo, y, PAGE_W - hi, y) for y in ys]
    return marks


def _code_lines(label: Label) -> list[str]:
    code = label.short_code
    if not code:
        return []
    groups = shortcode.group(code).split()
    return [" ".join(groups[:4]), " ".join(groups[4:])]


def _serial_grouped(serial: str) -> str:
    return " ".join(serial[i:i + 5] for i in range(0, len(serial), 5))


# ---------------------------------------------------------------- layout (shared by SVG and PDF)


@dataclass(frozen=True)
class Text:
    x: float  # mm from the cell's left
    y: float  # baseline, mm from the cell's top
    size: float  # points
    text: str
    mono: bool = False


def width_mm(text: str, font: str, size: float) -> float:
    from reportlab.pdfbase.pdfmetrics import stringWidth

    return stringWidth(text, font, size) / MM


def wrap(text: str, font: str, size: float, width: float, lines: int = 2) -> list[str]:
    """``text`` in at most ``lines`` lines of ``width`` mm (the last one shortened with "…" if it must be)."""
    out, rest = [], text.strip()
    while rest and len(out) < lines:
        n = len(rest)
        while n > 1 and width_mm(rest[:n], font, size) > width:
            n -= 1
        n = _break_at(rest, n)
        if len(out) == lines - 1 and n < len(rest):
            while n > 1 and width_mm(rest[:n] + "…", font, size) > width:
                n -= 1
            out.append(rest[:n].rstrip() + "…")
            break
        out.append(rest[:n])
        rest = rest[n:].lstrip()
    return out


def _break_at(text: str, n: int) -> int:
    """``n``, or less so that a line never ends inside a Latin word or number ("48 / V")."""
    if n >= len(text) or not (text[n - 1].isascii() and text[n - 1].isalnum() and text[n].isascii() and text[n].isalnum()):
        return n
    for k in range(n - 1, 0, -1):
        if text[k] == " " or not text[k - 1].isascii():
            return k
    return n


def _fit(text: str, font: str, size: float, width: float) -> str:
    return wrap(text, font, size, width, lines=1)[0] if text else ""


def instructions(channels: Channels) -> list[str]:
    """The consumer's instructions printed under the QR code, Chinese."""
    lines = ["扫码验真"]
    if channels.sms:
        lines.append(f"短信 {channels.sms}")
    if channels.phone:
        lines.append(f"电话 {channels.phone}")
    if channels.hotline:
        lines.append(f"客服 {channels.hotline}")
    return lines


def layout(label: Label, font: str, channels: Channels) -> tuple[list[Text], dict | None]:
    """(the label's text, its 防伪码 box or None), in mm from the cell's top-left."""
    texts = []
    y = PAD + 2.6
    for line in wrap(label.product or "", font, 7.5, TEXT_W):
        texts.append(Text(TEXT_X, y, 7.5, line))
        y += 3.1
    y = max(y, PAD + 6.0) + 1.4
    texts.append(Text(TEXT_X, y, 6.8, _serial_grouped(label.serial), mono=True))
    for line in _code_lines(label):
        y += 2.9
        texts.append(Text(TEXT_X, y, 6.8, line, mono=True))
    y += 3.0
    texts.append(Text(TEXT_X, y, MIN_POINTS, _fit(f"批次 {label.lot}", font, MIN_POINTS, TEXT_W)))
    y += 2.6
    texts.append(Text(TEXT_X, y, MIN_POINTS, f"GTIN {label.gtin}"))
    for j, line in enumerate(instructions(channels)):
        texts.append(Text(PAD, PAD + QR_SIZE + 2.6 + 2.6 * j, MIN_POINTS, _fit(line, font, MIN_POINTS, QR_SIZE + 1.0)))
    box = None
    if label.pin:
        top = y + 1.6
        texts.append(Text(TEXT_X, top + 2.3, MIN_POINTS, "防伪码（刮开涂层）"))
        box = {"x": TEXT_X, "y": top + 3.2, "w": TEXT_W, "h": CELL_H - PAD - (top + 3.2), "pin": label.pin}
    return texts, box


# ---------------------------------------------------------------- SVG


def svg_page(labels: list[Label], page_no: int, product_font: str | None = None, channels: Channels | None = None) -> str:
    """One A4 page as an SVG document (mm units, white background for print and decoding).

    ``product_font``: the registered font text is measured with (default :func:`cjk_font`).
    """
    font = product_font or cjk_font()
    channels = channels or Channels()
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:inkscape="http://www.inkscape.org/namespaces/inkscape" '
        f'width="{PAGE_W}mm" height="{PAGE_H}mm" viewBox="0 0 {PAGE_W} {PAGE_H}">',
        f'<rect width="{PAGE_W}" height="{PAGE_H}" fill="#fff"/>',
        '<g id="cut-marks" stroke="#000" stroke-width="0.15">'
        + "".join(f'<line x1="{a:.2f}" y1="{b:.2f}" x2="{c:.2f}" y2="{d:.2f}"/>' for a, b, c, d in cut_marks()) + "</g>",
        '<g font-family="WenQuanYi Micro Hei,sans-serif" fill="#000">',
    ]
    coats = []
    for i, label in enumerate(labels):
        x, y = cell(i)
        qr = qr_for(label.uri)
        scale = QR_SIZE / qr.symbol_size(scale=1, border=4)[0]
        qr_svg = qr.svg_inline(scale=scale, border=4, light="#fff", dark="#000", omitsize=False, unit="")
        out.append(f'<g id="label-{escape(label.serial)}" transform="translate({x:.3f},{y:.3f})">'
                   f'<g transform="translate({PAD},{PAD})">{qr_svg}</g>')
        texts, box = layout(label, font, channels)
        for t in texts:
            family = ' font-family="DejaVu Sans Mono,monospace"' if t.mono else ""
            out.append(f'<text x="{t.x:.2f}" y="{t.y:.2f}" font-size="{t.size / MM:.2f}"{family}>{escape(t.text)}</text>')
        if box:
            out.append(f'<text x="{box["x"] + 1.5:.2f}" y="{box["y"] + box["h"] / 2 + 1.3:.2f}" font-size="{10 / MM:.2f}" '
                       f'font-family="DejaVu Sans Mono,monospace">{escape(box["pin"])}</text>')
            coats.append(f'<rect x="{x + box["x"]:.2f}" y="{y + box["y"]:.2f}" width="{box["w"]:.2f}" height="{box["h"]:.2f}" '
                         f'fill="#b4b4b4" id="pin-layer-{escape(label.serial)}-coat"/>')
        out.append("</g>")
    out.append(f'<text x="{PAGE_W / 2:.1f}" y="{PAGE_H - EDGE - 0.6:.1f}" font-size="{MIN_POINTS / MM:.2f}" text-anchor="middle">'
               f"第 {page_no} 页</text></g>")
    if coats:
        # The coating's own layer, above everything: one group per sheet (ids per label inside).
        out.append('<g id="pin-layer" inkscape:groupmode="layer" inkscape:label="ScratchOff">' + "".join(coats) + "</g>")
    out.append("</svg>")
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


def _pdf_qr(c, uri: str, ox: float, oy: float) -> None:
    """The QR code with its top-left at (ox, oy) points."""
    matrix = qr_for(uri).matrix
    n = len(matrix)
    border = 4
    module = QR_SIZE / (n + 2 * border) * MM
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


def _pdf_label(c, label: Label, x_mm: float, y_mm: float, font: str, channels: Channels) -> None:
    from reportlab.lib.colors import CMYKColorSep

    c.setFillColorRGB(0, 0, 0)
    _pdf_qr(c, label.uri, (x_mm + PAD) * MM, (PAGE_H - y_mm - PAD) * MM)  # PDF origin is bottom-left
    texts, box = layout(label, font, channels)
    for t in texts:
        c.setFont("Courier-Bold" if t.mono else font, t.size)
        c.drawString((x_mm + t.x) * MM, (PAGE_H - y_mm - t.y) * MM, t.text)
    if box:
        bx, by = (x_mm + box["x"]) * MM, (PAGE_H - y_mm - box["y"] - box["h"]) * MM
        c.setFont("Courier-Bold", 10)
        c.drawString(bx + 1.5 * MM, by + (box["h"] / 2 - 1.3) * MM, box["pin"])
        # The coating: its own plate (spot colour), overprinting, so the PIN still prints beneath it.
        c.saveState()
        c.setFillColor(CMYKColorSep(0, 0, 0, 0.3, spotName=SCRATCH_SPOT, density=1))
        c.setFillOverprint(True)
        c.rect(bx, by, box["w"] * MM, box["h"] * MM, stroke=0, fill=1)
        c.restoreState()


def print_sheets(csv_path: str | Path, out_dir: str | Path, *, product: str | None = None,
                 on_progress: Callable[[int], None] | None = None, font_file: Path | None = WQY_MICROHEI,
                 channels: Channels | None = None) -> dict:
    """Write ``labels-NNNN.svg`` pages and ``labels.pdf`` for every label of ``csv_path``.

    ``product``: the product name printed on labels whose row has none.
    ``font_file``: the CJK font to embed (None: the built-in STSong-Light).
    ``channels``: the SMS, phone and hotline numbers printed on each label.
    Returns {"labels", "pages", "svg": [paths], "pdf": path, "font"}.
    """
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    channels = channels or Channels()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pdf_path = out / "labels.pdf"
    c = canvas.Canvas(str(pdf_path), pagesize=A4, pageCompression=1)
    c.setTitle("traceledger labels")
    font = cjk_font(font_file)
    svgs, count = [], 0
    for page_no, page in enumerate(_pages(read_labels(csv_path, product)), start=1):
        path = out / f"labels-{page_no:04d}.svg"
        path.write_text(svg_page(page, page_no, font, channels), encoding="utf-8")
        svgs.append(str(path))
        c.setStrokeColorRGB(0, 0, 0)
        c.setLineWidth(0.4)
        for x1, y1, x2, y2 in cut_marks():
            c.line(x1 * MM, (PAGE_H - y1) * MM, x2 * MM, (PAGE_H - y2) * MM)
        for i, label in enumerate(page):
            _pdf_label(c, label, *cell(i), font, channels)
        c.setFillColorRGB(0, 0, 0)
        c.setFont(font, MIN_POINTS)
        c.drawCentredString(PAGE_W / 2 * MM, (EDGE + 0.6) * MM, f"第 {page_no} 页")
        c.showPage()
        count += len(page)
        if on_progress:
            on_progress(len(page))
    if not count:
        raise Refused("empty", f"{csv_path} has no labels", field="csv")
    c.save()
    return {"labels": count, "pages": len(svgs), "svg": svgs, "pdf": str(pdf_path), "font": font}
