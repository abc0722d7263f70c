"""Worker-process decoding for the auditor: the same events, the same errors, the same verdicts."""

from __future__ import annotations

import pytest

from consumers.decode_pool import DecodePool
from ledger.encoding import MAGIC
from ledger.events import SignedEvent
from ledger.keys import KeyPair, verify_signature
from tests.helpers import Cast, scanned_payload


def outcome(decode, value):
    """(event, body, signature) of a decoded value, or (exception type, message)."""
    try:
        s = decode(value)
    except Exception as exc:
        return type(exc).__name__, str(exc)
    return s.event, s.body, s.signature


@pytest.fixture(scope="module")
def pool():
    cast = Cast()
    p = DecodePool(2, {k.key_id: k.public_key for k in cast.keys.values()})
    yield cast, p
    p.close()


def test_workers_decode_exactly_what_the_ledger_decodes_and_fail_the_same_way(pool):
    cast, p = pool
    genuine = [cast.issue() for _ in range(1200)]  # several chunks
    actor = cast.register("retailer")
    envelopes = [s.envelope for s in genuine] + [actor.envelope]
    bad = [
        b"",
        b"garbage",
        MAGIC + b"\x00" * 8 + b"\x02",  # an unknown schema
        envelopes[0] + b"\x00",  # trailing bytes
        envelopes[1][:-5],  # cut short
    ]
    values = envelopes + bad
    p.add(values)
    for value in values:
        assert outcome(p.signed, value) == outcome(SignedEvent.from_envelope, value)
    assert all(isinstance(outcome(p.signed, v)[0], str) for v in bad)  # and decoded again on the spot: still refused


def test_signature_answers_come_from_the_workers_only_for_the_exact_check(pool):
    cast, p = pool
    serial_events = [cast.issue() for _ in range(20)]
    genuine = cast.event("gateway", "label", serial_events[0].event.subject, "Scanned", scanned_payload(), advance=False)
    forger = KeyPair.generate()
    forged = SignedEvent(body=genuine.body, signature=forger.sign(genuine.body), event=genuine.event)
    before = p.answered_ahead
    p.add([s.envelope for s in serial_events] + [forged.envelope])
    for s in serial_events:
        got = p.signed(s.envelope)
        assert p.verify(cast.keys["acme"].public_key, got.body, got.signature) is True
    got = p.signed(forged.envelope)
    gateway = cast.keys["gateway"].public_key
    assert p.verify(gateway, got.body, got.signature) is False
    assert p.answered_ahead - before == len(serial_events) + 1
    # A key other than the one checked ahead, or a second ask: computed on the spot, same answer.
    assert p.verify(forger.public_key, got.body, got.signature) is True
    assert p.verify(gateway, got.body, got.signature) is verify_signature(gateway, got.body, got.signature) is False
    assert p.answered_ahead - before == len(serial_events) + 1
