"""ledger.preverify: batch decoding and threaded signature checks give the same answers
as decoding and verifying each record on the spot."""

from __future__ import annotations

import pytest

from ledger.errors import Refused
from ledger.events import SignedEvent
from ledger.keys import verify_signature
from ledger.preverify import BatchChecker
from tests.helpers import Cast


def _tampered(signed: SignedEvent) -> SignedEvent:
    """The same body with one bit of the signature flipped."""
    sig = bytes([signed.signature[0] ^ 1]) + signed.signature[1:]
    return SignedEvent(body=signed.body, signature=sig, event=signed.event)


@pytest.mark.parametrize("threads", [0, 2])
def test_answers_equal_verifying_each_record_on_the_spot(threads):
    cast = Cast()
    good = [cast.issue() for _ in range(600)]  # more than two chunks
    bad = [_tampered(cast.issue()) for _ in range(5)]
    batch = good[:300] + bad + good[300:]
    acme = cast.keys["acme"].public_key
    checker = BatchChecker(threads)
    try:
        checker.prepare([s.envelope for s in batch], lambda signed, i: acme)
        for s in batch:
            decoded = checker.signed(s.envelope)
            assert (decoded.body, decoded.signature) == (s.body, s.signature)
            assert checker.verify(acme, decoded.body, decoded.signature) == verify_signature(acme, s.body, s.signature)
        assert sum(not checker.verify(acme, s.body, s.signature) for s in bad) == len(bad)
    finally:
        checker.close()


def test_a_wrong_guess_of_the_signer_is_verified_again_with_the_real_key():
    cast = Cast()
    signed = cast.issue()
    acme, other = cast.keys["acme"].public_key, cast.keys["regulator"].public_key
    checker = BatchChecker(2)
    try:
        checker.prepare([signed.envelope], lambda s, i: other)  # guessed wrong: this check answers False
        assert checker.verify(acme, signed.body, signed.signature) is True
        checker.prepare([signed.envelope], lambda s, i: acme)
        assert checker.verify(other, signed.body, signed.signature) is False
    finally:
        checker.close()


def test_a_failing_guess_or_a_bad_record_never_fails_the_batch():
    cast = Cast()
    signed = cast.issue()
    checker = BatchChecker(2)

    def guess(s, i):
        raise ValueError("log_index header is not a number")

    try:
        checker.prepare([b"\xc3\x01garbage", None, signed.envelope], guess)
        with pytest.raises(Refused) as refused:
            checker.signed(b"\xc3\x01garbage")
        assert refused.value.code in ("malformed_encoding", "unknown_schema")
        with pytest.raises(Refused, match="no value"):
            checker.signed(None)
        assert checker.signed(signed.envelope).event.event_id == signed.event.event_id
        assert checker.verify(cast.keys["acme"].public_key, signed.body, signed.signature) is True
    finally:
        checker.close()
