"""Photos in shoppers' reports: checked, re-encoded, stored off the ledger by hash.

A report's photo comes from anyone on the internet, so nothing of the upload is kept
as sent. :func:`checked_photo` takes at most :data:`MAX_BYTES`, believes neither the
file name nor the declared type, and accepts only what decodes whole as a JPEG or PNG
of at most :data:`MAX_PIXELS` (Pillow opens the header before decoding any pixel, so a
decompression bomb is refused unread). The pixels are then written again as a plain
JPEG (orientation applied, at most :data:`MAX_SIDE` pixels a side): EXIF (a phone's GPS
position, its serial number), comments and whatever a polyglot file carried after or
inside the image are gone. The SHA-256 of those bytes names the photo
(``report_photos``, migration 0015); a report's details name it, and regulators fetch it
by it (:func:`fetch`). Nothing of it is signed onto the ledger.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import psycopg
from PIL import Image, ImageOps

from ledger.errors import Refused

MAX_BYTES = 2 * 1024 * 1024  # a phone photo at ordinary quality; larger is refused, not read
MAX_PIXELS = 40_000_000  # a 48 MP phone's photo is 8000x6000; more is refused before decoding
MAX_SIDE = 2048  # stored photos are scaled down to this: enough to read a label, not a store of originals
CONTENT_TYPE = "image/jpeg"  # what is stored and served, whatever was uploaded
_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}


@dataclass(frozen=True)
class Photo:
    """A checked, re-encoded photo: its bytes (JPEG) and their SHA-256 (hex)."""

    sha256: str
    data: bytes
    width: int
    height: int


def checked_photo(data: bytes) -> Photo:
    """The upload as a stored photo; :class:`Refused` (field ``photo``) for anything else."""
    if not data:
        raise Refused("photo_empty", "the photo is empty", field="photo")
    if len(data) > MAX_BYTES:
        raise Refused("photo_too_large", f"a photo is at most {MAX_BYTES // (1024 * 1024)} MB", field="photo")
    declared = next((fmt for magic, fmt in _MAGIC.items() if data.startswith(magic)), None)
    if declared is None:
        raise Refused("photo_type", "a photo is a JPEG or PNG image", field="photo")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[declared]) as img:
                if img.width * img.height > MAX_PIXELS or img.width < 1 or img.height < 1:
                    raise Refused("photo_too_large", f"a photo has at most {MAX_PIXELS:,} pixels", field="photo")
                img.load()  # every pixel decodes, or it is not an image
                pixels = ImageOps.exif_transpose(img).convert("RGB")
    except Refused:
        raise
    except Exception as exc:  # truncated, corrupt, a bomb, or another format behind the magic bytes
        raise Refused("photo_unreadable", f"the photo does not decode as a {declared} image ({type(exc).__name__})", field="photo") from None
    pixels.thumbnail((MAX_SIDE, MAX_SIDE))
    out = io.BytesIO()
    pixels.save(out, "JPEG", quality=85, optimize=True)  # no exif=, no comment: nothing but pixels
    stored = out.getvalue()
    return Photo(hashlib.sha256(stored).hexdigest(), stored, pixels.width, pixels.height)


async def store(conn: psycopg.AsyncConnection, photo: Photo) -> str:
    """Keep ``photo`` (once per hash); its hash."""
    await conn.execute(
        "INSERT INTO report_photos (sha256, content_type, bytes, width, height) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (sha256) DO NOTHING",
        (photo.sha256, CONTENT_TYPE, photo.data, photo.width, photo.height),
    )
    return photo.sha256


async def fetch(conn: psycopg.AsyncConnection, sha256: str) -> bytes | None:
    """The stored bytes named ``sha256`` (64 lower-case hex digits, else refused), or None."""
    if not (len(sha256) == 64 and all(c in "0123456789abcdef" for c in sha256)):
        raise Refused("invalid_field", "a photo is named by 64 lower-case hex digits (its SHA-256)", field="sha256")
    row = await (await conn.execute("SELECT bytes FROM report_photos WHERE sha256 = %s", (sha256,))).fetchone()
    return bytes(row[0]) if row else None
