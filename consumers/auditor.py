"""The regulator's auditor: re-verify the whole ledger from Kafka and public keys alone.

It never reads the ledger's database. Inputs: the actor, label and checkpoint
topics, and the log's public key (``<log key>.pub`` or ``--log-key``). For
every record, in global log order (the ``log_index`` header):

- the index is present, not seen before (nothing doubled) and, below the size
  of any signed checkpoint, without gaps (nothing missing: the relay produces
  a checkpoint only after the leaves it covers are acknowledged);
- the record key is the event's subject and the topic fits the subject type;
- a batch event (event.v3) comes with its manifest (a record header) that hashes to
  its signed ``labels_root``, and none of its labels existed before;
- the event decodes canonically, its signature verifies with the signer's key
  *as of that log index*, the signer had the authority and the chain links
  (``ledger.replay``: the ledger's own rules, not a re-implementation);
- the record is leaf ``log_index`` of the Merkle tree, whose root must equal
  the root of every signed checkpoint of that size; successive checkpoints are
  consistent because each extends the tree the auditor already verified (and,
  with ``api_url``, the log server's consistency proofs must verify too).

Every record is audited as soon as all earlier indexes have been read; the
root at each size beyond the latest verified checkpoint is kept until a
checkpoint covers it (checkpoints are published a little after their leaves).
State (offsets, Merkle frontier, actors, chain
states, verified checkpoint roots, failures) is kept in a local file, so a
second run only checks what is new and proves it consistent with what was
seen before. Failures are reported with topic, partition, offset, serial,
event id and what is wrong; they stay recorded (the ledger stays suspect).

Speed: a run of at least ``PROCESS_MIN_RECORDS`` new records hands each poll
batch to worker processes (``consumers.decode_pool``, one per core,
``Settings.audit_processes``) that decode and verify signatures while this
process reads the next batch and audits the previous one in order; a smaller
run decodes here and verifies on threads (``ledger.preverify``). Either way
every decision is taken here, in log order, by the same code.
"""

from __future__ import annotations

import os
import pickle
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import httpx
from kafka import KafkaConsumer, TopicPartition

from consumers.decode_pool import DecodePool
from ledger import batches
from ledger.config import Settings
from ledger.errors import Refused
from ledger.events import SignedEvent
from ledger.keys import key_id_of
from ledger.lifecycle import check_link, fold, signer_of
from ledger.logging_setup import get_logger
from ledger.preverify import BatchChecker
from ledger.record_headers import header
from ledger.replay import Replay
from ledger.transparency import merkle, proofs
from ledger.transparency.checkpoints import Checkpoint, CheckpointError, parse_checkpoint

log = get_logger("auditor")

STATE_VERSION = 1
# Roots kept for sizes not yet covered by a checkpoint (32 bytes each); the relay
# checkpoints every few thousand events at most, so this is never reached in practice.
MAX_RECENT_ROOTS = 1_000_000
# Below this many new records a run decodes on its own thread (worker processes take
# a moment to start); above it, worker processes decode and verify (``consumers.decode_pool``).
PROCESS_MIN_RECORDS = 5000
POLL_RECORDS = 5000


def default_processes(settings: Settings) -> int:
    """Decoding worker processes for a large audit: ``settings.audit_processes``
    (``TRACELEDGER_AUDIT_PROCESSES``), else one per core on a machine with several
    (0 = decode on the auditor's own thread)."""
    if settings.audit_processes is not None:
        return settings.audit_processes
    cores = os.cpu_count() or 1
    return cores if cores > 1 else 0


@dataclass(frozen=True)
class Failure:
    """One thing found wrong, and exactly where."""

    what: str
    code: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    log_index: int | None = None
    serial: str | None = None
    event_id: str | None = None

    def line(self) -> str:
        where = []
        if self.topic is not None:
            where.append(f"topic={self.topic} partition={self.partition} offset={self.offset}")
        for name in ("log_index", "serial", "event_id"):
            if getattr(self, name) is not None:
                where.append(f"{name}={getattr(self, name)}")
        return f"FAIL [{self.code}] {' '.join(where)}: {self.what}"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Pending:
    """A record read but not yet audited (beyond a gap or the latest checkpoint)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    log_index: int
    manifest: bytes | None = None  # a batch event's (event.v3) manifest header
    opening: bytes | None = None  # a batch movement's opening of its sealed fields (header)


@dataclass
class AuditState:
    """Everything the auditor remembers between runs (pickled to the state file)."""

    origin: str
    log_key_id: str
    topics: tuple[str, str, str]
    version: int = STATE_VERSION
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    pending: dict[int, Pending] = field(default_factory=dict)
    tree: merkle.CompactRange = field(default_factory=merkle.CompactRange)
    replay: Replay = field(default_factory=Replay)
    roots: dict[int, bytes] = field(default_factory=dict)  # verified checkpoint size -> root
    recent: dict[int, bytes] = field(default_factory=dict)  # size -> root, for sizes beyond the latest verified checkpoint
    latest: Checkpoint | None = None  # latest checkpoint whose root matched the records
    seen: Checkpoint | None = None  # largest signed checkpoint read (consistency-checked against the previous one)
    waiting: list[tuple[Checkpoint, dict]] = field(default_factory=list)  # (signed checkpoint beyond the tree, where it was read)
    failures: list[Failure] = field(default_factory=list)
    events: int = 0
    labels: int = 0
    checkpoints: int = 0

    @classmethod
    def load(cls, path: Path) -> "AuditState | None":
        if not path.exists():
            return None
        with open(path, "rb") as fh:
            state = pickle.load(fh)
        if not isinstance(state, cls) or state.version != STATE_VERSION:
            raise SystemExit(f"{path} is not an audit state file of this version")
        return state

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


@dataclass
class Report:
    """The outcome of one run."""

    new_events: int = 0
    new_checkpoints: int = 0
    waiting_records: int = 0
    failures: list[Failure] = field(default_factory=list)
    earlier_failures: int = 0
    seconds: float = 0.0
    state: AuditState | None = None

    @property
    def ok(self) -> bool:
        return not self.failures and not self.earlier_failures

    def as_dict(self) -> dict:
        s = self.state
        return {
            "ok": self.ok,
            "new_events": self.new_events,
            "new_checkpoints": self.new_checkpoints,
            "events": s.events if s else 0,
            "labels": s.labels if s else 0,
            "checkpoints": s.checkpoints if s else 0,
            "tree_size": s.tree.size if s else 0,
            "latest_checkpoint": s.latest.as_dict() if s and s.latest else None,
            "waiting_records": self.waiting_records,
            "failures": [f.as_dict() for f in self.failures],
            "earlier_failures": self.earlier_failures,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.new_events / self.seconds) if self.seconds else None,
        }


def default_state_path(settings: Settings) -> Path:
    return settings.run_dir / f"audit-{settings.topic_prefix or 'default'}.state"


class Auditor:
    """One audit run over the topics of ``settings``; see the module doc."""

    def __init__(
        self,
        settings: Settings,
        log_public_key: bytes,
        *,
        state_path: Path | None = None,
        api_url: str | None = None,
        registrar_key_id: str | None = None,
        processes: int | None = None,
        process_min_records: int = PROCESS_MIN_RECORDS,
    ):
        """``processes``: worker processes that decode and verify when at least
        ``process_min_records`` new records are to be read (default :func:`default_processes`;
        0: never). The findings are the same either way; only the speed differs."""
        self.settings = settings
        self.processes = default_processes(settings) if processes is None else processes
        self.process_min_records = process_min_records
        self.registrar_key_id = registrar_key_id  # pinned founding registrar, for a fresh state
        self.public_key = log_public_key
        self.state_path = Path(state_path or default_state_path(settings))
        self.api_url = api_url.rstrip("/") if api_url else None
        self.key_id = key_id_of(log_public_key)
        self.topics = (settings.actor_topic, settings.label_topic, settings.checkpoint_topic)

    # ------------------------------------------------------------ run

    def run(self, on_progress: Callable[[int], None] | None = None, on_total: Callable[[int], None] | None = None) -> Report:
        started = time.monotonic()
        state = AuditState.load(self.state_path) or AuditState(
            self.settings.log_origin, self.key_id, self.topics, replay=Replay(trust_anchor=self.registrar_key_id)
        )
        if (state.origin, state.log_key_id, state.topics) != (self.settings.log_origin, self.key_id, self.topics):
            raise SystemExit(f"{self.state_path} belongs to another log (origin, key or topics differ); use another --state")
        report = Report(earlier_failures=len(state.failures), state=state)
        self._unrooted: dict[int, tuple[bytes, ...]] = {}  # size -> frontier, the lazy part of state.recent
        self.checker: BatchChecker | DecodePool | None = None
        before_events, before_cps = state.events, state.checkpoints
        consumer = KafkaConsumer(**self.settings.kafka_client_config(), enable_auto_commit=False,
                                 client_id="traceledger-auditor", max_partition_fetch_bytes=4 * 1024 * 1024,
                                 # kafka-python's CRC-32C is pure Python (a third of the audit's CPU); every
                                 # record is covered by its SHA-256 leaf hash and signature anyway.
                                 check_crcs=False)
        try:
            # Checkpoint topic's end first: every leaf a checkpoint read now covers is
            # already on the event topics whose ends are taken next.
            cp_tps = self._partitions(consumer, self.settings.checkpoint_topic)
            cp_ends = consumer.end_offsets(cp_tps)
            ev_tps = self._partitions(consumer, self.settings.actor_topic) + self._partitions(consumer, self.settings.label_topic)
            ev_ends = consumer.end_offsets(ev_tps)
            for rec in self._read(consumer, cp_tps, cp_ends, state):
                self._checkpoint_record(state, report, rec)
            new_records = sum(max(0, ev_ends[tp] - state.offsets.get((tp.topic, tp.partition), 0)) for tp in ev_tps)
            if on_total:
                on_total(new_records)
            ahead = 0
            if self.processes > 0 and new_records >= self.process_min_records:
                # Worker processes decode and verify; the next poll batch is read (and handed
                # to them) before this one is audited, so they work while this thread audits.
                keys = state.replay.registry.public_keys() | self._announced_keys(consumer, [tp for tp in ev_tps if tp.topic == self.settings.actor_topic], ev_ends, state)
                self.checker, ahead = DecodePool(self.processes, keys), 1
            else:
                # Decodes each poll batch once and checks its signatures on threads while records are audited in order.
                self.checker = BatchChecker()
            for rec in self._read(consumer, ev_tps, ev_ends, state, on_batch=lambda recs: self._prefetch(state, recs), ahead=ahead):
                self._event_record(state, report, rec)
                if on_progress:
                    on_progress(1)
            self._finish(state, report)
        finally:
            consumer.close()
            if self.checker is not None:
                self.checker.close()
        state.recent.update((n, merkle.fold_right(f)) for n, f in self._unrooted.items())
        self._unrooted = {}
        report.new_events = state.events - before_events
        report.new_checkpoints = state.checkpoints - before_cps
        report.waiting_records = len(state.pending)
        state.failures.extend(report.failures)
        state.save(self.state_path)
        report.seconds = time.monotonic() - started
        for f in report.failures:
            log.error("audit_failure", **f.as_dict())
        log.info("audit_done", **{k: v for k, v in report.as_dict().items() if k not in ("failures", "latest_checkpoint")})
        return report

    def _partitions(self, consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
        parts = consumer.partitions_for_topic(topic)
        if not parts:
            raise SystemExit(f"topic {topic} does not exist on {self.settings.kafka_bootstrap}")
        return [TopicPartition(topic, p) for p in sorted(parts)]

    def _read(self, consumer: KafkaConsumer, tps: list[TopicPartition], ends: dict, state: AuditState,
              on_batch: Callable[[list], None] | None = None, ahead: int = 0):
        """Every record from the stored offsets to the snapshot ``ends``; offsets advance as read.
        ``on_batch`` sees each poll batch before its records are yielded, ``ahead`` batches early."""
        batches: deque[list] = deque()
        for batch in self._polls(consumer, tps, ends, {(tp.topic, tp.partition): state.offsets.get((tp.topic, tp.partition), 0) for tp in tps}):
            if on_batch:
                on_batch(batch)
            batches.append(batch)
            if len(batches) > ahead:
                yield from self._advance(state, batches.popleft())
        while batches:
            yield from self._advance(state, batches.popleft())

    @staticmethod
    def _advance(state: AuditState, batch: list):
        for rec in batch:
            state.offsets[(rec.topic, rec.partition)] = rec.offset + 1
            yield rec

    @staticmethod
    def _polls(consumer: KafkaConsumer, tps: list[TopicPartition], ends: dict, start: dict):
        """Poll batches (lists of records) of ``tps`` from offsets ``start`` up to ``ends``."""
        consumer.assign(tps)
        consumer.resume(*tps)  # a partition paused by an earlier pass may stay paused across assign()
        for tp in tps:
            consumer.seek(tp, start[(tp.topic, tp.partition)])
        live = {tp for tp in tps if consumer.position(tp) < ends[tp]}
        while live:
            polled = consumer.poll(timeout_ms=1000, max_records=POLL_RECORDS)
            batch = []
            for tp, recs in polled.items():
                batch.extend(rec for rec in recs if rec.offset < ends[tp])
                if consumer.position(tp) >= ends[tp]:
                    live.discard(tp)
                    consumer.pause(tp)
            yield batch

    def _announced_keys(self, consumer: KafkaConsumer, actor_tps: list[TopicPartition], ends: dict, state: AuditState) -> dict[str, bytes]:
        """Key id -> public key of every key the unread actor records announce: candidates for the
        decoding workers to verify with (only guesses; the registry judges every record in order)."""
        keys: dict[str, bytes] = {}
        start = {(tp.topic, tp.partition): state.offsets.get((tp.topic, tp.partition), 0) for tp in actor_tps}
        for batch in self._polls(consumer, actor_tps, ends, start):
            for rec in batch:
                try:
                    payload = SignedEvent.from_envelope(rec.value).event.payload
                except Exception:
                    continue  # audited (and reported) in order later
                public_key = payload.get("public_key")
                if isinstance(public_key, bytes):
                    keys[key_id_of(public_key)] = public_key
        return keys

    # ------------------------------------------------------------ checkpoints

    def _checkpoint_record(self, state: AuditState, report: Report, rec) -> None:
        where = dict(topic=rec.topic, partition=rec.partition, offset=rec.offset)
        try:
            cp = parse_checkpoint(rec.value or b"", self.public_key, origin=self.settings.log_origin)
        except CheckpointError as exc:
            report.failures.append(Failure(f"checkpoint refused: {exc}", "bad_checkpoint", **where))
            return
        known = state.roots.get(cp.size)
        if known is not None:  # re-published, or a second statement about a size already verified
            if known != cp.root:
                report.failures.append(Failure(f"checkpoint for size {cp.size} has root {cp.root.hex()[:16]}…, but the log at that size has root {known.hex()[:16]}…: a split view", "split_view", **where))
            return
        if state.seen is not None and cp.size > state.seen.size and self.api_url:
            # A witness's check: the log server must prove the new tree extends the one signed before.
            self._check_consistency_proof(state.seen, cp, report, where)
        if state.seen is None or cp.size > state.seen.size:
            state.seen = cp
        if cp.size <= state.tree.size:  # its leaves were read already (checkpoints trail their leaves)
            root = self._recent_root(state, cp.size)
            if root is None:
                report.failures.append(Failure(f"checkpoint for size {cp.size} arrived after the auditor passed that size (tree size {state.tree.size}); it cannot be checked", "late_checkpoint", **where))
                return
            self._verify(state, report, cp, where, root)
            return
        state.waiting.append((cp, where))
        state.waiting.sort(key=lambda item: item[0].size)

    def _verify_waiting(self, state: AuditState, report: Report) -> None:
        """Compare the tree root with every waiting checkpoint of exactly the current size."""
        while state.waiting and state.waiting[0][0].size == state.tree.size:
            cp, where = state.waiting.pop(0)
            self._verify(state, report, cp, where, self._recent_root(state, cp.size) or state.tree.root())

    def _verify(self, state: AuditState, report: Report, cp: Checkpoint, where: dict, root: bytes) -> None:
        if cp.root != root:
            report.failures.append(Failure(
                f"checkpoint root {cp.root.hex()[:16]}… for size {cp.size} does not match the root {root.hex()[:16]}… of the records on Kafka",
                "root_mismatch", **where))
            return
        if cp.size in state.roots:
            return
        state.roots[cp.size] = cp.root
        state.checkpoints += 1
        if state.latest is None or cp.size > state.latest.size:
            state.latest = cp
            state.recent = {n: r for n, r in state.recent.items() if n > cp.size}
            self._unrooted = {n: f for n, f in self._unrooted.items() if n > cp.size}

    def _recent_root(self, state: AuditState, size: int) -> bytes | None:
        """Root of the records at ``size`` (beyond the latest verified checkpoint), if kept."""
        root = state.recent.get(size)
        if root is None and size in self._unrooted:
            root = state.recent[size] = merkle.fold_right(self._unrooted.pop(size))
        return root

    def _check_consistency_proof(self, old: Checkpoint, new: Checkpoint, report: Report, where: dict) -> None:
        """Ask the log server to prove ``new`` extends ``old`` and verify (RFC 9162 §2.1.4.2)."""
        try:
            r = httpx.get(f"{self.api_url}/v1/log/proof/consistency", params={"from": old.size, "to": new.size}, timeout=30)
            r.raise_for_status()
            hashes = [bytes.fromhex(h) for h in r.json()["hashes"]]
            proofs.verify_consistency(old.size, new.size, old.root, new.root, hashes)
        except proofs.ProofError as exc:
            report.failures.append(Failure(f"consistency proof from checkpoint {old.size} to {new.size} fails: {exc}", "inconsistent", **where))
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            report.failures.append(Failure(f"could not get a consistency proof {old.size}->{new.size} from {self.api_url}: {exc}", "no_proof", **where))

    # ------------------------------------------------------------ events

    def _prefetch(self, state: AuditState, records: list) -> None:
        """Decode a poll batch and start checking its label and lot signatures (in worker processes or on threads)."""
        if isinstance(self.checker, DecodePool):
            self.checker.add(rec.value for rec in records)
            return

        def signer_key(signed: SignedEvent, i: int) -> bytes | None:
            e = signed.event
            if e.subject_type == "actor":
                return None  # the registry checks actor events itself, in order
            return signer_of(e, state.replay.registry.lookup(int(header(records[i], "log_index")))).public_key

        self.checker.add((rec.value for rec in records), signer_key)

    def _event_record(self, state: AuditState, report: Report, rec) -> None:
        raw = header(rec, "log_index")
        where = dict(topic=rec.topic, partition=rec.partition, offset=rec.offset)
        try:
            index = int(raw) if raw is not None else None
        except ValueError:
            index = None
        if index is None or index < 0:
            report.failures.append(self._locate(rec, Failure("record has no valid log_index header: not published by the log's relay", "no_log_index", **where)))
            return
        if index < state.tree.size or index in state.pending:
            first = state.pending.get(index)
            already = f" (first at {first.topic}:{first.partition}:{first.offset})" if first else " (already audited)"
            report.failures.append(self._locate(rec, Failure(f"log index {index} appears twice{already}: a doubled or replayed record", "doubled_index", log_index=index, **where)))
            return
        state.pending[index] = Pending(rec.topic, rec.partition, rec.offset, rec.key, rec.value, index, header(rec, "manifest"), header(rec, "opening"))
        while state.tree.size in state.pending:  # audit the contiguous run from the tree's size
            self._audit_one(state, report, state.pending.pop(state.tree.size))
            if len(state.recent) + len(self._unrooted) < MAX_RECENT_ROOTS:
                # The frontier now, hashed into a root only if a checkpoint or a later run needs it:
                # most sizes are passed by a verified checkpoint and forgotten unhashed.
                self._unrooted[state.tree.size] = tuple([h for _, h in state.tree.nodes])
            self._verify_waiting(state, report)

    def _audit_one(self, state: AuditState, report: Report, p: Pending) -> None:
        state.tree.append(merkle.leaf_hash(p.value or b""))
        state.events += 1
        where = dict(topic=p.topic, partition=p.partition, offset=p.offset, log_index=p.log_index)
        try:
            if p.value is None:
                raise Refused("malformed_encoding", "record has no value")
            signed = self.checker.signed(p.value)
        except Refused as exc:
            report.failures.append(Failure(f"record does not decode as a signed event: {exc.detail}", exc.code, **where))
            return
        except Exception as exc:  # fastavro errors on garbage
            report.failures.append(Failure(f"record does not decode as a signed event: {type(exc).__name__}: {exc}", "malformed_encoding", **where))
            return
        e = signed.event
        where.update(serial=e.subject, event_id=e.event_id)
        expected_topic = self.settings.actor_topic if e.subject_type == "actor" else self.settings.label_topic
        if p.topic != expected_topic:
            report.failures.append(Failure(f"a {e.subject_type} event does not belong on {p.topic}", "wrong_topic", **where))
            return
        if p.key != e.subject.encode():
            report.failures.append(Failure("record key is not the event's subject", "key_mismatch", **where))
            return
        try:
            if e.subject_type == "batch" and e.kind in batches.STEP_KINDS:
                replay_movement(state.replay, signed, p.manifest, getattr(p, "opening", None), p.log_index, verify=self.checker.verify)
                return
            if e.subject_type == "batch":
                batch = state.replay.apply_batch(signed, p.manifest, p.log_index, verify=self.checker.verify)
                state.labels += len(batch.steps) if e.kind == "BatchIssued" else 0
                return
            state.replay.apply(signed, p.log_index, verify=self.checker.verify)
        except Refused as exc:
            report.failures.append(Failure(f"{exc.code}: {exc}", exc.code, **where))
            return
        if e.subject_type == "label" and e.kind == "Issued":
            state.labels += 1

    def _locate(self, rec, failure: Failure) -> Failure:
        """Add serial and event id to a failure when the record still decodes."""
        try:
            e = SignedEvent.from_envelope(rec.value).event
            return Failure(**{**failure.as_dict(), "serial": e.subject, "event_id": e.event_id})
        except Exception:
            return failure

    def _finish(self, state: AuditState, report: Report) -> None:
        """After reading everything: a checkpoint not reached means missing records."""
        if state.waiting and state.tree.size < state.waiting[0][0].size:
            cp, where = state.waiting[0]
            beyond = sorted(i for i in state.pending if i < cp.size)
            report.failures.append(Failure(
                f"log index {state.tree.size} is missing from Kafka, yet checkpoint size {cp.size} covers it"
                + (f" ({len(beyond)} later records up to {beyond[-1]} are present)" if beyond else ""),
                "missing_index", log_index=state.tree.size, **where))


def replay_movement(replay: Replay, signed: SignedEvent, manifest: bytes | None, opening: bytes | None, log_index: int,
                    verify: Callable[[bytes, bytes, bytes], bool]) -> batches.Batch:
    """Audit a batch movement (event.v3) in log order and fold its label steps in; all or nothing.

    The signature under the signer's key as of ``log_index``; the manifest against the signed
    count and ``labels_root``; the ``opening`` header against the signed ``sealed``
    commitment (a wrong or missing opening is a failure: the fields the readers were told are
    not what the actor signed); then each label's step with the rule of its single event.
    """
    if manifest is None:
        raise Refused("missing_manifest", f"batch event {signed.event.event_id} has no manifest", field="manifest")
    batch = batches.Batch.checked(signed, manifest)
    e = signed.event
    if ("batch", e.subject) in replay.states:
        raise Refused("replayed", f"batch {e.subject} is already in the log: a replayed record", field="subject")
    lookup = replay.registry.lookup(log_index)
    signer = signer_of(e, lookup)
    if not verify(signer.public_key, signed.body, signed.signature):
        raise Refused("bad_signature", f"signature of batch event {e.event_id} does not verify with {e.actor}'s key", field="signature")
    check_link(None, e)
    opened = batches.opened_fields(e.kind, e.payload, None if opening is None else batches.Opening.from_bytes(opening))
    with batches.few_collections():
        after = batches.apply_movement(batch, signer, opened, [replay.states.get(("label", s.serial)) for s in batch.steps], lookup)
    for step, state in zip(batch.steps, after):
        replay.states[("label", step.serial)] = state
    replay.states[("batch", e.subject)] = fold(None, e, signed.hash)
    return batch
