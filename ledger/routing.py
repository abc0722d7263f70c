"""What the relay needs from a stored event, without decoding it in full.

The relay gives every stored event a log index and puts it on Kafka: it needs
the event's id, subject type, subject and seq (the log entry's columns, the
record key and partition) and the Kafka record value (the ``signed_event``
envelope around the stored bytes). The ledger decoded, validated and checked
every event before storing it, so the relay does not do it again: it reads
the four fields at the front of the Avro body and wraps body and signature
by hand. Both are byte-exact with the codecs (``tests/test_routing.py``
compares them over many events), and anything the quick reader does not
accept goes through the full decoder, whose refusal is what the caller sees.
"""

from __future__ import annotations

from typing import NamedTuple

from ledger.encoding import HEADER_LEN, envelope_codec, event_codec
from ledger.errors import Refused

_MAX_VARINT = 10  # an Avro long is at most 10 bytes


class Route(NamedTuple):
    """The leading fields of an event body (``schemas/event.v*.avsc``: they never move)."""

    event_id: str
    subject_type: str
    subject: str
    seq: int


def _long(data: bytes, pos: int) -> tuple[int, int]:
    """The zig-zag varint at ``pos`` (minimal encoding only) and the position after it."""
    raw = shift = 0
    for i in range(pos, min(pos + _MAX_VARINT, len(data))):
        b = data[i]
        raw |= (b & 0x7F) << shift
        if b < 0x80:
            if b == 0 and i > pos:
                raise ValueError("overlong varint")
            return (raw >> 1) ^ -(raw & 1), i + 1
        shift += 7
    raise ValueError("truncated varint")


def _string(data: bytes, pos: int) -> tuple[str, int]:
    length, pos = _long(data, pos)
    end = pos + length
    if length < 0 or end > len(data):
        raise ValueError("bad string length")
    return data[pos:end].decode("utf-8"), end


def _symbols() -> dict[bytes, tuple[str, ...]]:
    """Subject type enum symbols of each known event schema version, by header."""
    out = {}
    for codec in event_codec().versions:
        subject_type = next(f for f in codec.schema["fields"] if f["name"] == "subject_type")["type"]
        out[codec.header] = tuple(subject_type["symbols"])
    return out


_SYMBOLS: dict[bytes, tuple[str, ...]] | None = None


def route(body: bytes) -> Route:
    """``event_id``, ``subject_type``, ``subject``, ``seq`` of a stored event body.

    Raises the full decoder's :class:`Refused` for bytes the quick reader does not accept.
    """
    global _SYMBOLS
    if _SYMBOLS is None:
        _SYMBOLS = _symbols()
    try:
        symbols = _SYMBOLS[bytes(body[:HEADER_LEN])]
        event_id, pos = _string(body, HEADER_LEN)
        index, pos = _long(body, pos)
        if not 0 <= index < len(symbols):
            raise ValueError("enum index out of range")
        subject, pos = _string(body, pos)
        seq, _ = _long(body, pos)
        return Route(event_id, symbols[index], subject, seq)
    except (KeyError, ValueError, UnicodeDecodeError):
        from ledger.events import SignedEvent  # the full decoder says what is wrong

        e = SignedEvent.from_parts(body, bytes(64)).event
        return Route(e.event_id, e.subject_type, e.subject, e.seq)


def _zigzag(n: int) -> bytes:
    """Avro ``long`` encoding of a non-negative ``n``."""
    n <<= 1
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def envelope(body: bytes, signature: bytes) -> bytes:
    """The Kafka record value: what ``envelope_codec().encode({"body", "signature"})`` gives."""
    if not isinstance(body, bytes) or not isinstance(signature, bytes):
        raise Refused("malformed_encoding", "signed_event: body and signature must be bytes")
    return b"".join((envelope_codec().latest.header, _zigzag(len(body)), body, _zigzag(len(signature)), signature))
