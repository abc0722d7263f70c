"""Split a Kafka record value (``schemas/signed_event.v1.avsc``) into body and signature, fast.

The envelope is two Avro ``bytes`` fields: a zig-zag varint length and the
bytes, twice. :meth:`ledger.encoding.Codec.decode` reads it with fastavro and
re-encodes it to prove it canonical, which costs more than everything else a
consumer does with the envelope. Being canonical here means exactly: the
right header, both lengths non-negative and minimally encoded (no overlong
varint), and nothing after the signature. :func:`split_envelope` checks just
that by hand and hands every value it does not accept to the codec, so what
is accepted, what is refused and every refusal's message stay the codec's.
"""

from __future__ import annotations

from ledger.encoding import envelope_codec

_MAX_VARINT = 10  # an Avro long is at most 10 bytes


def _length(data: bytes, pos: int) -> tuple[int, int] | None:
    """The non-negative length encoded minimally at ``pos`` and the position after it, else None."""
    raw = shift = 0
    for i in range(pos, min(pos + _MAX_VARINT, len(data))):
        b = data[i]
        raw |= (b & 0x7F) << shift
        if b < 0x80:
            if b == 0 and i > pos:  # a trailing zero group: an overlong encoding
                return None
            if raw & 1:  # zig-zag odd: a negative length
                return None
            return raw >> 1, i + 1
        shift += 7
    return None


def split_envelope(value) -> tuple[bytes, bytes]:
    """``(body, signature)`` of a record value; refuses (:class:`ledger.errors.Refused`)
    exactly what the ``signed_event`` codec refuses."""
    if type(value) is bytes:
        v1 = envelope_codec().versions[0]  # signed_event.v1: its two-field layout never changes
        if value.startswith(v1.header):
            first = _length(value, len(v1.header))
            if first is not None:
                body_end = first[1] + first[0]
                second = _length(value, body_end) if body_end <= len(value) else None
                if second is not None and second[1] + second[0] == len(value):
                    return value[first[1]:body_end], value[second[1]:]
    parts = envelope_codec().decode(value)
    return parts["body"], parts["signature"]
