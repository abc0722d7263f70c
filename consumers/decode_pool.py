"""Decode signed-event records and check their signatures in worker processes.

Decoding an event (strict Avro decode, canonical re-encode, field rules) is
Python work that holds the GIL, so threads cannot spread it over cores; a
consumer that reads far more records than one core decodes (the auditor of a
large log) hands its poll batches to a few worker processes instead. Each
worker decodes a chunk of record values with the ledger's own
:meth:`SignedEvent.from_envelope` and verifies each non-actor event's Ed25519
signature with the public key whose key id the event names, out of a map of
*candidate* keys given when the pool starts (every key the consumer knows or
expects to meet).

The consumer still decides everything itself, in order, with the same rules,
exactly as with :class:`ledger.preverify.BatchChecker` (same
``signed``/``verify`` contract): a verification answer is used only when
public key, message and signature are exactly the ones the worker checked (a
verification is a pure function of the three), and is computed on the spot
otherwise; a record the worker could not decode is decoded again on the spot,
so the consumer sees exactly the error decoding raises.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import fields
from typing import Iterable

from ledger.events import Event, SignedEvent
from ledger.keys import verify_signature
from ledger.logging_setup import get_logger

log = get_logger("decode_pool")

# Records per task: big enough that pickling and scheduling are a small share of the
# work, small enough that the first answers of a poll batch come back quickly.
CHUNK = 500
_EVENT_FIELDS = tuple(f.name for f in fields(Event))

_candidate_keys: dict[str, bytes] = {}  # in a worker: key id -> public key


def _start_worker(keys: dict[str, bytes]) -> None:
    global _candidate_keys
    _candidate_keys = keys
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A worker whose consumer was killed would wait for work forever: leave when reparented."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def _decode_chunk(values: list[bytes]) -> list[tuple | None]:
    """In a worker: per value, None (the consumer decodes it again and meets the error) or
    ``(body, signature, event fields, checked public key or None, signature ok)``. Plain
    tuples: they pickle and unpickle several times faster than the dataclasses."""
    out: list[tuple | None] = []
    for value in values:
        try:
            signed = SignedEvent.from_envelope(value)
        except Exception:
            out.append(None)
            continue
        e = signed.event
        # Actor events are checked by the registry itself, in order, against the key of that moment.
        key = _candidate_keys.get(e.key_id) if e.subject_type != "actor" else None
        ok = verify_signature(key, signed.body, signed.signature) if key is not None else False
        out.append((signed.body, signed.signature, tuple(getattr(e, name) for name in _EVENT_FIELDS), key, ok))
    return out


class DecodePool:
    """``processes`` workers decoding and checking the record values handed to :meth:`add`.

    ``candidate_keys``: key id -> Ed25519 public key of every signer the caller
    expects (only a guess; see the module doc).
    """

    def __init__(self, processes: int, candidate_keys: dict[str, bytes]):
        # Forked, so a worker starts in milliseconds with every module already imported
        # (a spawned one re-imports the CLI and the ledger: about a CPU second each). The
        # workers only compute (decode, hash, verify) and never touch what other threads of
        # the caller hold (Kafka client, logging), so forking with those threads running is
        # safe here. The caller's objects are frozen out of the garbage collector across the
        # fork, so the workers' collections never walk (and copy) the caller's heap.
        context = multiprocessing.get_context("fork")
        self._pool = ProcessPoolExecutor(processes, mp_context=context, initializer=_start_worker, initargs=(dict(candidate_keys),))
        gc.freeze()
        try:
            self._pool.submit(int).result()  # a fork context starts every worker at the first task
        finally:
            gc.unfreeze()
        self._pending: dict[bytes, tuple[Future, int]] = {}
        self._checks: dict[tuple[bytes, bytes], tuple[bytes, bool]] = {}
        self._broken = False
        self.answered_ahead = 0  # verifications answered from a worker's check

    def add(self, values: Iterable) -> None:
        """Start decoding ``values`` (record values; None is skipped). Each decoded value
        is handed out once by :meth:`signed`, then forgotten."""
        chunk: list[bytes] = []
        for value in values:
            if value is None:
                continue
            chunk.append(bytes(value))
            if len(chunk) == CHUNK:
                self._submit(chunk)
                chunk = []
        if chunk:
            self._submit(chunk)

    def _submit(self, chunk: list[bytes]) -> None:
        if self._broken:
            return
        future = self._pool.submit(_decode_chunk, chunk)
        for i, value in enumerate(chunk):
            self._pending[value] = (future, i)

    def signed(self, value) -> SignedEvent:
        """The decoded record value (decoded here if no worker did); raises what decoding raises."""
        found = self._pending.pop(bytes(value), None) if value is not None else None
        item = None
        if found is not None:
            try:
                item = found[0].result()[found[1]]
            except Exception as exc:  # a worker died: decode here from now on, same answers, slower
                if not self._broken:
                    log.warning("decode_pool_broken", error=f"{type(exc).__name__}: {exc}")
                self._broken = True
        if item is None:
            return SignedEvent.from_envelope(value)
        body, signature, event_fields, key, ok = item
        if key is not None:
            self._checks[(key, signature)] = (body, ok)
        return SignedEvent(body=body, signature=signature, event=Event(*event_fields))

    def verify(self, public_key: bytes, body: bytes, signature: bytes) -> bool:
        """:func:`ledger.keys.verify_signature`, from the worker's check when it is the same one."""
        found = self._checks.pop((public_key, signature), None)
        if found is not None and found[0] == body:
            self.answered_ahead += 1
            return found[1]
        return verify_signature(public_key, body, signature)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
