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


def load_codec(path: Path) -> Codec:
    raw = json.loads(path.read_text())
    schema = fastavro.parse_schema(raw)
    pcf = to_parsing_canonical_form(schema)
    header = MAGIC + bytes.fromhex(fingerprint(pcf, "CRC-64-AVRO"))
    return Codec(name=path.stem, schema=schema, header=header)


@dataclass(frozen=True)
class SchemaFamily:
    """Every version of one schema (``<name>.v<N>.avsc``).

    New events are written with the latest version; bytes written with any
    known version still decode (by their fingerprint) and still verify, so the
    schema can grow (new event kinds) without invalidating signed history.
    """

    name: str
    versions: tuple[Codec, ...]

    @property
    def latest(self) -> Codec:
        return self.versions[-1]

    @property
    def schema(self):
        return self.latest.schema

    @property
    def fingerprint(self) -> str:
        return self.latest.fingerprint

    def encode(self, record: dict) -> bytes:
        return self.latest.encode(record)

    def decode(self, data: bytes) -> dict:
        header = bytes(data[:HEADER_LEN]) if isinstance(data, (bytes, bytearray, memoryview)) else b""
        for version in reversed(self.versions):
            if version.header == header:
                return version.decode(data)
        return self.latest.decode(data)  # raises the right Refused


def load_family(name: str, directory: Path = SCHEMA_DIR) -> SchemaFamily:
    paths = sorted(directory.glob(f"{name}.v*.avsc"), key=lambda p: int(p.name.split(".v")[1].split(".")[0]))
    if not paths:
        raise FileNotFoundError(f"no {name}.v*.avsc in {directory}")
    return SchemaFamily(name, tuple(load_codec(p) for p in paths))


@lru_cache(maxsize=None)
def codec(name: str) -> SchemaFamily:
    """All versions of ``schemas/<name>.v*.avsc``."""
    return load_family(name)


def event_codec() -> SchemaFamily:
    return codec("event")


def envelope_codec() -> SchemaFamily:
    return codec("signed_event")
