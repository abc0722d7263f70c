"""A report's photo as the server keeps it (ledger.report_photos): what is refused, and that nothing of the upload survives but pixels."""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
import zlib

import pytest
from PIL import Image

from ledger import report_photos
from ledger.errors import Refused


def image_bytes(fmt: str = "PNG", size=(64, 48), **save) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, fmt, **save)
    return out.getvalue()


def zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("evil.html", "<script>alert(1)</script>")
    return out.getvalue()


def test_a_png_is_stored_as_a_plain_jpeg_named_by_its_hash():
    photo = report_photos.checked_photo(image_bytes("PNG"))
    assert photo.data.startswith(b"\xff\xd8\xff") and photo.sha256 == hashlib.sha256(photo.data).hexdigest()
    assert (photo.width, photo.height) == (64, 48)
    assert report_photos.checked_photo(image_bytes("PNG")).sha256 == photo.sha256  # the same upload, the same name


def test_exif_is_gone_orientation_applied_and_big_photos_scaled_down():
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° (a phone held upright)
    exif[0x8825] = {2: (39.0, 54.0, 15.0)}  # a GPS latitude: where the shopper lives
    exif[0x010F] = "PhoneMaker"
    upload = image_bytes("JPEG", size=(3000, 1000), exif=exif.tobytes())
    photo = report_photos.checked_photo(upload)
    assert (photo.width, photo.height) == (683, 2048)  # turned upright, then at most 2048 a side
    with Image.open(io.BytesIO(photo.data)) as img:
        assert not img.getexif() and "exif" not in img.info
    assert b"PhoneMaker" not in photo.data and b"Exif" not in photo.data


@pytest.mark.parametrize("name, data, code", [
    ("empty", b"", "photo_empty"),
    ("gif", image_bytes("GIF"), "photo_type"),
    ("svg-with-script", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "photo_type"),
    ("html", b"<!doctype html><script>alert(1)</script>", "photo_type"),
    ("pdf", b"%PDF-1.7\n1 0 obj<<>>endobj\n", "photo_type"),
    ("zip", zip_bytes(), "photo_type"),
    ("jpeg-magic-then-html", b"\xff\xd8\xff\xe0<html><script>alert(1)</script></html>", "photo_unreadable"),
    ("png-magic-then-junk", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "photo_unreadable"),
    ("truncated-jpeg", image_bytes("JPEG", size=(400, 300))[:600], "photo_unreadable"),
    ("oversize", b"\xff\xd8\xff" + b"\x00" * report_photos.MAX_BYTES, "photo_too_large"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 30 else "")
def test_what_is_not_a_photo_is_refused(name, data, code):
    with pytest.raises(Refused) as exc:
        report_photos.checked_photo(data)
    assert exc.value.code == code and exc.value.field == "photo"


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels (what a decompression bomb says before its few KB of data)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_a_decompression_bomb_is_refused_before_decoding():
    bomb = png_header_only(10000, 5000)  # 50 M pixels: 150 MB if decoded
    with pytest.raises(Refused) as exc:
        report_photos.checked_photo(bomb)
    assert exc.value.code == "photo_too_large"


@pytest.mark.parametrize("payload", [b"<script>alert(1)</script>", zip_bytes(), b"%PDF-1.7 polyglot"], ids=["html", "zip", "pdf"])
def test_a_polyglot_keeps_its_pixels_and_loses_its_payload(payload):
    """An image with another file appended (an image that is also a ZIP, an HTML page, a PDF): only the pixels are kept."""
    photo = report_photos.checked_photo(image_bytes("PNG") + payload)
    assert payload not in photo.data and b"<script" not in photo.data and b"PK\x03\x04" not in photo.data
    with Image.open(io.BytesIO(photo.data)) as img:
        assert img.format == "JPEG" and img.size == (64, 48)


def test_a_photo_is_fetched_only_by_a_well_formed_hash():
    import asyncio

    for bad in ("../../etc/passwd", "A" * 64, "0" * 63, "0" * 64 + "/x", "%2e%2e"):
        with pytest.raises(Refused):
            asyncio.run(report_photos.fetch(None, bad))  # refused before any query
