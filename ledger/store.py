"""The write model on eventsourcing: one ``Chain`` aggregate per subject.

A subject (a label, a lot, an actor) is an aggregate whose stored events hold
the exact signed bytes (``body`` + ``signature``). eventsourcing's optimistic
concurrency (unique originator id + version, version = seq + 1) is what makes
a fork impossible: two writers appending event n to one chain cannot both
commit. The application's notification log is the global order the relay
follows.
"""

from __future__ import annotations

import base64
import uuid
from functools import lru_cache
from typing import Any, Iterable

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, OriginatorVersionError
from eventsourcing.persistence import StoredEvent, Transcoding

from ledger.events import GENESIS_HASH, SignedEvent, decode_signed
from ledger.lifecycle import SubjectState, fold


# Fixed namespace: chain ids are stable names, so any process can find a chain.
CHAIN_NAMESPACE = uuid.UUID("5d1c1d0e-7a52-4c1f-9f43-7472616365ab")


@lru_cache(maxsize=200_000)
def chain_id(subject_type: str, subject: str) -> uuid.UUID:
    """Aggregate id of a subject's chain: UUIDv5 of ``<subject_type>:<subject>``."""
    return uuid.uuid5(CHAIN_NAMESPACE, f"{subject_type}:{subject}")


class BytesAsBase64(Transcoding):
    type = bytes
    name = "b64"

    def encode(self, obj: bytes) -> str:
        return base64.b64encode(obj).decode()

    def decode(self, data: str) -> bytes:
        return base64.b64decode(data)


class Chain(Aggregate):
    """A subject's hash chain of signed events and the state they fold to.

    ``broken`` is set (never raised) when stored events do not link up, so a
    tampered store is reported instead of answered from.
    """

    class Started(Aggregate.Created):
        body: bytes
        signature: bytes

    class Appended(Aggregate.Event):
        body: bytes
        signature: bytes

        def apply(self, aggregate: "Chain") -> None:
            aggregate._fold(self.body, self.signature)

    def __init__(self, body: bytes, signature: bytes):
        self.state: SubjectState | None = None
        self.head: bytes = GENESIS_HASH
        self.length = 0
        self.broken: str | None = None
        self.hashes: list[bytes] = []
        self.subject: str | None = None
        self._fold(body, signature)

    @classmethod
    def start(cls, signed: SignedEvent) -> "Chain":
        e = signed.event
        return cls._create(cls.Started, id=chain_id(e.subject_type, e.subject), body=signed.body, signature=signed.signature)

    def append(self, signed: SignedEvent) -> None:
        self.trigger_event(self.Appended, body=signed.body, signature=signed.signature)

    def _fold(self, body: bytes, signature: bytes) -> None:
        try:
            signed = decode_signed(body, signature)
        except Exception as exc:  # a stored row that no longer decodes: tampering
            self.broken = self.broken or f"event {self.length} does not decode: {exc}"
            self.hashes.append(GENESIS_HASH)
            self.length += 1
            return
        e = signed.event
        self.subject = self.subject or e.subject
        if e.seq != self.length or e.prev_hash != self.head:
            self.broken = self.broken or f"event {self.length} does not link to its predecessor"
        self.state = fold(self.state, e, signed.hash)
        self.head = signed.hash
        self.hashes.append(signed.hash)
        self.length += 1


class LedgerApplication(Application):
    """eventsourcing application holding every chain (table ``ledger_events``).

    Uses a process recorder so the scan inbox worker can record its position
    (a tracking record) in the same transaction as the events it appends.
    """

    name = "ledger"

    def construct_recorder(self):
        return self.factory.process_recorder()

    def register_transcodings(self, transcoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(BytesAsBase64())

    def load_chains(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Chain]:
        """Load many chains with one query (``repository.get`` costs one per id)."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return {}
        recorder: Any = self.recorder
        sql = (
            f'SELECT originator_id, originator_version, topic, state FROM "{recorder.events_table_name}" '
            "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version"
        )
        chains: dict[uuid.UUID, Chain] = {}
        with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(sql, (ids,))
            rows = curs.fetchall()
        for row in rows:
            stored = StoredEvent(
                originator_id=row["originator_id"],
                originator_version=row["originator_version"],
                topic=row["topic"],
                state=bytes(row["state"]),
            )
            chain = chains.get(stored.originator_id)
            if chain is not None and chain.broken:
                continue  # stop folding a chain once it is known to be broken
            domain_event = self.mapper.to_domain_event(stored)
            try:
                chains[stored.originator_id] = domain_event.mutate(chain)
            except OriginatorVersionError:
                # A stored row is missing (deleted): report, never raise.
                if chain is None:
                    continue  # the first event itself is gone; the id has no chain to speak of
                chain.broken = f"stored event {chain.length} is missing (found version {stored.originator_version}): stored events were deleted"
        return chains

    def load_chain(self, subject_type: str, subject: str) -> Chain | None:
        return self.load_chains([chain_id(subject_type, subject)]).get(chain_id(subject_type, subject))
