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
from traceledger.labels_print import PER_PAGE, WQY_MICROHEI, print_sheets, qr_for, read_labels

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
    assert row["serial"] in texts and " ".join(shortcode.group(shortcode.to_short_code(row["serial"])).split()[:4]) in texts
    assert f"PIN {row['pin']}" in texts
    assert first.find(f".//s:g[@id='pin-layer-{row['serial']}']", ns) is not None
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
    long_name = "电动自行车锂离子蓄电池组 48V 20Ah 国标新款"  # too long for a label: shortened, still Chinese
    result = print_sheets(tmp_path / "labels.csv", tmp_path / "out", product=long_name, font_file=font_file)
    assert result["font"] == font
    reader = pypdf.PdfReader(result["pdf"])
    text = reader.pages[0].extract_text()
    assert "电动自行车锂离子" in text and rows[0]["serial"] in text and "…" in text
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
