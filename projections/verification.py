"""The verification read model: per label its state, trail and scans.

Built from ``label-events`` by :class:`VerificationProjector` (a
:class:`consumers.exactly_once.TransactionalConsumer`). Every record is
re-verified before it has any effect: canonical decoding, the signer's key as
of the record's log index, the Ed25519 signature, the chain link and the
lifecycle rules — the same functions the ledger used. A record that fails is
quarantined; a record delivered twice has no second effect. A batch label's event read
before the batch event that issued it (another partition) raises
:class:`ledger.errors.Waiting`: the consumer parks it and applies it after the batch.
"""

from __future__ import annotations

import dataclasses
import operator
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import dict_row

from ledger import batches, commitments, pins
from ledger.batches import Batch
from ledger.commitments import SealKey
from ledger.crash_points import crash_point
from ledger.errors import Refused, Waiting
from ledger.events import SignedEvent
from ledger.lifecycle import ActorState, LabelState, LotState, authorize, fold, signer_of
from ledger.logging_setup import get_logger
from ledger.preverify import BatchChecker
from ledger.record_headers import header
from ledger.registry import ActorSource
from projections import alert_chains, bulk, certificates, containers, shopper_facts
from projections import lots as lot_graph
from projections.verdict import verdict

DEFAULT_SCHEMA = "verification"
log = get_logger("projector")

_LABEL_COLUMNS = [f.name for f in dataclasses.fields(LabelState)]
_label_values = operator.attrgetter(*_LABEL_COLUMNS)
_LABEL_ROW_COLUMNS = _LABEL_COLUMNS + ["scan_count", "first_scanned_at", "last_event_at"]
_BATCH_COLUMNS = ["batch_id", "event_id", "kind", "actor", "count", "labels_root", "hash", "log_index", "occurred_at"]
_EVENT_COLUMNS = ["subject_type", "subject", "seq", "event_id", "kind", "actor", "region", "occurred_at", "hash", "log_index"]


# The tables are ledger/migrations/verification/ (laid out per schema by ledger.migrate).


@dataclass
class _Row:
    """A subject's read model row while a batch is being applied."""

    state: LabelState | LotState
    scan_count: int = 0
    first_scanned_at: datetime | None = None
    last_event_at: datetime | None = None
    dirty: bool = False


@dataclass(frozen=True)
class Applied:
    """A record that passed every check and was applied (what other handlers build on)."""

    signed: SignedEvent
    signer: ActorState
    before: LabelState | LotState | None  # the subject's state before the event
    after: LabelState | LotState
    log_index: int | None


class VerificationProjector:
    """The record handler; plug into a TransactionalConsumer.

    Works a poll batch at a time: ``prepare`` loads the rows of every subject
    in the batch with two queries, each record is checked and applied in
    memory, and ``flush`` writes the new events with one COPY and the changed
    labels with one staged upsert (:mod:`projections.bulk`), inside the
    consumer's transaction.
    """

    def __init__(self, schema: str, feed: ActorSource, seal_key: SealKey | None = None):
        self.s = schema
        self.feed = feed
        # Opens batches' sealed PIN secrets (event.v3); without it PIN labels of a batch are
        # projected but no PIN of theirs checks (logged once per batch).
        self.seal_key = seal_key
        self.new_batches: list[tuple] = []
        # Decodes each poll batch once and checks its signatures on threads (the costliest step).
        self.checker = BatchChecker()
        self.rows: dict[tuple[str, str], _Row | None] = {}
        self.new_events: dict[tuple[str, str, int], tuple] = {}
        self.memberships: list[tuple] = []  # containers.membership_change of applied events, in order
        self.lot_edges: list[tuple] = []  # lot graph rows of applied Transformed events
        self.changed: set[str] = set()  # subjects written by flush, see changed_subjects
        # Labels a batch movement moved whose rows were not otherwise changed in this poll batch:
        # per judged part of their new state (batches.judged_part: the same for most labels of a
        # batch), (serials, seqs, heads, last_event_at). flush writes each group with one UPDATE
        # instead of staging and upserting every column of every label.
        self.moved: dict[tuple, tuple[list, list, list, datetime]] = {}
        self.moved_serials: set[str] = set()
        # A batch movement returns None like any batch; a handler that judges each label's
        # effect (the detector) sets keep_steps and reads last_steps after each call: one
        # Applied per label, whose event is the single event the step stands for (its
        # signed bytes are the batch body's).
        self.keep_steps = False
        self.last_steps: list[Applied] = []

    # -------------------------------------------------------------- batch

    def prepare(self, cur: psycopg.Cursor, records: list) -> None:
        self.checker.prepare((rec.value for rec in records), lambda signed, i: self._signer_key(signed, records[i]))
        self.rows, self.new_events, self.new_batches = {}, {}, []
        self.memberships, self.lot_edges = [], []
        self.moved, self.moved_serials = {}, set()
        labels, lots = set(), set()
        for rec in records:
            key = (rec.key or b"").decode("utf-8", "replace")
            labels.add(key)
            if len(key) > 15 and key[14] == "/":  # may be a lot key (or a serial with a '/')
                lots.add(key)
        if labels:
            cur.execute(f"SELECT {', '.join(_LABEL_COLUMNS)}, scan_count, first_scanned_at, last_event_at FROM {self.s}.labels WHERE serial = ANY(%s)", (list(labels),))
            for row in cur.fetchall():
                n = len(_LABEL_COLUMNS)
                self.rows[("label", row[0])] = _Row(LabelState(*row[: n - 1], head=bytes(row[n - 1])), *row[n:])
            for serial in labels:
                self.rows.setdefault(("label", serial), None)
        if lots:
            found_lots = lot_graph.load(cur, self.s, list(lots))
            for key in lots:
                self.rows[("lot", key)] = _Row(found_lots[key]) if key in found_lots else None
        boxes = containers.container_keys(labels)
        found_boxes = containers.load(cur, self.s, boxes)
        for key in boxes:
            self.rows[("container", key)] = _Row(found_boxes[key]) if key in found_boxes else None
        alerts = [key for key in labels if alert_chains.is_alert_key(key)]
        found = alert_chains.load(cur, self.s, alerts)
        for key in alerts:
            self.rows[("alert", key)] = _Row(found[key]) if key in found else None

    def flush(self, cur: psycopg.Cursor) -> None:
        # New events are never in the table yet (a stored seq is a duplicate or a conflict,
        # refused before any effect), so COPY appends them; labels are upserted set-based.
        if self.new_events:
            bulk.copy_rows(cur, f"{self.s}.events", _EVENT_COLUMNS, self.new_events.values())
        staged_batches = bool(self.new_batches)
        if self.new_batches:
            bulk.copy_rows(cur, f"{self.s}.batches", _BATCH_COLUMNS, self.new_batches)
            self.new_batches = []
        self._write_moved(cur)
        dirty = [(k, r) for k, r in self.rows.items() if r is not None and r.dirty]
        labels = [(*_label_values(r.state), r.scan_count, r.first_scanned_at, r.last_event_at) for k, r in dirty if k[0] == "label"]
        bulk.upsert_rows(cur, f"{self.s}.labels", _LABEL_ROW_COLUMNS, "serial", labels)
        lot_graph.save(cur, self.s, [r.state for k, r in dirty if k[0] == "lot"])
        containers.save(cur, self.s, [r.state for k, r in dirty if k[0] == "container"])
        containers.save_memberships(cur, self.s, self.memberships)
        lot_graph.save_edges(cur, self.s, self.lot_edges)
        self.memberships, self.lot_edges = [], []
        alert_chains.save(cur, self.s, [r.state for k, r in dirty if k[0] == "alert"])
        for key, r in dirty:
            r.dirty = False
            self.changed.add(key[1])
        self.new_events = {}
        if staged_batches:
            crash_point("projector.batch_staged")  # tests only: every row of the batch written, nothing committed

    def _write_moved(self, cur: psycopg.Cursor) -> None:
        """One ``UPDATE ... FROM unnest(...)`` per group of :attr:`moved` labels; before the upsert
        of dirty rows, which holds the latest state of any label also changed after its batch."""
        sets = ", ".join(f"{c} = %s" for c in batches.JUDGED_FIELDS)
        sql = (f"UPDATE {self.s}.labels l SET {sets}, seq = u.seq, head = u.head, last_event_at = %s "
               "FROM unnest(%b::text[], %b::bigint[], %b::bytea[]) AS u(serial, seq, head) WHERE l.serial = u.serial")
        for (judged, _), (serials, seqs, heads, at) in self.moved.items():
            cur.execute(sql, (*judged, at, serials, seqs, heads))
            if cur.rowcount != len(serials):  # each was read from the table in this transaction
                raise RuntimeError(f"a batch movement updated {cur.rowcount} of {len(serials)} label rows")
            self.changed.update(serials)
        self.moved, self.moved_serials = {}, set()

    # -------------------------------------------------------------- record

    def __call__(self, cur: psycopg.Cursor, record) -> Applied | None:
        """Check and apply one record; None if it was delivered before."""
        self.last_steps = []
        if record.value is None:
            raise Refused("malformed_encoding", "record has no value")
        signed = self.checker.signed(record.value)
        e = signed.event
        if e.subject_type == "batch":
            return self._apply_batch(cur, record, signed)
        if e.subject_type in ("certificate", "product"):
            return certificates.apply(cur, self.s, record, signed, self.feed)  # event.v4 subjects: their own read model, same checks
        if e.subject_type not in ("label", "lot", "alert", "container"):
            raise Refused("invalid_field", f"a {e.subject_type} event does not belong on the label topic", field="subject_type")
        if record.key != e.subject.encode():
            raise Refused("key_mismatch", "record key is not the event's subject", field="key")
        raw_index = header(record, "log_index")
        log_index = int(raw_index) if raw_index is not None else None
        row = self._row(cur, e.subject_type, e.subject)
        state = row.state if row else None
        if state is not None and e.seq <= state.seq:
            if self._stored_hash(cur, e.subject_type, e.subject, e.seq) == signed.hash:
                # Delivered again: no second effect. The hash covers the body only, so
                # check the signature too: a copy with a damaged one is not this event.
                signer = signer_of(e, self.feed.registry.lookup(log_index))
                if not self.checker.verify(signer.public_key, signed.body, signed.signature):
                    raise Refused("bad_signature", f"a copy of event {e.event_id} with a signature that does not verify", field="signature")
                return None
            raise Refused("conflicting_event", f"{e.subject} already has a different event {e.seq}: a fork attempt", field="seq")
        lookup = self.feed.registry.lookup(log_index)
        try:
            signer = signer_of(e, lookup)
        except Refused:
            # The actor event that makes this signer valid (a registration or
            # key rotation) may be on the actor topic but not read yet.
            self.feed.catch_up()
            signer = signer_of(e, lookup)
        if not self.checker.verify(signer.public_key, signed.body, signed.signature):
            raise Refused("bad_signature", f"signature of event {e.event_id} does not verify", field="signature")
        self._wait_for_predecessor(cur, e, state)
        # No cross-chain lookup: partitions are read in no common order, so another
        # chain's row may lag this record. The ledger checked those rules at write
        # time and the auditor re-checks them in global log order.
        authorize(state, e, signer, lookup)
        # Checked: from here on, only effects.
        new_state = fold(state, e, signed.hash)
        if row is None:
            row = self.rows[(e.subject_type, e.subject)] = _Row(new_state)
        row.state, row.dirty, row.last_event_at = new_state, True, e.occurred_at
        if e.kind == "Scanned":
            row.scan_count += 1
            row.first_scanned_at = row.first_scanned_at or e.occurred_at
        region = e.payload.get("region")
        self.new_events[(e.subject_type, e.subject, e.seq)] = (
            e.subject_type, e.subject, e.seq, e.event_id, e.kind, e.actor, region, e.occurred_at, signed.hash, log_index,
        )
        if (change := containers.membership_change(e, log_index)) is not None:
            self.memberships.append(change)
        self.lot_edges.extend(lot_graph.edges(e, log_index))
        shopper_facts.apply(cur, self.s, e)
        return Applied(signed, signer, state, new_state, log_index)

    def _wait_for_predecessor(self, cur: psycopg.Cursor, e, state: LabelState | LotState | None) -> None:
        """Raise :class:`Waiting` if ``e``'s predecessor may still come on another partition.

        A label issued by a batch event (keyed by the batch id) has its later events keyed by
        its serial: they may be read before the batch. A label without a row whose event is
        not an opening one waits for it; so does a later event while an earlier one of the
        same label waits (it would otherwise be a chain gap). A single-issued label's events
        share its partition, so for any other subject a missing row is refused as before.
        """
        if e.seq == 0:
            return
        if state is None and e.subject_type == "label":
            raise Waiting(e.subject, f"label {e.subject} has no row yet; event {e.seq} waits for the batch event that issued it")
        if state is not None and e.seq > state.seq + 1 and e.subject_type == "label":
            # A label's step in a batch movement is keyed by the batch id: it may come later.
            raise Waiting(e.subject, f"label {e.subject} is at event {state.seq}; event {e.seq} waits for the ones between (a batch step may be on another partition)")
        if state is not None and e.seq > state.seq + 1:
            cur.execute(f"SELECT 1 FROM {self.s}.pending WHERE subject = %s LIMIT 1", (e.subject,))
            if cur.fetchone() is not None:
                raise Waiting(e.subject, f"{e.subject_type} {e.subject} is at event {state.seq}; event {e.seq} waits for the ones between")

    def changed_subjects(self) -> set[str]:
        """Subjects written since the last call (what parked records may have waited for)."""
        out, self.changed = self.changed, set()
        return out

    def _apply_batch(self, cur: psycopg.Cursor, record, signed: SignedEvent) -> None:
        """Check a batch event (event.v3) whole, then apply every label of it, or refuse it whole.

        Nothing is changed before every check passed, so a refused batch leaves no label
        behind; the consumer writes the applied ones in its one transaction with the offsets.
        Returns None: handlers built on single events (the detector) see no per-label effect.
        """
        e = signed.event
        if record.key != e.subject.encode():
            raise Refused("key_mismatch", "record key is not the event's subject", field="key")
        raw_index = header(record, "log_index")
        log_index = int(raw_index) if raw_index is not None else None
        lookup = self.feed.registry.lookup(log_index)
        try:
            signer = signer_of(e, lookup)
        except Refused:
            self.feed.catch_up()
            signer = signer_of(e, lookup)
        if not self.checker.verify(signer.public_key, signed.body, signed.signature):
            raise Refused("bad_signature", f"signature of batch event {e.event_id} does not verify", field="signature")
        stored = self._stored_batch(cur, e.subject)
        if stored is not None:
            if stored == signed.hash:
                return None  # delivered again: no second effect
            raise Refused("conflicting_event", f"batch {e.subject} already has a different event", field="subject")
        manifest = header(record, "manifest")
        if manifest is None:
            raise Refused("missing_manifest", f"batch event {e.event_id} arrived without its manifest header", field="manifest")
        batch = Batch.checked(signed, manifest)
        if e.kind in batches.STEP_KINDS:
            with batches.few_collections():
                return self._apply_movement(cur, record, batch, signer, lookup, log_index)
        authorize(None, e, signer, lookup)
        serials = [s.serial for s in batch.steps]
        cur.execute(f"SELECT serial FROM {self.s}.labels WHERE serial = ANY(%b)", (serials,))
        known = {row[0] for row in cur.fetchall()} | {s for s in serials if self.rows.get(("label", s)) is not None}
        if known:
            raise Refused("label_exists", f"{len(known)} label(s) of batch {e.subject} exist already (e.g. {min(known)}): the batch is refused whole", field="manifest")
        nonces = self._pin_nonces(batch)
        # Checked: from here on, only effects.
        p, hashes = e.payload, batch.step_hashes()
        for step, head in zip(batch.steps, hashes):
            pin = pins.commitment_record(nonces(step.serial), step.pin_commitment) if step.pin_commitment else None
            state = LabelState(serial=step.serial, gtin=p["gtin"], lot=p["lot"], product=p["product"], producer=e.actor, expiry=p.get("expiry"),
                               pin_hash=pin, custodian=e.actor, issued_at=e.occurred_at, seq=0, head=head)
            self.rows[("label", step.serial)] = _Row(state, dirty=True, last_event_at=e.occurred_at)
            self.new_events[("label", step.serial, 0)] = ("label", step.serial, 0, e.event_id, "Issued", e.actor, p.get("region"), e.occurred_at, head, log_index)
        self.new_batches.append((e.subject, e.event_id, e.kind, e.actor, p["count"], p["labels_root"], signed.hash, log_index, e.occurred_at))
        shopper_facts.apply_batch(cur, self.s, e, serials)  # the labels' pages: certificates, production date (issue 17)
        return None

    def _apply_movement(self, cur: psycopg.Cursor, record, batch: Batch, signer: ActorState, lookup, log_index: int | None) -> None:
        """A batch movement: every label's step checked with its single event's rule, then applied; or none.

        A label whose row is not yet at the step before (its issuance or an earlier event is on
        another partition, not read yet) makes the whole batch wait (:class:`Waiting`, parked)
        for that label; a label already past the step is a conflict (a fork), refused whole.
        """
        e = batch.signed.event
        raw = header(record, "opening")
        opened = batches.opened_fields(e.kind, e.payload, None if raw is None else batches.Opening.from_bytes(raw))
        serials = [s.serial for s in batch.steps]
        missing = [s for s in serials if ("label", s) not in self.rows]
        if missing:  # rows of a batch's labels are loaded here, not in prepare (its key is the batch id)
            cur.execute(f"SELECT {', '.join(_LABEL_COLUMNS)}, scan_count, first_scanned_at, last_event_at FROM {self.s}.labels WHERE serial = ANY(%b)", (missing,))
            n = len(_LABEL_COLUMNS)
            for row in cur.fetchall():
                self.rows[("label", row[0])] = _Row(LabelState(*row[: n - 1], head=bytes(row[n - 1])), *row[n:])
            for serial in missing:
                self.rows.setdefault(("label", serial), None)
        rows = [self.rows[("label", s)] for s in serials]
        for step, row in zip(batch.steps, rows):
            if row is None or row.state.seq < step.seq - 1:
                raise Waiting(step.serial, f"batch {e.subject} waits for label {step.serial}'s event {step.seq - 1}")
            if row.state.seq >= step.seq:
                raise Refused("conflicting_event", f"label {step.serial} already has an event {step.seq}: batch {e.subject} is a fork attempt, refused whole", field="manifest")
        after = batches.apply_movement(batch, signer, opened, [r.state for r in rows], lookup)
        # Checked: from here on, only effects.
        kind, region = batches.STEP_KINDS[e.kind], e.payload.get("region")
        self.last_steps = []
        judged_part, moved, at = batches.judged_part, self.moved, e.occurred_at
        for step, row, state in zip(batch.steps, rows, after):
            if self.keep_steps:
                single = SignedEvent(batch.signed.body, batch.signed.signature, batches.label_event(e, step, opened))
                self.last_steps.append(Applied(single, signer, row.state, state, log_index))
            row.state, row.last_event_at = state, at
            if state.serial in self.moved_serials:  # moved twice in this poll batch: upserted whole after the groups
                row.dirty = True
            elif not row.dirty:  # a row changed before in this poll batch is upserted whole, with its latest state
                self.moved_serials.add(state.serial)
                group = moved.get(key := (judged_part(state), at))
                if group is None:
                    group = moved[key] = ([], [], [], at)
                group[0].append(state.serial)
                group[1].append(state.seq)
                group[2].append(state.head)
            self.new_events[("label", step.serial, step.seq)] = ("label", step.serial, step.seq, e.event_id, kind, e.actor, region, at, state.head, log_index)
        p = e.payload
        self.new_batches.append((e.subject, e.event_id, e.kind, e.actor, p["count"], p["labels_root"], batch.signed.hash, log_index, e.occurred_at))
        shopper_facts.apply_batch(cur, self.s, e, serials)  # a batch recall on its labels' pages (issue 17)
        return None

    def _pin_nonces(self, batch: Batch):
        """serial -> that label's PIN nonce (None when the batch has no PINs or the key is not ours)."""
        sealed = batch.signed.event.payload.get("pin_secret")
        if sealed is None:
            return lambda serial: None
        if self.seal_key is None:
            log.warning("batch_pins_unopened", batch=batch.signed.event.subject, detail="no seal key: PINs of this batch will not check")
            return lambda serial: None
        try:
            secret = self.seal_key.open(sealed)
        except Refused as refusal:
            log.warning("batch_pins_unopened", batch=batch.signed.event.subject, detail=refusal.detail)
            return lambda serial: None
        return lambda serial: commitments.pin_nonce(secret, serial)

    def _stored_batch(self, cur: psycopg.Cursor, batch_id: str) -> bytes | None:
        for row in self.new_batches:
            if row[0] == batch_id:
                return row[6]
        cur.execute(f"SELECT hash FROM {self.s}.batches WHERE batch_id = %s", (batch_id,))
        row = cur.fetchone()
        return bytes(row[0]) if row else None

    def _signer_key(self, signed: SignedEvent, record) -> bytes | None:
        """The key ``record`` should verify under, as far as the actors read so far tell (a guess for
        :class:`BatchChecker`; ``__call__`` decides with the same rules)."""
        raw_index = header(record, "log_index")
        return signer_of(signed.event, self.feed.registry.lookup(int(raw_index) if raw_index is not None else None)).public_key

    def _row(self, cur, subject_type: str, subject: str) -> _Row | None:
        return self.rows.get((subject_type, subject))  # every record's key was prepared

    def _stored_hash(self, cur, subject_type: str, subject: str, seq: int) -> bytes | None:
        pending = self.new_events.get((subject_type, subject, seq))
        if pending is not None:
            return pending[8]
        cur.execute(f"SELECT hash FROM {self.s}.events WHERE subject_type = %s AND subject = %s AND seq = %s", (subject_type, subject, seq))
        row = cur.fetchone()
        return bytes(row[0]) if row else None


def _view_sql(schema: str) -> tuple[str, str]:
    label = (
        f"SELECT l.*, COALESCE(lots.recalled, false) AS lot_recalled, "
        f"COALESCE(cardinality(lots.inputs), 0) > 0 AS lot_transformed FROM {schema}.labels l "
        f"LEFT JOIN {schema}.lots lots ON lots.gtin = l.gtin AND lots.lot = l.lot WHERE l.serial = %s"
    )
    trail = (
        f"SELECT seq, kind, actor, region, occurred_at, log_index FROM {schema}.events "
        "WHERE subject_type = 'label' AND subject = %s ORDER BY seq"
    )
    return label, trail


def extra_sql(schema: str, serial: str, label: dict | None, trail: list[dict]) -> dict[str, tuple[str, tuple]]:
    """Queries a view needs beyond the label's own chain, only when they can find something:
    containers it travelled in (it was packed at least once) and recalled input lots (its lot was transformed).

    Public on purpose: :mod:`projections.checked_view` runs the same queries, so both read paths answer alike."""
    if label is None:
        return {}
    out = {}
    if any(r["kind"] == "PackedInto" for r in trail):
        out["containers"] = (containers.containers_sql(schema), ("label", serial))
        out["steps"] = (containers.steps_sql(schema), ("label", serial))
    if label.get("lot_transformed"):
        lot_key = f"{label['gtin']}/{label['lot']}"
        out["recalled_lots"] = (lot_graph.recalled_ancestors_sql(schema), (lot_key, lot_key))
    return out


def unprojected_sql(schema: str) -> str:
    """The count of ``serial``'s accepted scans not yet in the read model (one parameter: the serial).

    Public on purpose: :mod:`projections.checked_view` embeds the same SQL in its one statement."""
    # A scan's ledger event reuses its inbox row's event id, so a row is
    # "projected" once its event id is among the model's events of that label.
    # Only scans that count publicly (``counted``): a client's repeats within a window are
    # on the ledger but not in the public query count (see :func:`repeat_scans_sql`).
    return (
        f"SELECT count(*) FROM scan_inbox i WHERE i.serial = %s AND i.kind = 'scan' AND i.counted AND NOT EXISTS ("
        f"SELECT 1 FROM {schema}.events e WHERE e.subject_type = 'label' AND e.subject = i.serial AND e.event_id = i.event_id)"
    )


def repeat_scans_sql(schema: str) -> str:
    """The count of ``serial``'s projected scans left out of its public query count (one parameter: the serial).

    A consumer querying a label again within a window (``scan_inbox.counted`` false,
    :mod:`ledger.client_limits`) is recorded on the ledger and in the read model's
    ``scan_count`` like any scan, but the public "queried N times" moves by one per
    client per window: the view subtracts these. Only such rows are visited (a partial
    index), so a label nobody repeated costs one index probe."""
    return (
        f"SELECT count(*) FROM scan_inbox i WHERE i.serial = %s AND i.kind = 'scan' AND NOT i.counted AND EXISTS ("
        f"SELECT 1 FROM {schema}.events e WHERE e.subject_type = 'label' AND e.subject = i.serial AND e.event_id = i.event_id)"
    )


def build_view(serial: str, label: dict | None, trail: list[dict], extras: dict[str, list[dict]] | None = None) -> dict:
    """The verification view from a label row, its events and ``extras`` (rows of :func:`extra_sql`). Pure."""
    if label is None:
        v, reasons, codes = verdict(None)
        return {"serial": serial, "verdict": v, "reasons": reasons, "reason_codes": codes, "scan_count": 0, "first_scanned_at": None, "trail": []}
    extras = extras or {}
    travel = containers.travelled(extras.get("containers", []), extras.get("steps", []))
    inputs = [(r["lot"], r["product"]) for r in extras.get("recalled_lots", [])]
    v, reasons, codes = verdict(label, label["lot_recalled"], travel["recalled_by"], inputs)
    # While packed, the item moves with its outermost container: that one's custody and shipment count.
    moving = travel["inside"][-1] if travel["inside"] else label
    steps = [
        {"seq": r["seq"], "kind": r["kind"], "actor": r["actor"], "region": r["region"], "at": _iso(r["occurred_at"]), "log_index": r.get("log_index")}
        for r in trail
    ] + [
        {"seq": r["seq"], "kind": r["kind"], "actor": r["actor"], "region": r["region"], "at": _iso(r["occurred_at"]), "log_index": r["log_index"], "container": r["container"]}
        for r in travel["steps"]
    ]
    if travel["steps"] and all(x["log_index"] is not None for x in steps):
        steps.sort(key=lambda x: x["log_index"])
    for x in steps:
        del x["log_index"]
    out = {
        "serial": serial,
        "verdict": v,
        "reasons": reasons,
        "reason_codes": codes,
        "product": label["product"],
        "producer": label["producer"],
        "gtin": label["gtin"],
        "lot": label["lot"],
        "expiry": label["expiry"],
        "status": moving["status"],
        "custodian": moving["custodian"],
        "territory": moving["territory"],
        "channel": moving["channel"],
        "issued_at": _iso(label["issued_at"]),
        "scan_count": label["scan_count"],
        "first_scanned_at": _iso(label["first_scanned_at"]),
        "pin_protected": label["pin_hash"] is not None,
        "trail": steps,
    }
    if travel["containers"]:
        out["containers"] = travel["containers"]
        out["in_container"] = travel["inside"][0]["sscc"] if travel["inside"] else None
    return out


def read_view(conn: psycopg.Connection, serial: str, schema: str = DEFAULT_SCHEMA) -> dict:
    """The verification view of ``serial`` (verdict ``unknown`` if never issued)."""
    label_sql, trail_sql = _view_sql(schema)
    with conn.cursor(row_factory=dict_row) as cur:
        label = cur.execute(label_sql, (serial,)).fetchone()
        trail = cur.execute(trail_sql, (serial,)).fetchall() if label else []
        extras = {name: cur.execute(sql, params).fetchall() for name, (sql, params) in extra_sql(schema, serial, label, trail).items()}
    return build_view(serial, label, trail, extras)


async def read_view_async(conn: psycopg.AsyncConnection, serial: str, schema: str = DEFAULT_SCHEMA) -> dict:
    """:func:`read_view` on an async connection (the API's event loop)."""
    label_sql, trail_sql = _view_sql(schema)
    async with conn.cursor(row_factory=dict_row) as cur:
        label = await (await cur.execute(label_sql, (serial,), prepare=True)).fetchone()
        trail = await (await cur.execute(trail_sql, (serial,), prepare=True)).fetchall() if label else []
        extras = {}
        for name, (sql, params) in extra_sql(schema, serial, label, trail).items():
            extras[name] = await (await cur.execute(sql, params, prepare=True)).fetchall()
    return build_view(serial, label, trail, extras)


async def unprojected_scans(conn: psycopg.AsyncConnection, serial: str, schema: str = DEFAULT_SCHEMA) -> int:
    """Scans of ``serial`` accepted by the API, counting publicly, but not yet in this read model."""
    row = await (await conn.execute(unprojected_sql(schema), (serial,))).fetchone()
    return row[0]


async def repeat_scans(conn: psycopg.AsyncConnection, serial: str, schema: str = DEFAULT_SCHEMA) -> int:
    """:func:`repeat_scans_sql` on an async connection."""
    row = await (await conn.execute(repeat_scans_sql(schema), (serial,))).fetchone()
    return row[0]


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None
