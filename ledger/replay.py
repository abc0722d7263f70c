"""Re-derive the ledger's state from signed events in log order, by the ledger's own rules.

Used by the auditor (``consumers.auditor``, from Kafka) and by offline proof
bundle verification (``ledger.transparency.bundle``). Nothing here is new policy: actor
events go through :class:`ledger.registry.ActorRegistry` (which uses
``ledger.lifecycle``), label, lot and batch events (event.v3: :meth:`Replay.apply_batch`, manifest and every label) through ``signer_of`` (the key
current *at that log index*), the Ed25519 signature, and ``authorize``/``fold``
from ``ledger.lifecycle`` — the same functions the ledger and the projector use.
"""

from __future__ import annotations

import base64
from typing import Callable

from ledger.batches import STEP_KINDS, Batch, LabelStep, Opening, label_event, opened_fields, verify_step_proof
from ledger.errors import Refused
from ledger.events import SignedEvent
from ledger.keys import verify_signature
from ledger.lifecycle import LabelState, SubjectState, authorize, check_link, fold, signer_of
from ledger.registry import ActorRegistry


class Replay:
    """Registry of actors plus the state of every label and lot chain seen so far."""

    def __init__(self, trust_anchor: str | None = None, *, whole_log: bool = True) -> None:
        self.registry = ActorRegistry(trust_anchor)
        self.states: dict[tuple[str, str], SubjectState] = {}
        # Rules that look at other chains (a label's container, a lot's inputs) need every
        # chain; a replay of part of the log (a proof bundle) checks each chain's own rules.
        self.whole_log = whole_log

    def apply(self, signed: SignedEvent, log_index: int, verify: Callable[[bytes, bytes, bytes], bool] = verify_signature) -> None:
        """Check ``signed`` as log entry ``log_index`` and fold it in; raise :class:`Refused` if illegal.

        A refused event changes nothing, so later events are judged against
        the genuine history. ``verify`` checks a label or lot event's signature
        (:func:`ledger.keys.verify_signature` or a drop-in that answers from
        checks already made, see ``ledger.preverify``).
        """
        e = signed.event
        if e.subject_type == "actor":
            try:
                self.registry.apply(signed, log_index)
            except Refused as refusal:
                if refusal.code == "duplicate":  # on the log, a second copy is a replay, not a no-op
                    raise Refused("replayed", f"actor {e.subject} event {e.seq} is already in the log: a replayed record", field="seq") from None
                raise
            return
        key = (e.subject_type, e.subject)
        state = self.states.get(key)
        lookup = self.registry.lookup(log_index)
        signer = signer_of(e, lookup)
        if not verify(signer.public_key, signed.body, signed.signature):
            raise Refused("bad_signature", f"signature of event {e.event_id} does not verify with {e.actor}'s key", field="signature")
        if state is not None and e.seq <= state.seq and e.seq >= 0:
            if state.seq == e.seq and state.head == signed.hash:
                raise Refused("replayed", f"event {e.seq} of {e.subject} is already in the log: a replayed record", field="seq")
        try:
            # Log order is the order the ledger accepted events in, so rules that look at
            # other chains (containers, input lots) see exactly what the ledger saw.
            authorize(state, e, signer, lookup, self._subject if getattr(self, "whole_log", True) else None)  # states pickled before whole_log existed: True
        except Refused as refusal:
            if refusal.code == "stale_head":
                raise Refused("replayed", f"{refusal.detail}: a replayed or forked record", field="seq") from None
            raise
        self.states[key] = fold(state, e, signed.hash)

    def apply_batch(self, signed: SignedEvent, manifest: bytes | None, log_index: int,
                    verify: Callable[[bytes, bytes, bytes], bool] = verify_signature) -> Batch:
        """Check a batch event (event.v3) with its manifest and fold every label step in; all or nothing.

        Besides :meth:`apply`'s checks of the batch event itself: the manifest must hash to the
        signed ``labels_root`` with the signed count, and (issuance) no label of it may exist.
        """
        if manifest is None:
            raise Refused("missing_manifest", f"batch event {signed.event.event_id} has no manifest", field="manifest")
        batch = Batch.checked(signed, manifest)
        e = signed.event
        if ("batch", e.subject) in self.states:
            raise Refused("replayed", f"batch {e.subject} is already in the log: a replayed record", field="subject")
        existing = [s.serial for s in batch.steps if ("label", s.serial) in self.states]
        if existing:
            raise Refused("label_exists", f"{len(existing)} label(s) of batch {e.subject} were issued before (e.g. {existing[0]})", field="manifest")
        self.apply(signed, log_index, verify)  # the batch's own chain: signer, signature, authority, no replay
        for step, head in zip(batch.steps, batch.step_hashes()):
            self.states[("label", step.serial)] = _issued_by_batch(signed, step.serial, head)
        return batch

    def apply_step_proof(self, signed: SignedEvent, proof: dict, log_index: int,
                         verify: Callable[[bytes, bytes, bytes], bool] = verify_signature) -> LabelStep:
        """Check one label's step in batch event ``signed`` from its inclusion path and fold it in.

        What a proof bundle holds instead of the whole manifest: ``proof`` is
        ``{"leaf", "step", "path"}`` (a sealed movement's also ``"opening"``) (:func:`ledger.batches.step_proof` without the body and
        signature, which are ``signed``'s). The batch event is checked like any event
        (:meth:`apply`: signer's key at ``log_index``, signature, authority), then the step must
        be leaf ``leaf`` under the signed ``labels_root``.
        """
        e = signed.event
        if e.kind != "BatchIssued" and e.kind not in STEP_KINDS:
            raise Refused("not_supported", f"{e.kind} is not a batch event with label steps", field="kind")
        try:
            full = {"body": base64.b64encode(signed.body).decode(), "signature": base64.b64encode(signed.signature).decode(),
                    "index": proof["leaf"], "step": proof["step"], "path": proof["path"]}
            opening = Opening.from_json(proof["opening"]) if proof.get("opening") is not None else None
        except (KeyError, TypeError, AttributeError):
            raise Refused("malformed_proof", "a step proof has leaf, step and path (and a movement's opening)", field="step") from None
        lookup = self.registry.lookup(log_index)
        signer = signer_of(e, lookup)
        _, step, head = verify_step_proof(full, signer.public_key)
        key = ("label", step.serial)
        if e.kind == "BatchIssued":
            if step.seq != 0:
                raise Refused("not_in_batch", f"{step.serial}: an issuance step starts the label's chain (seq 0), not seq {step.seq}", field="step")
            if key in self.states:
                raise Refused("label_exists", f"label {step.serial} was issued before batch {e.subject}", field="step")
            self.apply(signed, log_index, verify)
            self.states[key] = _issued_by_batch(signed, step.serial, head)
            return step
        # A movement: the rule of the single event the step stands for (ledger.batches.label_event),
        # on the label's state so far, with the sealed fields opened (the rules need the consignee).
        state = self.states.get(key)
        if state is None:
            raise Refused("unknown_subject", f"label {step.serial} has no earlier step in this replay", field="step")
        if ("batch", e.subject) in self.states:
            raise Refused("replayed", f"batch {e.subject} is already in the log: a replayed record", field="subject")
        check_link(None, e)  # a movement's own chain is one event; its signature was checked with the step
        single = label_event(e, step, opened_fields(e.kind, e.payload, opening))
        authorize(state, single, signer, lookup, self._subject if self.whole_log else None)
        self.states[key] = fold(state, single, head)
        self.states[("batch", e.subject)] = fold(None, e, signed.hash)
        return step

    def _subject(self, subject_type: str, subject: str) -> SubjectState | None:
        return self.states.get((subject_type, subject))


def _issued_by_batch(signed: SignedEvent, serial: str, head: bytes) -> LabelState:
    """Label ``serial``'s state after its issuance step in batch event ``signed`` (chain head ``head``)."""
    e, p = signed.event, signed.event.payload
    return LabelState(serial=serial, gtin=p["gtin"], lot=p["lot"], product=p["product"], producer=e.actor, expiry=p.get("expiry"),
                      custodian=e.actor, issued_at=e.occurred_at, seq=0, head=head)
