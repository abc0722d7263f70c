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
from datetime import datetime
from functools import lru_cache
from typing import Any, Iterable, Sequence

import orjson
import psycopg
from eventsourcing import persistence as es_persistence
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, OriginatorVersionError
from eventsourcing.persistence import StoredEvent, Tracking, Transcoding
from eventsourcing.postgres import PostgresFactory, PostgresProcessRecorder
from eventsourcing.utils import get_topic, retry
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from ledger import batches
from ledger.errors import Refused
from ledger.events import GENESIS_HASH, Event, SignedEvent, decode_signed
from ledger.lifecycle import LabelState, SubjectState, fold

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
        self._start_empty()
        self._fold(body, signature)

    def _start_empty(self) -> None:
        self.state: SubjectState | None = None
        self.head: bytes = GENESIS_HASH
        self.length = 0
        self.broken: str | None = None
        self.hashes: list[bytes] = []
        self.subject: str | None = None

    @classmethod
    def start(cls, signed: SignedEvent) -> "Chain":
        """A new chain whose first event is ``signed`` (pending, as ``_create`` would leave it).

        What ``cls._create(cls.Started, id=..., body=..., signature=...)`` does, without its
        generic keyword filtering and topic resolution (a third of a label's issuance cost):
        the same Started event, the same version 1, the same state (loading the stored
        event back builds an equal chain through ``__init__``).
        """
        e = signed.event
        started = cls.Started(
            originator_id=chain_id(e.subject_type, e.subject),
            originator_version=cls.INITIAL_VERSION,
            timestamp=cls.Started.create_timestamp(),
            originator_topic=_CHAIN_TOPIC,
            body=signed.body,
            signature=signed.signature,
        )
        chain = object.__new__(cls)
        chain.__base_init__(started.originator_id, started.originator_version, started.timestamp)
        chain._start_empty()
        chain._fold_signed(signed)
        chain.pending_events.append(started)
        return chain

    @classmethod
    def at_batch_step(cls, originator_id: uuid.UUID, state: LabelState, created: datetime | None = None) -> "Chain":
        """A label's chain at its step in a batch event (version 1, nothing pending): the
        batch event is stored on its own chain, so this label's next event is version 2."""
        chain = object.__new__(cls)
        chain.__base_init__(originator_id, cls.INITIAL_VERSION, created or Chain.Started.create_timestamp())
        chain._start_empty()
        chain.subject, chain.state, chain.head = state.serial, state, state.head
        chain.hashes.append(state.head)
        chain.length = 1
        return chain

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
        self._fold_signed(signed)

    def _fold_signed(self, signed: SignedEvent) -> None:
        e = signed.event
        self.subject = self.subject or e.subject
        if e.seq != self.length or e.prev_hash != self.head:
            self.broken = self.broken or f"event {self.length} does not link to its predecessor"
        self.state = fold(self.state, e, signed.hash)
        self.head = signed.hash
        self.hashes.append(signed.hash)
        self.length += 1


_CHAIN_TOPIC = get_topic(Chain)
_CHAIN_EVENT_TOPICS = {Chain.Started: get_topic(Chain.Started), Chain.Appended: get_topic(Chain.Appended)}
_CHAIN_TOPICS_STORED = frozenset(_CHAIN_EVENT_TOPICS.values())


# The stored format, for readers that check stored rows in SQL (projections.checked_view).
# A chain's event n is the row of version n + 1: topic Chain.Started for n = 0, Chain.Appended
# after; its state is eventsourcing's JSON with the signed body base64 under
# {"body": {"_type_": "b64", "_data_": ...}} (LedgerApplication.to_stored_events).

def chain_topic_sql(seq: str) -> str:
    """SQL: the topic the stored row of a chain's event at position ``seq`` (an SQL expression) carries."""
    started, appended = _CHAIN_EVENT_TOPICS[Chain.Started], _CHAIN_EVENT_TOPICS[Chain.Appended]
    return f"CASE WHEN {seq} = 0 THEN '{started}' ELSE '{appended}' END"


def signed_body_sql(state: str) -> str:
    """SQL: the signed body bytes held in ``state`` (an SQL expression: a stored row's state column).

    NULL when the state holds no base64 body; raises (a ``DataError``) when it does not
    parse: invalid UTF-8, JSON or base64, as an edited row may be.
    """
    return (
        "(SELECT CASE WHEN b->>'_type_' = 'b64' THEN decode(b->>'_data_', 'base64') END"
        f" FROM (SELECT convert_from({state}, 'UTF8')::json->'body' AS b) AS parsed)"
    )


def _fold_steps(chain: "Chain | None", steps: list, before_version: int | None, folded: dict | None = None) -> None:
    """Fold the batch steps of ``steps`` (consumed from the front) that come before stored
    version ``before_version`` (all of them for None) into ``chain``.

    ``folded`` (shared by the chains of one load) keeps, per batch event and judged part of a
    label's state, the fields a step's fold gave: the labels of one batch mostly share them, and
    a fold reads a state only through those fields (see :func:`ledger.batches.apply_movement`),
    so the others take them with their own serial, seq and step hash instead of a fold each.
    """
    while steps and (before_version is None or steps[0][0] + 1 < before_version):
        seq, head, moved = steps.pop(0)
        if chain is None or chain.broken:
            continue
        if moved is None or seq != chain.length:
            chain.broken = f"batch step {seq} does not continue the chain at {chain.length} (its batch event or opening is gone or out of place)"
            continue
        key = (moved[0].event_id, batches.judged_part(chain.state)) if folded is not None and type(chain.state) is LabelState else None
        fields = folded.get(key) if key is not None else None
        if fields is not None:
            chain.state = batches.with_position(fields, chain.state.serial, seq, head)
        else:
            event = batches.label_event(moved[0], batches.LabelStep(chain.subject, seq, chain.head), moved[1])
            chain.state = fold(chain.state, event, head)
            if key is not None:
                folded[key] = dict(chain.state.__dict__)
        chain.head = head
        chain.hashes.append(head)
        chain.length += 1
        chain.version = seq + 1


class ColumnarProcessRecorder(PostgresProcessRecorder):
    """The ledger's own writer of events, on eventsourcing's PostgreSQL process recorder.

    Reading (``select_events``, ``select_notifications``, ``max_notification_id``,
    ``max_tracking_id``, ``subscribe``) and the tracking-only ``insert_tracking`` are the
    library's; its tables are ledger/migrations/0001_event_store.sql, the layout the
    library creates (``tests/test_startup_race.py`` compares them). Writing a batch is ours, through the
    recorder's public method ``insert_events``: the library's batch insert sends one
    array of a composite type, which psycopg renders as text with a regular expression
    per field (~50 µs per event in a 1,000-event batch); ours sends one array per
    column in binary. Nothing here calls or overrides a private method of the library,
    so a new release cannot change this path underneath (``tests/test_store_recorder.py``
    pins the version, the public names used here and the table layout).

    What the transaction does is what the library's does, in the same order, in no more
    round trips (one pipeline sync, then the commit; the library syncs once more to read
    a tracking record back):

    - upsert the tracking record (single-row tracking: a position that does not move
      forward raises ``IntegrityError``, as the library's does);
    - ``LOCK TABLE ... IN EXCLUSIVE MODE`` (under the datastore's ``lock_timeout``), so
      notification ids are handed out in commit order and a reader following the
      notification log never passes over a gap that is filled later;
    - ``NOTIFY`` the table's channel (what ``subscribe`` listens to);
    - insert every row; the primary key (originator_id, originator_version) makes a
      second writer of a chain's next version fail with ``IntegrityError`` (no fork);
      ``unnest`` of several arrays yields rows in array order, so notification ids
      follow the batch.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if not self.datastore.single_row_tracking:
            raise es_persistence.ProgrammingError("the ledger's recorder keeps one tracking row per application")
        schema = Identifier(self.datastore.schema)
        events = Identifier(self.events_table_name)
        tracking = Identifier(self.tracking_table_name)
        self.upsert_tracking_statement = SQL(
            "INSERT INTO {schema}.{tracking} (application_name, notification_id) VALUES (%s, %s) "
            "ON CONFLICT (application_name) DO UPDATE SET notification_id = EXCLUDED.notification_id "
            "WHERE {schema}.{tracking}.notification_id < EXCLUDED.notification_id "
            "RETURNING notification_id"
        ).format(schema=schema, tracking=tracking)
        self.lock_statements = [
            SQL("SET LOCAL lock_timeout = '{0}s'").format(self.datastore.lock_timeout),
            SQL("LOCK TABLE {schema}.{events} IN EXCLUSIVE MODE").format(schema=schema, events=events),
        ]
        self.notify_statement = SQL("NOTIFY {0}").format(Identifier(self.channel_name))
        self.columnar_insert_statement = SQL(
            "INSERT INTO {schema}.{events} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::{id_type}[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id"
        ).format(schema=schema, events=events, id_type=Identifier(self.datastore.originator_id_type))

    @retry((es_persistence.InterfaceError, es_persistence.OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], *, tracking: Tracking | None = None,
                      **kwargs: Any) -> list[int]:
        """Store ``stored_events`` (and ``tracking``) in one transaction; their notification ids, in order."""
        failure: Exception | None = None
        ids: list[int] = []
        with self.datastore.get_connection() as conn:
            with conn.pipeline() as pipeline, conn.transaction():
                try:
                    ids = self._write(conn, pipeline, stored_events, tracking)
                except Exception as exc:
                    # Roll back, and raise once the pipeline is closed (psycopg warns otherwise).
                    failure = exc
                    raise psycopg.Rollback() from exc
            if failure is not None:
                raise failure
        return ids

    def _write(self, conn: psycopg.Connection, pipeline: Any, stored_events: Sequence[StoredEvent],
               tracking: Tracking | None) -> list[int]:
        with conn.cursor() as tracked, conn.cursor() as curs:
            if tracking is not None:
                tracked.execute(self.upsert_tracking_statement, (tracking.application_name, tracking.notification_id), prepare=True)
            new_chains = [e.originator_id for e in stored_events if e.originator_version == 1]
            if stored_events:
                for statement in self.lock_statements:
                    curs.execute(statement, prepare=True)
                if new_chains:
                    # Under the table lock a batch also takes: a label issued in a batch
                    # (public.label_heads) never gets a second first event (its chain
                    # continues at version 2, see LedgerApplication._batch_steps).
                    tracked_batch = conn.cursor()
                    tracked_batch.execute(_BATCH_OWNED_SQL, (new_chains,), prepare=True)
                # Nor a step a batch movement holds (public.label_steps: seq = version - 1).
                stepped = conn.cursor()
                stepped.execute(_STEP_TAKEN_SQL, ([e.originator_id for e in stored_events], [e.originator_version - 1 for e in stored_events]), prepare=True)
                curs.execute(self.notify_statement)
                curs.execute(
                    self.columnar_insert_statement,
                    (
                        [e.originator_id for e in stored_events],
                        [e.originator_version for e in stored_events],
                        [e.topic for e in stored_events],
                        [e.state for e in stored_events],
                    ),
                )
            # One sync for everything: a duplicate (originator_id, version) raises here.
            pipeline.sync()
            if stored_events and new_chains and tracked_batch.fetchone()["n"]:
                raise es_persistence.IntegrityError("a label of this write was issued in a batch (label_heads)")
            if stored_events and stepped.fetchone()["n"]:
                raise es_persistence.IntegrityError("a batch movement holds this step of a label (label_steps)")
            if tracking is not None and tracked.fetchone() is None:
                raise es_persistence.IntegrityError(
                    f"Failed to record tracking for {tracking.application_name} {tracking.notification_id}")
            if not stored_events:
                return []
            ids = [row["notification_id"] for row in curs.fetchall()]
        if len(ids) != len(stored_events):
            raise es_persistence.ProgrammingError(f"got {len(ids)} notification ids for {len(stored_events)} events")
        return ids


_BATCH_OWNED_SQL = "SELECT count(*) AS n FROM public.label_heads WHERE chain = ANY(%s)"
_STEP_TAKEN_SQL = (
    "SELECT count(*) AS n FROM public.label_steps s JOIN unnest(%b::uuid[], %b::bigint[]) AS t(c, q) "
    "ON s.chain = t.c AND s.seq = t.q"
)


class BatchWriter:
    """Store one batch event, its manifest and its labels' heads in one transaction.

    The same lock, notification and event row as :meth:`ColumnarProcessRecorder.insert_events`
    (so the relay sees the batch in commit order like any event), plus
    ``public.batch_manifests`` and ``public.label_heads`` (ledger/migrations/0009). Issuance
    inserts every label's head with ``ON CONFLICT DO NOTHING`` and rolls everything back
    unless every one went in and no label already has a single-event chain: a batch is
    stored whole or not at all, and one label never gets two first steps.
    """

    def __init__(self, recorder: "ColumnarProcessRecorder"):
        self.recorder = recorder

    def issue(self, stored: StoredEvent, *, event_id: str, batch_id: str, manifest: bytes, producer: str,
              heads: Sequence[tuple[str, uuid.UUID, int, bytes, int]]) -> int | None:
        """Store the batch; its notification id, or None (nothing written) if a label already exists."""
        r = self.recorder
        schema, events = r.datastore.schema, r.events_table_name
        with r.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cur:
            for statement in r.lock_statements:
                cur.execute(statement)
            chains = [h[1] for h in heads]
            cur.execute(f'SELECT count(*) AS n FROM "{schema}"."{events}" WHERE originator_id = ANY(%b::uuid[])', (chains,))
            if cur.fetchone()["n"]:
                raise _Exists("a label of this batch already has a chain of single events")
            cur.execute(
                "INSERT INTO public.label_heads (serial, chain, seq, head, producer, batch_event, leaf) "
                "SELECT s, c, q, h, %s, %s, l FROM unnest(%b::text[], %b::uuid[], %b::bigint[], %b::bytea[], %b::int[]) AS t(s, c, q, h, l) "
                "ON CONFLICT DO NOTHING",
                (producer, event_id, [h[0] for h in heads], chains, [h[2] for h in heads], [h[3] for h in heads], [h[4] for h in heads]),
            )
            if cur.rowcount != len(heads):
                raise _Exists(f"{len(heads) - cur.rowcount} label(s) of this batch were issued before")
            cur.execute("INSERT INTO public.batch_manifests (event_id, batch_id, manifest) VALUES (%s, %s, %b)", (event_id, batch_id, manifest))
            cur.execute(r.notify_statement)
            cur.execute(r.columnar_insert_statement, ([stored.originator_id], [stored.originator_version], [stored.topic], [stored.state]))
            return cur.fetchone()["notification_id"]


    def move(self, stored: StoredEvent, *, event_id: str, batch_id: str, manifest: bytes, opening: bytes | None,
             steps: Sequence[tuple[uuid.UUID, int, bytes, int]]) -> int:
        """Store a batch movement: the event, its manifest and opening, each label's step row
        ``(chain, seq, step hash, leaf)``; its notification id. Raises (nothing written) if
        another writer took one of those steps since the ledger read the heads."""
        r = self.recorder
        schema, events = r.datastore.schema, r.events_table_name
        chains, seqs = [s[0] for s in steps], [s[1] for s in steps]
        with r.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cur:
            for statement in r.lock_statements:
                cur.execute(statement)
            # Under the lock every writer takes: a single event already at one of these steps?
            cur.execute(
                f'SELECT count(*) AS n FROM "{schema}"."{events}" e JOIN unnest(%b::uuid[], %b::bigint[]) AS t(c, v) '
                "ON e.originator_id = t.c AND e.originator_version = t.v", (chains, [q + 1 for q in seqs]))
            if cur.fetchone()["n"]:
                raise _Moved("another writer appended to a label of this batch first")
            cur.execute(
                "INSERT INTO public.label_steps (chain, seq, head, batch_event, leaf) "
                "SELECT c, q, h, %s, l FROM unnest(%b::uuid[], %b::bigint[], %b::bytea[], %b::int[]) AS t(c, q, h, l) "
                "ON CONFLICT DO NOTHING",
                (event_id, chains, seqs, [s[2] for s in steps], [s[3] for s in steps]),
            )
            if cur.rowcount != len(steps):
                raise _Moved(f"another batch took the step of {len(steps) - cur.rowcount} label(s) of this batch first")
            cur.execute("INSERT INTO public.batch_manifests (event_id, batch_id, manifest) VALUES (%s, %s, %b)", (event_id, batch_id, manifest))
            if opening is not None:
                cur.execute("INSERT INTO public.batch_openings (event_id, opening) VALUES (%s, %b)", (event_id, opening))
            cur.execute(r.notify_statement)
            cur.execute(r.columnar_insert_statement, ([stored.originator_id], [stored.originator_version], [stored.topic], [stored.state]))
            return cur.fetchone()["notification_id"]


class _Moved(Exception):
    """Rolls a batch movement back: a label's step was taken by another writer first."""


class _Exists(Exception):
    """Rolls a batch's transaction back: a label in it exists already."""


def batch_refusal_reason(exc: BaseException) -> str | None:
    """The reason a :meth:`BatchWriter.issue` refused, or None for any other exception."""
    return str(exc) if isinstance(exc, _Exists) else None


def movement_race(exc: BaseException) -> str | None:
    """The reason a :meth:`BatchWriter.move` lost a race, or None for any other exception."""
    return str(exc) if isinstance(exc, _Moved) else None


def batch_openings(conn: psycopg.Connection, event_ids: Sequence[str]) -> dict[str, bytes]:
    """The stored opening (``Opening.to_bytes``) of each batch event id that has one."""
    if not event_ids:
        return {}
    rows = conn.execute("SELECT event_id, opening FROM public.batch_openings WHERE event_id = ANY(%s)", (list(event_ids),)).fetchall()
    return {row[0]: bytes(row[1]) for row in rows}


def batch_manifests(conn: psycopg.Connection, event_ids: Sequence[str]) -> dict[str, bytes]:
    """The stored manifest of each batch event id (``public.batch_manifests``)."""
    if not event_ids:
        return {}
    rows = conn.execute("SELECT event_id, manifest FROM public.batch_manifests WHERE event_id = ANY(%s)", (list(event_ids),)).fetchall()
    return {row[0]: bytes(row[1]) for row in rows}


class LedgerApplication(Application):
    """eventsourcing application holding every chain (table ``ledger_events``).

    Uses a process recorder so the scan inbox worker can record its position
    (a tracking record) in the same transaction as the events it appends
    (:class:`ColumnarProcessRecorder` on PostgreSQL).
    """

    name = "ledger"

    def construct_recorder(self):
        if not isinstance(self.factory, PostgresFactory):
            return self.factory.process_recorder()
        if not self.factory.env.get(PostgresFactory.PROCESS_RECORDER_TOPIC):
            self.factory.env[PostgresFactory.PROCESS_RECORDER_TOPIC] = get_topic(ColumnarProcessRecorder)
        # The tables are ledger/migrations/0001_event_store.sql (CREATE_TABLE=no, ledger/config.py).
        return self.factory.process_recorder()

    def to_stored_events(self, domain_events: Iterable[Any]) -> list[StoredEvent]:
        """``mapper.to_stored_event`` of each event, the chain events' JSON built directly.

        A chain event's state is four known fields (timestamp, the aggregate topic of a
        Started, body, signature): orjson renders them byte for byte as eventsourcing's
        JSON transcoder does (compact separators, UTF-8, ``{"_type_", "_data_"}`` for
        datetimes and bytes) without its generic per-object walk. Anything else, or a
        mapper that compresses or encrypts, goes through the mapper.
        """
        mapper = self.mapper
        direct = mapper.compressor is None and mapper.cipher is None
        out = []
        for e in domain_events:
            kind = type(e)
            if direct and (kind is Chain.Started or kind is Chain.Appended):
                state: dict[str, Any] = {"timestamp": {"_type_": "datetime_iso", "_data_": e.timestamp.isoformat()}}
                if kind is Chain.Started:
                    state["originator_topic"] = e.originator_topic
                state["body"] = {"_type_": "b64", "_data_": base64.b64encode(e.body).decode()}
                state["signature"] = {"_type_": "b64", "_data_": base64.b64encode(e.signature).decode()}
                out.append(StoredEvent(originator_id=e.originator_id, originator_version=e.originator_version,
                                       topic=_CHAIN_EVENT_TOPICS[kind], state=orjson.dumps(state)))
            else:
                out.append(mapper.to_stored_event(e))
        return out

    def register_transcodings(self, transcoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(BytesAsBase64())

    def signed_parts(self, stored: StoredEvent) -> tuple[bytes, bytes]:
        """``(body, signature)`` of a stored chain event (what ``mapper.to_domain_event`` holds).

        Reads the JSON of a Started/Appended row with orjson and takes the two b64 fields;
        any other row, or a mapper that compresses or encrypts, goes through the mapper.
        """
        mapper = self.mapper
        if mapper.compressor is None and mapper.cipher is None and stored.topic in _CHAIN_TOPICS_STORED:
            state = orjson.loads(stored.state)
            body, signature = state["body"], state["signature"]
            if body.get("_type_") == "b64" and signature.get("_type_") == "b64":
                return base64.b64decode(body["_data_"]), base64.b64decode(signature["_data_"])
        domain_event = mapper.to_domain_event(stored)
        return domain_event.body, domain_event.signature

    def load_chains(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Chain]:
        """Load many chains with one query (``repository.get`` costs one per id)."""
        ids = list(dict.fromkeys(ids))
        if not ids:
            return {}
        recorder: Any = self.recorder
        sql = (
            f'SELECT originator_id, originator_version, topic, state FROM "{recorder.events_table_name}" '
            "WHERE originator_id = ANY(%b) ORDER BY originator_id, originator_version"
        )
        chains: dict[uuid.UUID, Chain] = {}
        with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(sql, (ids,))
            rows = curs.fetchall()
            started = {row["originator_id"] for row in rows if row["originator_version"] == 1}
            unstarted = [i for i in ids if i not in started]
            if unstarted:  # labels issued in a batch start from their batch step (event.v3)
                chains.update(self._batch_steps(curs, unstarted))
            moves = self._movement_steps(curs, ids)  # later steps in batch movements, per chain
        folded: dict = {}  # see _fold_steps
        for row in rows:
            stored = StoredEvent(
                originator_id=row["originator_id"],
                originator_version=row["originator_version"],
                topic=row["topic"],
                state=bytes(row["state"]),
            )
            chain = chains.get(stored.originator_id)
            if stored.originator_id in moves:  # the batch steps before this stored event
                _fold_steps(chain, moves[stored.originator_id], stored.originator_version, folded)
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
        for cid, steps in moves.items():  # the batch steps after the last stored event
            _fold_steps(chains.get(cid), steps, None, folded)
        return chains

    def _movement_steps(self, curs, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[tuple[int, bytes, tuple | None]]]:
        """Each chain's steps in batch movements (``public.label_steps``), in seq order, as
        ``(seq, step hash, (batch event, opened fields))``; a step whose batch event, or whose
        needed opening, is gone stands for nothing (the chain will read as broken there)."""
        with curs.connection.cursor(row_factory=tuple_row) as plain:  # plain tuples, as in _batch_steps
            plain.execute(
                "SELECT s.chain, s.seq, s.head, m.batch_id, o.opening FROM public.label_steps s "
                "JOIN public.batch_manifests m ON m.event_id = s.batch_event "
                "LEFT JOIN public.batch_openings o ON o.event_id = s.batch_event "
                "WHERE s.chain = ANY(%b) ORDER BY s.chain, s.seq", (ids,))
            found = plain.fetchall()
        if not found:
            return {}
        wanted = list({chain_id("batch", row[3]) for row in found})
        curs.execute(
            f'SELECT originator_id, originator_version, topic, state FROM "{self.recorder.events_table_name}" '
            "WHERE originator_id = ANY(%s) AND originator_version = 1", (wanted,))
        events: dict[uuid.UUID, Event] = {}
        for row in curs.fetchall():
            body, signature = self.signed_parts(StoredEvent(row["originator_id"], row["originator_version"], row["topic"], bytes(row["state"])))
            events[row["originator_id"]] = decode_signed(body, signature).event
        opened: dict[uuid.UUID, dict | None] = {}
        out: dict[uuid.UUID, list] = {}
        moved_by: dict[str, tuple | None] = {}  # batch id -> (batch event, opened fields), one tuple per batch
        for chain, seq, head, batch_id, raw_opening in found:
            if batch_id not in moved_by:
                e = events.get(chain_id("batch", batch_id))
                try:
                    opening = None if raw_opening is None else batches.Opening.from_bytes(raw_opening)
                    opened = None if e is None else batches.opened_fields(e.kind, e.payload, opening)
                except Refused:
                    opened = None
                moved_by[batch_id] = None if e is None or opened is None else (e, opened)
            out.setdefault(chain, []).append((seq, bytes(head), moved_by[batch_id]))
        return out

    def _batch_steps(self, curs, ids: list[uuid.UUID]) -> dict[uuid.UUID, Chain]:
        """Chains of the ``ids`` that are labels issued in a batch, at their batch step (version 1).

        Such a label has no stored row of its own for its first step: ``public.label_heads``
        holds its step hash and the batch event (stored once, on the batch's chain) its fields.
        Its later single events are stored as versions 2, 3, ... and fold on top as usual.
        """
        # One row per label of up to whole batches: plain tuples (a dict per row cost more than the
        # rest of the read) and the ids sent as a binary array.
        with curs.connection.cursor(row_factory=tuple_row) as plain:
            plain.execute(
                "SELECT h.chain, h.serial, h.seq, h.head, m.batch_id FROM public.label_heads h "
                "JOIN public.batch_manifests m ON m.event_id = h.batch_event WHERE h.chain = ANY(%b)", (ids,))
            heads = plain.fetchall()
        if not heads:
            return {}
        batch_ids = {chain_id("batch", row[4]) for row in heads}
        curs.execute(
            f'SELECT originator_id, originator_version, topic, state FROM "{self.recorder.events_table_name}" '
            "WHERE originator_id = ANY(%s) AND originator_version = 1", (list(batch_ids),))
        batches = {}
        for row in curs.fetchall():
            body, signature = self.signed_parts(StoredEvent(row["originator_id"], row["originator_version"], row["topic"], bytes(row["state"])))
            batches[row["originator_id"]] = decode_signed(body, signature).event
        out = {}
        created = Chain.Started.create_timestamp()  # one for the lot: these chains are read, never saved
        for chain, serial, seq, head, batch_id in heads:
            e = batches.get(chain_id("batch", batch_id))
            if e is None or seq != 0:
                continue  # the batch event is gone: as if the label's first event were (see below)
            p = e.payload
            state = LabelState(serial=serial, gtin=p["gtin"], lot=p["lot"], product=p["product"], producer=e.actor, expiry=p.get("expiry"),
                               custodian=e.actor, issued_at=e.occurred_at, seq=0, head=bytes(head))
            out[chain] = Chain.at_batch_step(chain, state, created)
        return out

    def batch_record(self, batch_id: str) -> tuple[bytes, bytes, bytes, bytes | None] | None:
        """``(body, signature, manifest, opening or None)`` of stored batch ``batch_id``, None if absent."""
        recorder: Any = self.recorder
        with recorder.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(
                f'SELECT e.originator_id, e.originator_version, e.topic, e.state, m.manifest, o.opening FROM "{recorder.events_table_name}" e '
                "JOIN public.batch_manifests m ON m.batch_id = %s LEFT JOIN public.batch_openings o ON o.event_id = m.event_id "
                "WHERE e.originator_id = %s AND e.originator_version = 1", (batch_id, chain_id("batch", batch_id)))
            row = curs.fetchone()
        if row is None:
            return None
        body, signature = self.signed_parts(StoredEvent(row["originator_id"], row["originator_version"], row["topic"], bytes(row["state"])))
        return body, signature, bytes(row["manifest"]), None if row["opening"] is None else bytes(row["opening"])

    def load_chain(self, subject_type: str, subject: str) -> Chain | None:
        return self.load_chains([chain_id(subject_type, subject)]).get(chain_id(subject_type, subject))
