"""Canonical encoding: Avro single-object encoding of ledger events.

The bytes this module produces are the bytes that are hashed, signed, stored
and put on Kafka (DESIGN invariant 3). Decoding is strict: the input must
re-encode to exactly the same bytes, so there is one and only one byte string
for each event (no malleable varints, no trailing garbage).

Single-object encoding: ``C3 01`` + the 8-byte CRC-64-AVRO fingerprint of the
schema's Parsing Canonical Form (little-endian, as fastavro returns it) + the
schemaless Avro body.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form

from ledger.errors import Refused

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
MAGIC = b"\xc3\x01"
HEADER_LEN = len(MAGIC) + 8


@dataclass(frozen=True)
class Codec:
    """Encoder/decoder for one Avro schema in single-object encoding."""

    name: str
    schema: Any
    header: bytes

    @property
    def fingerprint(self) -> str:
        return self.header[len(MAGIC):].hex()

    def encode(self, record: dict) -> bytes:
        buf = io.BytesIO()
        buf.write(self.header)
        fastavro.schemaless_writer(buf, self.schema, record)
        return buf.getvalue()

    def decode(self, data: bytes) -> dict:
        """Decode ``data``; refuse anything that is not the canonical encoding."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise Refused("malformed_encoding", f"{self.name}: expected bytes")
        data = bytes(data)
        if data[:HEADER_LEN] != self.header:
            if data[:2] != MAGIC or len(data) < HEADER_LEN:
                raise Refused("malformed_encoding", f"{self.name}: not an Avro single-object encoding")
            raise Refused(
                "unknown_schema",
                f"{self.name}: unknown schema fingerprint {data[2:HEADER_LEN].hex()}",
            )
        buf = io.BytesIO(data)
        buf.seek(HEADER_LEN)
        try:
            record = fastavro.schemaless_reader(buf, self.schema, None, return_record_name=True)
        except Exception as exc:  # fastavro raises several types on garbage
            raise Refused("malformed_encoding", f"{self.name}: cannot decode: {exc}") from None
        if buf.tell() != len(data):
            raise Refused("malformed_encoding", f"{self.name}: trailing bytes after record")
        try:
            again = self.encode(record)
        except Exception as exc:
            raise Refused("malformed_encoding", f"{self.name}: does not re-encode: {exc}") from None
        if again != data:
            raise Refused("malformed_encoding", f"{self.name}: not the canonical encoding")
        return record


@lru_cache(maxsize=None)
def codec(name: str) -> Codec:
    """The codec for ``schemas/<name>.avsc``."""
    raw = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())
    schema = fastavro.parse_schema(raw)
    pcf = to_parsing_canonical_form(schema)
    header = MAGIC + bytes.fromhex(fingerprint(pcf, "CRC-64-AVRO"))
    return Codec(name=name, schema=schema, header=header)


def event_codec() -> Codec:
    return codec("event")


def envelope_codec() -> Codec:
    return codec("signed_event")
