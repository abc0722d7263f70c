"""The ledger's write path: verify, authorize and append batches of signed events.

``Ledger.append`` takes client-signed events, checks each one (canonical
encoding, signature by the actor's current key, chain link, role and
ownership, legal transition) and stores the accepted ones in one transaction.
Each event gets its own result; a refused event writes nothing. The ledger
never holds a private key. A registration's GS1 prefixes must not overlap
another actor's (:mod:`ledger.prefix_claims`, checked across chains here).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Sequence

import psycopg
from eventsourcing.persistence import IntegrityError, Tracking

from ledger import alert_owners, declarations, prefix_claims
from ledger.batches import STEP_KINDS, Batch, Opening, apply_movement, few_collections, opened_fields
from ledger.config import Settings
from ledger.crash_points import crash_point
from ledger.errors import Refused
from ledger.events import DECLARATION_KINDS, MAX_CLOCK_SKEW_SECONDS, SignedEvent
from ledger.keys import verify_signature
from ledger.lifecycle import AGGREGATION_KINDS, ActorState, SubjectState, authorize, check_link, child_type, fold, is_bootstrap, signer_of
from ledger.logging_setup import get_logger
from ledger.pairing import check_pairs
from ledger.sigcheck import SignatureChecks
from ledger.store import BatchWriter, Chain, LedgerApplication, batch_refusal_reason, chain_id, movement_race

log = get_logger("ledger")

# Any fixed number: the advisory lock that serializes bootstrapping a ledger.
_BOOTSTRAP_LOCK = 0x7472616365


@dataclass(frozen=True)
class Result:
    """What happened to one submitted event."""

    index: int
    event_id: str | None
    subject: str | None
    seq: int | None
    status: str  # accepted | duplicate | refused
    hash: str | None = None
    error: Refused | None = None

    def as_dict(self) -> dict:
        out = {"index": self.index, "event_id": self.event_id, "subject": self.subject, "seq": self.seq, "status": self.status}
        if self.hash:
            out["hash"] = self.hash
        if self.error:
            out.update(self.error.as_dict())
        return out


def _signer_guesses(events: Sequence[SignedEvent], chains: dict):
    """(public key, body, signature) of each event whose signer is among the loaded chains."""
    def loaded_actor(actor_id: str) -> ActorState | None:
        c = chains.get(chain_id("actor", actor_id))
        return None if c is None else c.state

    for s in events:
        try:
            yield signer_of(s.event, loaded_actor).public_key, s.body, s.signature
        except Exception:  # only a guess (no such signer yet, ...): the check in order says what is wrong
            continue


class Ledger:
    """Write side of traceledger over one :class:`LedgerApplication`."""

    def __init__(self, settings: Settings, app: LedgerApplication | None = None):
        self.settings = settings
        self.app = app or LedgerApplication(env=settings.eventsourcing_env())

    def close(self) -> None:
        """Close the store's connection pool."""
        self.app.close()

    # ------------------------------------------------------------ reading

    def head(self, subject_type: str, subject: str) -> dict | None:
        chain = self.app.load_chain(subject_type, subject)
        if chain is None:
            return None
        return {"subject_type": subject_type, "subject": subject, "seq": chain.length - 1, "hash": chain.head.hex(), "broken": chain.broken}

    def heads(self, subjects: Sequence[tuple[str, str]]) -> dict[str, dict | None]:
        with few_collections():
            chains = self.app.load_chains(chain_id(t, s) for t, s in subjects)
        out: dict[str, dict | None] = {}
        for t, s in subjects:
            c = chains.get(chain_id(t, s))
            out[s] = None if c is None else {"seq": c.length - 1, "hash": c.head.hex(), "broken": c.broken}
        return out

    def batch(self, batch_id: str) -> tuple[Batch, Opening | None] | None:
        """A stored batch event with its manifest and (a movement's) opening; None if absent.

        The opening is confidential: callers serve it only to entitled readers
        (``traceledger/api/batches.py``)."""
        found = self.app.batch_record(batch_id)
        if found is None:
            return None
        body, signature, manifest, opening = found
        batch = Batch.checked(SignedEvent.from_parts(body, signature), manifest)
        return batch, None if opening is None else Opening.from_bytes(opening)

    def actor(self, actor_id: str) -> ActorState | None:
        chain = self.app.load_chain("actor", actor_id)
        return None if chain is None else chain.state

    # ------------------------------------------------------------ writing

    def append(
        self,
        batch: Sequence[SignedEvent | Refused],
        *,
        now: datetime | None = None,
        tracking: Tracking | None = None,
        atomic: bool = False,
    ) -> list[Result]:
        """Verify and append ``batch``; one :class:`Result` per item, in order.

        Items that failed to decode upstream arrive as :class:`Refused` and are
        reported in place. ``tracking`` (the scan inbox worker's position) is
        recorded in the same transaction as the accepted events; a tracked
        batch is all or nothing (one refusal and nothing is written).
        An ``atomic`` batch is all or nothing too: one refusal (or a lost race
        on any chain) and every event is refused, nothing written. A batch
        with aggregation events (pack/unpack) is always atomic.
        """
        now = now or datetime.now(timezone.utc)
        decoded = [s for s in batch if isinstance(s, SignedEvent)]
        atomic = atomic or any(s.event.kind in AGGREGATION_KINDS for s in decoded)
        pairing = check_pairs([s.event if isinstance(s, SignedEvent) else None for s in batch])
        wanted = {chain_id(s.event.subject_type, s.event.subject) for s in decoded}
        for s in decoded:
            wanted.add(chain_id("actor", s.event.actor))
            wanted.update(chain_id(t, x) for t, x in _named_subjects(s))
            if s.event.kind == "Shipped":
                wanted.add(chain_id("actor", s.event.payload["consignee"]))
        chains = self.app.load_chains(wanted)
        absent = {key for key in wanted if key not in chains}
        touched: dict = {}
        order: list = []  # chain of each accepted event, in batch order
        results: list[Result] = []
        bootstrapping = False
        claimed: list[int] = []  # indexes of registrations whose prefixes were claimed

        def actors(actor_id: str) -> ActorState | None:
            key = chain_id("actor", actor_id)
            if key not in chains:  # an actor named only in a payload field
                chains.update(self.app.load_chains([key]))
            c = chains.get(key)
            return None if c is None else c.state

        def subjects(subject_type: str, subject: str) -> SubjectState | None:
            # Other chains a rule looks at (a child's container, input lots), as of this
            # point in the batch: events accepted earlier in it are already folded in.
            key = chain_id(subject_type, subject)
            if key not in chains and key not in absent:
                chains.update(self.app.load_chains([key]))
                absent.update({key} - chains.keys())
            c = chains.get(key)
            return None if c is None else c.state

        # Check the batch's signatures on other cores meanwhile, each under its signer's key
        # as the batch starts; the loop below still decides, with the key as of each event.
        checks = SignatureChecks()
        checks.submit(_signer_guesses(decoded, chains))

        for index, item in enumerate(batch):
            if isinstance(item, Refused):
                results.append(Result(index, None, None, None, "refused", error=item))
                continue
            e = item.event
            key = chain_id(e.subject_type, e.subject)
            chain = chains.get(key)
            try:
                if chain is not None and e.seq < chain.length and chain.hashes[e.seq] == item.hash:
                    results.append(Result(index, e.event_id, e.subject, e.seq, "duplicate", hash=item.hash.hex()))
                    continue
                if chain is not None and chain.broken:
                    raise Refused("chain_broken", f"the stored chain of {e.subject} is broken: {chain.broken}", field="subject")
                if e.occurred_at > now + timedelta(seconds=MAX_CLOCK_SKEW_SECONDS):
                    raise Refused("invalid_field", "occurred_at is in the future", field="occurred_at")
                if index in pairing:
                    raise pairing[index]
                if is_bootstrap(e) and not touched and self._ledger_is_empty():
                    signer = fold(None, e, item.hash)
                    bootstrapping = True
                else:
                    signer = signer_of(e, actors)
                if not checks.verify(signer.public_key, item.body, item.signature):
                    raise Refused("bad_signature", f"signature does not verify under key {e.key_id[:16]}…", field="signature")
                authorize(chain.state if chain else None, e, signer, actors, subjects)
                if e.kind in DECLARATION_KINDS:  # the declared event's signer: in its chain, not in the folded state
                    declarations.check(self.app, e, signer, {batch[r.index].event.event_id: batch[r.index].event
                                                             for r in results if r.status == "accepted"})
                if e.subject_type == "alert":  # only the alert's producer (or a regulator naming it) moves it
                    alert_owners.check(self.settings.pg_conninfo, e.kind, e.subject, e.payload, opened=chain is not None)
                if e.kind == "ActorRegistered" and e.payload.get("gtin_prefixes"):
                    prefix_claims.claim(self.settings.pg_conninfo, e.subject, e.payload["gtin_prefixes"])
                    claimed.append(index)
            except Refused as refusal:
                log.info("event_refused", serial=e.subject, event_id=e.event_id, code=refusal.code, field=refusal.field, detail=refusal.detail)
                results.append(Result(index, e.event_id, e.subject, e.seq, "refused", error=refusal))
                continue
            if chain is None:
                chain = Chain.start(item)
                chains[key] = chain
            else:
                chain.append(item)
            touched[key] = chain
            order.append(key)
            results.append(Result(index, e.event_id, e.subject, e.seq, "accepted", hash=item.hash.hex()))

        try:
            if tracking is not None and any(r.status == "refused" for r in results):
                return results  # a tracked batch is all or nothing: the caller retries it
            if atomic and any(r.status == "refused" for r in results):
                first = next(r for r in results if r.status == "refused")
                results = _abort(results, Refused("batch_aborted", f"nothing written: event {first.index} of this all-or-nothing batch was refused ({first.error.code})", field="events"))
                return results
            if touched or tracking:
                self._save(touched, order, results, tracking, bootstrapping, atomic)
            return results
        finally:
            for index in claimed:  # a registration that was not stored after all gives its prefixes back
                if results[index].status != "accepted":
                    prefix_claims.release(self.settings.pg_conninfo, batch[index].event.subject)

    def append_batch(self, item: SignedEvent | Refused, manifest: bytes, *, opening: Opening | None = None, now: datetime | None = None) -> Result:
        """Verify and store one batch event (event.v3) with its manifest: all of it or nothing.

        Checks, in order: the body decodes and is a batch event; the manifest is exactly what
        the body signed (count, ``labels_root``); the signer's current key and signature; the
        signer may do this (a producer within its GS1 prefixes); then stores the event, the
        manifest and every label's head in one transaction, refusing the whole batch
        (``label_exists``, nothing written) if any label was issued before.

        A movement (``BatchShipped``, ``BatchReceived``, ``BatchRecalled``,
        ``BatchDecommissioned``) comes with the ``opening`` of its sealed confidential fields
        (:func:`ledger.batches.opened_fields`); each label's step must continue its chain and
        pass the rule of the single event it stands for (:func:`ledger.lifecycle.authorize`).
        One label refused refuses the batch, naming the label and the reason; nothing written.
        """
        now = now or datetime.now(timezone.utc)
        if isinstance(item, Refused):
            return Result(0, None, None, None, "refused", error=item)
        e = item.event
        try:
            if e.subject_type != "batch":
                raise Refused("invalid_field", "not a batch event: post single events to /v1/events", field="subject_type")
            stored = self.app.load_chain("batch", e.subject)
            if stored is not None and stored.hashes[0] == item.hash:
                return Result(0, e.event_id, e.subject, 0, "duplicate", hash=item.hash.hex())
            if stored is not None:
                raise Refused("stale_head", f"batch {e.subject} already exists with another event", field="subject")
            if e.occurred_at > now + timedelta(seconds=MAX_CLOCK_SKEW_SECONDS):
                raise Refused("invalid_field", "occurred_at is in the future", field="occurred_at")
            batch = Batch.checked(item, manifest)
            signer = signer_of(e, self.actor)
            if not verify_signature(signer.public_key, item.body, item.signature):
                raise Refused("bad_signature", f"signature does not verify under key {e.key_id[:16]}…", field="signature")
            if e.kind in STEP_KINDS:
                with few_collections():
                    self._move_batch(batch, signer, opening)
            elif opening is not None:
                raise Refused("invalid_field", f"{e.kind} seals nothing: it takes no opening", field="opening")
            else:  # subjects: the certificates a BatchIssued links are checked as an Issued's are (issue 17)
                authorize(None, e, signer, self.actor, lambda t, x: getattr(self.app.load_chains([chain_id(t, x)]).get(chain_id(t, x)), "state", None))
                self._store_batch(batch)
        except Refused as refusal:
            log.info("batch_refused", batch=e.subject, event_id=e.event_id, code=refusal.code, field=refusal.field, detail=refusal.detail)
            return Result(0, e.event_id, e.subject, 0, "refused", error=refusal)
        log.info("batch_appended", batch=e.subject, event_id=e.event_id, kind=e.kind, labels=len(batch.steps))
        return Result(0, e.event_id, e.subject, 0, "accepted", hash=item.hash.hex())

    def _move_batch(self, batch: Batch, signer: ActorState, opening: Opening | None) -> None:
        """Check every label's step of a batch movement, then store it whole (or refuse it whole)."""
        e = batch.signed.event
        check_link(None, e)  # the batch subject's own (one-event) chain
        opened = opened_fields(e.kind, e.payload, opening)
        ids = [chain_id("label", s.serial) for s in batch.steps]
        chains = self.app.load_chains(ids)
        actor_cache: dict[str, ActorState | None] = {}

        def actors(actor_id: str) -> ActorState | None:
            if actor_id not in actor_cache:
                actor_cache[actor_id] = self.actor(actor_id)
            return actor_cache[actor_id]

        states = []
        for i, (step, cid) in enumerate(zip(batch.steps, ids)):
            chain = chains.get(cid)
            if chain is not None and chain.broken:
                raise Refused("chain_broken", f"nothing written: label {step.serial} (steps[{i}]): its stored chain is broken: {chain.broken}", field=f"steps[{i}]")
            states.append(None if chain is None else chain.state)
        apply_movement(batch, signer, opened, states, actors)  # raises, naming the first label refused
        rows = [(cid, step.seq, head, i) for i, (step, cid, head) in enumerate(zip(batch.steps, ids, batch.step_hashes()))]
        self._write_batch(batch, lambda writer, stored: writer.move(
            stored, event_id=e.event_id, batch_id=e.subject, manifest=batch.manifest,
            opening=None if opening is None else opening.to_bytes(), steps=rows),
            lambda reason: Refused("stale_head", f"nothing written: {reason}; fetch the new heads and sign again", field="steps"))

    def _store_batch(self, batch: Batch) -> None:
        e = batch.signed.event
        heads = [(s.serial, chain_id("label", s.serial), s.seq, h, i) for i, (s, h) in enumerate(zip(batch.steps, batch.step_hashes()))]
        self._write_batch(batch, lambda writer, stored: writer.issue(
            stored, event_id=e.event_id, batch_id=e.subject, manifest=batch.manifest, producer=e.actor, heads=heads),
            lambda reason: Refused("label_exists", f"nothing written: {reason}", field="steps"))

    def _write_batch(self, batch: Batch, write, refusal) -> None:
        """Store ``batch`` with ``write(BatchWriter, stored event)``; a writer's own refusal (a label
        taken, a lost race) becomes ``refusal(reason)``, a second copy of the batch ``stale_head``."""
        (stored,) = self.app.to_stored_events(Chain.start(batch.signed).collect_events())
        try:
            write(BatchWriter(self.app.recorder), stored)
        except (IntegrityError, psycopg.errors.UniqueViolation):
            raise Refused("stale_head", f"batch {batch.signed.event.subject} was stored concurrently", field="subject") from None
        except Exception as exc:
            reason = batch_refusal_reason(exc) or movement_race(exc)
            if reason is None:
                raise
            raise refusal(reason) from None
        crash_point("ledger.committed")

    def _put(self, events: list, tracking: Tracking | None = None) -> None:
        """Store ``events`` (and ``tracking``) in one transaction: ``app.events.put`` with the fast mapping."""
        self.app.recorder.insert_events(self.app.to_stored_events(events), tracking=tracking)
        crash_point("ledger.committed")

    def _ledger_is_empty(self) -> bool:
        return self.app.recorder.max_notification_id() is None

    def _save(self, touched: dict, order: list, results: list[Result], tracking, bootstrapping: bool, atomic: bool = False) -> None:
        pending = {key: chain.collect_events() for key, chain in touched.items()}
        # Stored (hence logged) in the batch's order, not chain by chain: a pack's container
        # event precedes its children's, and a captured EPCIS document keeps its order.
        per_chain = {key: iter(events) for key, events in pending.items()}
        everything = [next(per_chain[key]) for key in order]
        if not everything:
            self.app.recorder.insert_tracking(tracking)
            return
        try:
            if bootstrapping:
                with psycopg.connect(self.settings.pg_conninfo, autocommit=True) as lock_conn:
                    lock_conn.execute("SELECT pg_advisory_lock(%s)", (_BOOTSTRAP_LOCK,))
                    if not self._ledger_is_empty():
                        raise IntegrityError("ledger was bootstrapped concurrently")
                    self._put(everything, tracking)
            else:
                self._put(everything, tracking)
            return
        except IntegrityError:
            if tracking is not None:
                raise  # the scan worker retries its whole batch with fresh heads
            if atomic:
                # The transaction rolled back whole: someone appended to one of these chains first.
                log.info("atomic_batch_lost_race", chains=len(pending))
                results[:] = _abort(results, Refused("stale_head", "another writer appended to a chain of this all-or-nothing batch first; fetch the new heads and sign again", field="prev_hash"))
                return
            if bootstrapping:
                for i, r in enumerate(results):
                    if r.status == "accepted":
                        results[i] = Result(r.index, r.event_id, r.subject, r.seq, "refused", error=Refused("already_initialized", "the ledger already has a registrar", field="subject"))
                return
        # Someone else appended to one of these chains first. Save chain by
        # chain so that only the events that lost the race are refused.
        log.info("append_conflict_retrying_per_chain", chains=len(pending))
        for key, events in pending.items():
            try:
                self._put(events)
            except IntegrityError:
                subject = touched[key].subject
                for i, r in enumerate(results):
                    if r.status == "accepted" and r.subject == subject:
                        results[i] = Result(
                            r.index, r.event_id, r.subject, r.seq, "refused",
                            error=Refused("stale_head", f"another writer appended to {subject} first; fetch the new head and sign again", field="prev_hash"),
                        )


def _named_subjects(signed: SignedEvent) -> list[tuple[str, str]]:
    """Chains an event's rules look at besides its own: containers, children, input lots."""
    e = signed.event
    if e.kind in ("Packed", "Unpacked"):
        return [(child_type(c), c) for c in e.payload["children"]]
    if e.kind in ("PackedInto", "UnpackedFrom"):
        return [("container", e.payload["container"])]
    if e.kind == "Transformed":
        return [("lot", key) for key in e.payload["inputs"]]
    return []


def _abort(results: list[Result], why: Refused) -> list[Result]:
    """Every accepted result of an all-or-nothing batch turned into a refusal (nothing was written)."""
    return [
        Result(r.index, r.event_id, r.subject, r.seq, "refused", error=why) if r.status == "accepted" else r
        for r in results
    ]
