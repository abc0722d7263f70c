"""Decode a batch of Kafka records up front and check their signatures on threads.

A consumer that has a poll batch in hand (the projector, the auditor) decodes
it once, guesses each record's signer key from the actors it has read so far,
and hands the signatures to :class:`ledger.sigcheck.SignatureChecks`; by the
time its own thread reaches a record, the answer is usually waiting. The
consumer still decides everything itself, in order, with the same rules (see
``ledger.sigcheck``): a wrong guess only costs a second verification.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable

from ledger.errors import Refused
from ledger.events import SignedEvent
from ledger.sigcheck import SignatureChecks


def _decode(value) -> SignedEvent | Exception:
    if value is None:
        return Refused("malformed_encoding", "record has no value")
    try:
        return SignedEvent.from_envelope(value)
    except Exception as exc:  # kept and raised where the consumer decodes this record
        return exc


class BatchChecker:
    """Decoded records and signature checks of a consumer's batches (see module doc).

    ``threads``: None uses the process's shared verification threads, 0 none
    (everything is checked on the spot), n a pool of its own.
    """

    def __init__(self, threads: int | None = None):
        self._own = ThreadPoolExecutor(threads, thread_name_prefix="verify") if threads else None
        self._pool = self._own if threads else (None if threads is None else False)
        self._decoded: dict[bytes, SignedEvent | Exception] = {}
        self._checks = SignatureChecks(self._pool)

    def prepare(self, values: Iterable, signer_key: Callable[[SignedEvent, int], bytes | None]) -> None:
        """Forget the previous batch, then :meth:`add` ``values``."""
        self._decoded, self._checks = {}, SignatureChecks(self._pool)
        self.add(values, signer_key)

    def add(self, values: Iterable, signer_key: Callable[[SignedEvent, int], bytes | None]) -> None:
        """Decode ``values`` (record values, in order) and start checking each signature
        against ``signer_key(signed, position)`` (None: no guess). Each decoded value and
        each check is handed out once (:meth:`signed`, :meth:`verify`), then forgotten."""
        self._checks.submit(self._guesses(values, signer_key))  # a generator: checks start while decoding goes on

    def _guesses(self, values: Iterable, signer_key: Callable[[SignedEvent, int], bytes | None]):
        for position, value in enumerate(values):
            if value is None:
                continue
            value = bytes(value)
            signed = self._decoded.get(value)
            if signed is None:
                signed = self._decoded[value] = _decode(value)
            if isinstance(signed, Exception):
                continue
            try:
                pk = signer_key(signed, position)
            except Exception:  # only a guess: the consumer meets the same problem in order and decides
                pk = None
            if pk is not None:
                yield pk, signed.body, signed.signature

    def signed(self, value) -> SignedEvent:
        """The decoded record value (decoded now if it was not prepared); raises what decoding raised."""
        out = self._decoded.pop(bytes(value), None) if value is not None else None
        if out is None:
            out = _decode(value)
        if isinstance(out, Exception):
            raise out
        return out

    def verify(self, public_key: bytes, body: bytes, signature: bytes) -> bool:
        """:func:`ledger.keys.verify_signature`, from the check made ahead when it is the same one."""
        return self._checks.verify(public_key, body, signature)

    def close(self) -> None:
        if self._own is not None:
            self._own.shutdown(wait=False, cancel_futures=True)
