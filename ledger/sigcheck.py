"""Ed25519 signatures of a batch, checked ahead of time on threads.

Verification is the largest single CPU cost of taking in a batch of events
(the ledger's write path, the projector, the auditor), and libsodium releases
the GIL while it works (PyNaCl calls it through cffi), so the signatures of a
batch can be checked on other cores while the caller's thread decodes, loads
and applies. The caller still decides everything itself, in order, with the
same rules: :meth:`SignatureChecks.verify` is a drop-in for
:func:`ledger.keys.verify_signature`, answered from a check made ahead only
when public key, message and signature are exactly the ones checked (a
verification is a pure function of the three), and computed on the spot
otherwise (a guessed key that turned out wrong, an event not submitted).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterable

from ledger.config import Settings
from ledger.keys import verify_signature

# Signatures per task: small enough that the first answers come back quickly.
CHUNK = 256

_shared: ThreadPoolExecutor | None = None
_shared_lock = threading.Lock()


def default_threads(settings: Settings | None = None) -> int:
    """Verification threads: ``settings.verify_threads`` (``TRACELEDGER_VERIFY_THREADS``), else one per core (0 = none).

    ``settings``: the process's (default: :meth:`Settings.from_env`, as every process builds them).
    """
    configured = (settings or Settings.from_env()).verify_threads
    return (os.cpu_count() or 1) if configured is None else configured


def shared_pool(settings: Settings | None = None) -> ThreadPoolExecutor | None:
    """The process's verification threads, :func:`default_threads` of them (None when that is 0).

    Created on first use: one pool per process, sized by the settings of that first use.
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            threads = default_threads(settings)
            if threads > 0:
                _shared = ThreadPoolExecutor(threads, thread_name_prefix="verify")
        return _shared


def _verify_chunk(chunk: list[tuple[bytes, bytes, bytes]]) -> list[bool]:
    return [verify_signature(pk, body, sig) for pk, body, sig in chunk]


class SignatureChecks:
    """Checks submitted for one batch; each answer is handed out once by :meth:`verify`.

    ``pool``: the threads to use (default: :func:`shared_pool`); ``False`` checks nothing
    ahead (every :meth:`verify` computes on the spot).
    """

    def __init__(self, pool: ThreadPoolExecutor | None | bool = None):
        self.pool = shared_pool() if pool is None else (pool or None)
        self._checks: dict[tuple[bytes, bytes], tuple[bytes, Future, int]] = {}

    def submit(self, items: Iterable[tuple[bytes, bytes, bytes]]) -> None:
        """Start checking ``(public_key, message, signature)`` triples (``items`` is consumed either way)."""
        if self.pool is None:
            for _ in items:
                pass
            return
        chunk: list[tuple[bytes, bytes, bytes]] = []
        for item in items:
            chunk.append(item)
            if len(chunk) == CHUNK:
                self._submit(chunk)
                chunk = []
        if chunk:
            self._submit(chunk)

    def _submit(self, chunk: list[tuple[bytes, bytes, bytes]]) -> None:
        future = self.pool.submit(_verify_chunk, chunk)
        for i, (pk, body, sig) in enumerate(chunk):
            self._checks[(pk, sig)] = (body, future, i)

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """:func:`ledger.keys.verify_signature`, from the check made ahead when it is the same one."""
        found = self._checks.pop((public_key, signature), None)
        if found is not None and found[0] == message:
            return found[1].result()[found[2]]
        return verify_signature(public_key, message, signature)
