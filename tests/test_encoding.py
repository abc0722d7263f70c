"""Canonical encoding: one byte string per event, strict decoding."""

import io
import json
from dataclasses import replace

import fastavro
import pytest

from ledger.encoding import MAGIC, SCHEMA_DIR, envelope_codec, event_codec
from ledger.errors import Refused
from ledger.events import SignedEvent
from ledger.keys import KeyPair, verify_signature
from tests.helpers import Cast


@pytest.fixture
def signed():
    return Cast().issue(serial="SERIAL0001")


# The single-object headers, pinned: C3 01 + the schema's CRC-64-AVRO fingerprint, little-endian
# (Avro specification, "Single object encoding"). A change here re-keys every signed byte string:
# it must be a deliberate new schema version, never an accident of a library upgrade.
EVENT_V1_HEADER = "c301" + "de1a568e88744960"
EVENT_V2_HEADER = "c301" + "dacaa1bda464ecbc"
EVENT_V3_HEADER = "c301" + "2cf484959d0505a7"
# v4 grows in session 6 (steps A, B, C) until it is released; pinned at each step.
EVENT_V4_HEADER = "c301" + "4682701a8376c4b5"
EVENT_V5_HEADER = "c301" + "164d7499b46de22b"  # session 7 (issue 19): TransactionRecorded, Corrected.corrective_epcis_ids
ENVELOPE_V1_HEADER = "c301" + "f15d2ab7d81cf112"


def crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO written from the Avro specification's reference code (not fastavro's)."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


def test_single_object_headers_are_pinned_in_hex(signed):
    assert MAGIC.hex() == "c301"
    assert signed.body[:10].hex() == EVENT_V5_HEADER  # new events: the latest version
    assert signed.envelope[:10].hex() == ENVELOPE_V1_HEADER
    assert [c.header.hex() for c in event_codec().versions] == [EVENT_V1_HEADER, EVENT_V2_HEADER, EVENT_V3_HEADER, EVENT_V4_HEADER, EVENT_V5_HEADER]


def test_the_pinned_fingerprints_are_the_specifications_crc64_little_endian():
    for path, header in [("event.v1.avsc", EVENT_V1_HEADER), ("event.v2.avsc", EVENT_V2_HEADER), ("event.v3.avsc", EVENT_V3_HEADER), ("event.v4.avsc", EVENT_V4_HEADER), ("event.v5.avsc", EVENT_V5_HEADER), ("signed_event.v1.avsc", ENVELOPE_V1_HEADER)]:
        schema = fastavro.parse_schema(json.loads((SCHEMA_DIR / path).read_text()))
        pcf = fastavro.schema.to_parsing_canonical_form(schema)
        assert crc64_avro(pcf.encode()).to_bytes(8, "little").hex() == header[4:], path


def test_round_trip_is_byte_identical(signed):
    again = SignedEvent.from_parts(signed.body, signed.signature)
    assert again.event == signed.event
    assert again.event.encode() == signed.body
    assert SignedEvent.from_envelope(signed.envelope).body == signed.body


def test_envelope_carries_body_bytes_verbatim(signed):
    buf = io.BytesIO(signed.envelope[10:])
    record = fastavro.schemaless_reader(buf, envelope_codec().schema, None)
    assert record["body"] == signed.body and record["signature"] == signed.signature


@pytest.mark.parametrize(
    "mutate, code",
    [
        (lambda b: b + b"\x00", "malformed_encoding"),  # trailing garbage
        (lambda b: b[:2] + bytes(8) + b[10:], "unknown_schema"),  # another schema's fingerprint
        (lambda b: b"\x00\x01" + b[2:], "malformed_encoding"),  # no single-object magic
        (lambda b: b[:20], "malformed_encoding"),  # truncated
        (lambda b: b"", "malformed_encoding"),
    ],
)
def test_non_canonical_bytes_are_refused(signed, mutate, code):
    with pytest.raises(Refused) as err:
        SignedEvent.from_parts(mutate(signed.body), signed.signature)
    assert err.value.code == code


def test_overlong_varint_is_not_canonical(signed):
    # Re-encode the first length prefix (event_id string, 36 chars = zigzag 72 = 0x48)
    # as a two-byte varint 0xC8 0x00: same value, different bytes -> must be refused.
    body = signed.body
    assert body[10] == 0x48
    malleable = body[:10] + b"\xc8\x00" + body[11:]
    with pytest.raises(Refused) as err:
        event_codec().decode(malleable)
    assert err.value.code == "malformed_encoding"


def test_invalid_utf8_in_a_string_is_refused(signed):
    body = bytearray(signed.body)
    body[11] = 0xFF  # first byte of event_id's text
    with pytest.raises(Refused):
        SignedEvent.from_parts(bytes(body), signed.signature)


def test_schema_can_grow_without_invalidating_signed_history(tmp_path, signed):
    """A next schema version with a new event kind: today's bytes still decode
    byte-exactly, new events are written with the new version."""
    import json

    from ledger.encoding import SCHEMA_DIR, load_family

    latest_name = event_codec().latest.name  # e.g. event.v2
    n = int(latest_name.split(".v")[1])
    current = json.loads((SCHEMA_DIR / f"{latest_name}.avsc").read_text())
    (tmp_path / f"{latest_name}.avsc").write_text(json.dumps(current))
    nxt = json.loads(json.dumps(current))
    payload = next(f for f in nxt["fields"] if f["name"] == "payload")
    payload["type"].append({"type": "record", "name": "Reported", "fields": [{"name": "reason", "type": "string"}]})
    (tmp_path / f"event.v{n + 1}.avsc").write_text(json.dumps(nxt))
    family = load_family("event", tmp_path)
    assert [c.name for c in family.versions] == [latest_name, f"event.v{n + 1}"]
    assert family.decode(signed.body) == event_codec().decode(signed.body)
    new = family.encode(signed.event.to_record() | {"payload": ("traceledger.v1.Reported", {"reason": "fake?"})})
    assert new[:10] == family.latest.header != signed.body[:10]
    assert family.decode(new)["payload"][0] == "traceledger.v1.Reported"


def test_events_signed_under_v1_still_decode_and_verify(signed):
    """History written before event.v2 existed stays valid: the v1 bytes decode
    by their fingerprint, byte-exactly, and their signature still verifies."""
    family = event_codec()
    v1 = family.versions[0]
    assert v1.name == "event.v1" and family.latest.name != "event.v1"
    body = v1.encode(signed.event.to_record())
    assert body[:10] == v1.header != signed.body[:10]
    key = KeyPair.generate()
    old = SignedEvent.from_parts(body, key.sign(body))
    # v1 has fewer payload fields than the latest schema (whose extra fields are optional)
    assert old.event == replace(signed.event, payload={k: signed.event.payload[k] for k in old.event.payload})
    assert verify_signature(key.public_key, old.body, old.signature)


def test_no_optional_field_of_the_latest_schema_is_a_named_type():
    """fastavro decodes a union branch that is a record or a named-type reference as a
    (name, value) pair: a payload would change shape between signing and reading. Optional
    fields are unions of null with a primitive, an inline enum, an array or a map only."""
    def branches(schema):
        for record in next(f for f in schema["fields"] if f["name"] == "payload")["type"]:
            for f in record["fields"]:
                if isinstance(f["type"], list):
                    yield from ((record["name"], f["name"], b) for b in f["type"])

    raw = json.loads(sorted(SCHEMA_DIR.glob("event.v*.avsc"), key=lambda p: int(p.name.split(".v")[1].split(".")[0]))[-1].read_text())
    primitives = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
    bad = [(r, f, b) for r, f, b in branches(raw) if not ((isinstance(b, str) and b in primitives) or (isinstance(b, dict) and b.get("type") in ("enum", "array", "map", "long", "string", "int")))]
    assert not bad
