"""`traceledger labels print`: SVG pages and a PDF from the issuance CSV (no services needed)."""

from __future__ import annotations

import csv
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from ledger import gs1, pins, shortcode
from traceledger.cli import cli
from traceledger.labels_print import (
    CELL_H,
    CELL_W,
    EDGE,
    PAD,
    PAGE_H,
    PAGE_W,
    PER_PAGE,
    QR_SIZE,
    SCRATCH_SPOT,
    WQY_MICROHEI,
    Channels,
    cell,
    cut_lines,
    print_sheets,
    qr_for,
    read_labels,
)

GTIN = "06901234000016"


def write_csv(path, n: int, with_pins: bool) -> list[dict]:
    rows = []
    for _ in range(n):
        serial = gs1.new_serial()
        row = {"serial": serial, "gtin": GTIN, "lot": "L1", "expiry": "2029-06-30", "uri": gs1.digital_link_uri(GTIN, serial)}
        if with_pins:
            row["pin"] = pins.new_pin()
        rows.append(row)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return rows


def test_print_sheets_svg_and_pdf(tmp_path):
    rows = write_csv(tmp_path / "labels.csv", PER_PAGE + 6, with_pins=True)
    out = tmp_path / "sheets"
    r = CliRunner().invoke(cli, ["labels", "print", "--csv", str(tmp_path / "labels.csv"), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    svgs = sorted(out.glob("labels-*.svg"))
    assert [p.name for p in svgs] == ["labels-0001.svg", "labels-0002.svg"]
    ns = {"s": "http://www.w3.org/2000/svg"}
    first = ET.parse(svgs[0]).getroot()
    groups = [g for g in first.iter("{http://www.w3.org/2000/svg}g") if g.get("id", "").startswith("label-")]
    assert len(groups) == PER_PAGE
    texts = " ".join(t.text or "" for t in first.iter("{http://www.w3.org/2000/svg}text"))
    row = rows[0]
    grouped = " ".join(row["serial"][i:i + 5] for i in range(0, 20, 5))
    assert grouped in texts and " ".join(shortcode.group(shortcode.to_short_code(row["serial"])).split()[:4]) in texts
    assert row["pin"] in texts and "防伪码（刮开涂层）" in texts and "扫码验真" in texts and "PIN" not in texts
    layer = first.find(".//s:g[@id='pin-layer']", ns)  # the coating: its own layer, above the PIN
    assert layer is not None and layer.find(f"s:rect[@id='pin-layer-{row['serial']}-coat']", ns) is not None
    pdf = (out / "labels.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page ") >= 2


def test_print_without_pins_and_bad_csv(tmp_path):
    write_csv(tmp_path / "plain.csv", 3, with_pins=False)
    r = CliRunner().invoke(cli, ["labels", "print", "--csv", str(tmp_path / "plain.csv"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0 and "printed 3 labels on 1 pages" in r.output
    assert "pin-layer" not in (tmp_path / "o" / "labels-0001.svg").read_text()
    (tmp_path / "bad.csv").write_text("foo,bar\n1,2\n")
    r = CliRunner().invoke(cli, ["labels", "print", "--csv", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "o2")])
    assert r.exit_code == 2


@pytest.mark.skipif(not shutil.which("zbarimg"), reason="zbar-tools not installed")
def test_label_qr_decodes_to_the_exact_uri(tmp_path):
    serial = gs1.new_serial()
    uri = gs1.digital_link_uri(GTIN, serial)
    qr = qr_for(uri)
    assert qr.error == "M"  # pinned: boost_error would raise it
    qr.save(str(tmp_path / "qr.png"), scale=4, border=4, light="#fff")
    out = subprocess.run(["zbarimg", "-q", "--raw", str(tmp_path / "qr.png")], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == uri


@pytest.mark.parametrize("font_file, font, embedded", [(WQY_MICROHEI, "WenQuanYiMicroHei", True), (None, "STSong-Light", False)])
def test_chinese_product_name_is_real_text_in_the_pdf(tmp_path, font_file, font, embedded):
    import pypdf

    assert font_file is None or font_file.is_file(), "fonts-wqy-microhei is missing: run ops/browser.sh"
    rows = write_csv(tmp_path / "labels.csv", 2, with_pins=False)
    long_name = "电动自行车锂离子蓄电池组 48V 20Ah 国标新款长续航版本带快充功能适配多种车型"  # too long for two lines: shortened
    result = print_sheets(tmp_path / "labels.csv", tmp_path / "out", product=long_name, font_file=font_file)
    assert result["font"] == font
    reader = pypdf.PdfReader(result["pdf"])
    text = reader.pages[0].extract_text()
    serial = rows[0]["serial"]
    assert "电动自行车锂离子" in text and " ".join(serial[i:i + 5] for i in range(0, 20, 5)) in text and "…" in text
    used = [f.get_object() for f in reader.pages[0]["/Resources"]["/Font"].values() if font in str(f.get_object()["/BaseFont"])]
    assert used, "the CJK font is not among the page's fonts"
    # A TrueType subset is a simple font; a CID font keeps its descriptor in its descendant.
    holder = used[0] if "/FontDescriptor" in used[0] else used[0]["/DescendantFonts"][0].get_object()
    assert ("/FontFile2" in holder["/FontDescriptor"].get_object()) == embedded  # the font travels with the PDF
    svg = (tmp_path / "out" / "labels-0001.svg").read_text(encoding="utf-8")
    assert "电动自行车锂离子" in svg and long_name not in svg  # shortened the same way as in the PDF


def test_product_column_in_the_csv_wins(tmp_path):
    rows = write_csv(tmp_path / "labels.csv", 1, with_pins=False)
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=[*rows[0], "product"])
        w.writeheader()
        w.writerow(rows[0] | {"product": "阻燃电缆"})
    labels = list(read_labels(tmp_path / "labels.csv", product="ignored"))
    assert [label.product for label in labels] == ["阻燃电缆"]


# ---------------------------------------------------------------- the printed page, as a printer would print it

DPI = 300
PX = DPI / 25.4  # pixels per mm


@pytest.fixture(scope="module")
def printed(tmp_path_factory):
    """One full page of PIN labels with a long Chinese name and the channel numbers, printed to PDF and rasterised by Ghostscript."""
    if not shutil.which("gs"):
        pytest.skip("ghostscript is not installed")
    tmp = tmp_path_factory.mktemp("printed")
    rows = write_csv(tmp / "labels.csv", PER_PAGE, with_pins=True)
    channels = Channels(sms="106900001234", phone="4008001234", hotline="4008005678")
    result = print_sheets(tmp / "labels.csv", tmp / "out", product="电动自行车锂离子蓄电池组 48V 20Ah 国标新款长续航版本", channels=channels)
    png = tmp / "page.png"
    subprocess.run(["gs", "-q", "-dSAFER", "-sDEVICE=pnggray", f"-r{DPI}", "-dFirstPage=1", "-dLastPage=1", "-o", str(png), result["pdf"]],
                   check=True, timeout=120)
    from PIL import Image

    return rows, result, Image.open(png).convert("L")


def dark_in(img, x0_mm: float, y0_mm: float, x1_mm: float, y1_mm: float, below: int = 200) -> int:
    """How many pixels darker than ``below`` lie in the rectangle (mm from the page's top-left)."""
    box = img.crop((int(x0_mm * PX), int(y0_mm * PX), int(x1_mm * PX), int(y1_mm * PX)))
    return sum(box.histogram()[:below])


@pytest.mark.skipif(not shutil.which("zbarimg"), reason="zbar-tools not installed")
def test_every_printed_qr_code_decodes_to_its_label(printed, tmp_path):
    rows, _, img = printed
    for i, row in enumerate(rows):
        x, y = cell(i)
        crop = tmp_path / f"qr-{i}.png"
        img.crop((int((x + PAD - 0.5) * PX), int((y + PAD - 0.5) * PX), int((x + PAD + QR_SIZE + 0.5) * PX),
                  int((y + PAD + QR_SIZE + 0.5) * PX))).save(crop)
        out = subprocess.run(["zbarimg", "-q", "--raw", str(crop)], capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == row["uri"], (i, out.stdout, out.stderr)


def test_margins_and_cut_marks(printed):
    _, _, img = printed
    assert img.size == (round(PAGE_W * PX), round(PAGE_H * PX)) or abs(img.size[0] - PAGE_W * PX) < 3
    # Nothing within 3 mm of the paper's edge (not even a cut mark).
    for band in [(0, 0, PAGE_W, EDGE), (0, PAGE_H - EDGE, PAGE_W, PAGE_H), (0, 0, EDGE, PAGE_H), (PAGE_W - EDGE, 0, PAGE_W, PAGE_H)]:
        assert dark_in(img, *band) == 0, band
    # Nothing of a label within 2 mm (less half a pixel) of its cut lines.
    for i in range(PER_PAGE):
        x, y = cell(i)
        inner = PAD - 0.3
        for band in [(x, y, x + CELL_W, y + inner), (x, y + CELL_H - inner, x + CELL_W, y + CELL_H),
                     (x, y, x + inner, y + CELL_H), (x + CELL_W - inner, y, x + CELL_W, y + CELL_H)]:
            assert dark_in(img, *band) == 0, (i, band)
    # A cut mark in the margins on every cut line.
    xs, ys = cut_lines()
    for x in xs:
        assert dark_in(img, x - 0.3, EDGE + 0.6, x + 0.3, 5.5) > 0 and dark_in(img, x - 0.3, PAGE_H - 5.5, x + 0.3, PAGE_H - EDGE - 0.6) > 0, x
    for y in ys:
        assert dark_in(img, EDGE + 0.6, y - 0.3, 5.0, y + 0.3) > 0 and dark_in(img, PAGE_W - 5.0, y - 0.3, PAGE_W - EDGE - 0.6, y + 0.3) > 0, y


def test_scratch_off_is_its_own_plate_and_the_text_says_what_to_do(printed):
    import pypdf

    rows, result, _ = printed
    page = pypdf.PdfReader(result["pdf"]).pages[0]
    spaces = page["/Resources"]["/ColorSpace"]
    separations = [cs for cs in (v.get_object() for v in spaces.values()) if isinstance(cs, list) and cs[0] == "/Separation"]
    assert [str(cs[1]) for cs in separations] == [f"/{SCRATCH_SPOT}"]  # the coating's plate, one spot colour
    content = page.get_contents().get_data().decode("latin-1")
    spot = next(k for k, v in spaces.items() if v.get_object() in separations)
    assert content.count(f"{spot} cs") >= 1 and content.count(" re f") >= PER_PAGE  # a coat per PIN label
    assert any(g.get_object().get("/op") for g in page["/Resources"]["/ExtGState"].values())  # the coat overprints the PIN
    text = page.extract_text()
    for row in rows:
        assert row["pin"] in text  # printed under the coating
    for words in ("扫码验真", "短信 106900001234", "电话 4008001234", "客服 4008005678", "防伪码", "批次 L1"):
        assert words in text, words
    assert "PIN" not in text
    # The long name is wrapped on two lines, never cut inside "48V".
    assert "电动自行车锂离子蓄电池组" in text and "48V 20Ah" in text
