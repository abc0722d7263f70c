"""Offline verification of a label's proof bundle (``GET /v1/labels/{serial}/proof``).

Needs no server: only the bundle and the log's public key, which the verifier
must get from somewhere it trusts (never from the bundle itself). Checks:

1. the checkpoint note is signed by the log key and says what the bundle says;
2. every entry's bytes hash to its leaf hash and its inclusion proof leads to
   the checkpoint's root (RFC 9162 §2.1.3.2);
3. replaying the entries in log order with the ledger's own rules
   (``ledger.replay``): actor registrations and key changes, then every event
   of the label (and its lot) — signature by the key current at that index,
   authority, chain link from seq 0. A label issued in a batch (event.v3) has
   its step there instead of the whole manifest: the step and its inclusion
   path under the batch's signed ``labels_root`` (``ledger.batches``).

What a bundle cannot prove is absence: an operator could leave out an actor's
later revocation or a label's newest events. The full auditor, which reads
every record, covers that.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from ledger.errors import Refused
from ledger.events import SignedEvent
from ledger.lifecycle import LabelState, LotState
from ledger.replay import Replay
from ledger.transparency import merkle, proofs
from ledger.transparency.checkpoints import Checkpoint, CheckpointError, parse_checkpoint

FORMAT = "traceledger-proof-bundle/v1"


class BundleError(ValueError):
    """The bundle is malformed or does not verify; the message says where."""


@dataclass
class BundleResult:
    serial: str
    checkpoint: Checkpoint
    label: LabelState | None
    lot: LotState | None
    events: list[dict]  # the label's (and lot's) events: index, seq, kind, actor, at

    def as_dict(self) -> dict:
        return {
            "serial": self.serial,
            "checkpoint": {"size": self.checkpoint.size, "root": self.checkpoint.root.hex(), "timestamp": self.checkpoint.timestamp_ms},
            "status": self.label.status if self.label else None,
            "counterfeit": self.label.counterfeit if self.label else None,
            "recalled": bool((self.label and self.label.recalled) or (self.lot and self.lot.recalled)),
            "events": self.events,
        }


def verify_bundle(bundle: dict, log_public_key: bytes, *, origin: str | None = None) -> BundleResult:
    """Verify ``bundle`` (the parsed JSON) against the trusted log key; raise :class:`BundleError`."""
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise BundleError(f"not a {FORMAT} bundle")
    serial = bundle.get("serial")
    try:
        cp = parse_checkpoint(bundle["checkpoint"]["note"], log_public_key, origin=origin)
    except (KeyError, TypeError):
        raise BundleError("bundle has no checkpoint note") from None
    except CheckpointError as exc:
        raise BundleError(f"checkpoint: {exc}") from None
    claimed = bundle["checkpoint"]
    if claimed.get("size") != cp.size or claimed.get("root") != cp.root.hex():
        raise BundleError("checkpoint fields do not match its signed note")
    entries = bundle.get("entries")
    if not isinstance(entries, list) or not entries:
        raise BundleError("bundle has no entries")
    replay = Replay(whole_log=False)  # a bundle holds one label's chains, not its containers
    events: list[dict] = []
    last_index = -1
    for n, entry in enumerate(entries):
        try:
            index, value = int(entry["index"]), base64.b64decode(entry["value"], validate=True)
            proof = [bytes.fromhex(h) for h in entry["proof"]]
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise BundleError(f"entry {n} is malformed") from None
        if index <= last_index:
            raise BundleError(f"entry {n}: log index {index} is out of order or repeated")
        last_index = index
        leaf = merkle.leaf_hash(value)
        if entry.get("leaf_hash") != leaf.hex():
            raise BundleError(f"entry {n} (log index {index}): leaf hash does not match its bytes")
        try:
            proofs.verify_inclusion(index, cp.size, leaf, proof, cp.root)
        except proofs.ProofError as exc:
            raise BundleError(f"entry {n} (log index {index}): {exc}") from None
        try:
            signed = SignedEvent.from_envelope(value)
            step = replay.apply_step_proof(signed, entry["step"], index) if "step" in entry else None
            if step is None:
                replay.apply(signed, index)
        except Refused as exc:
            raise BundleError(f"entry {n} (log index {index}, event {entry.get('event_id')}): {exc.code}: {exc}") from None
        e = signed.event
        if (e.subject, e.event_id) != (entry.get("subject"), entry.get("event_id")):
            raise BundleError(f"entry {n} (log index {index}): subject or event id differ from the signed event")
        if step is not None:  # the label's step in a batch event (event.v3)
            events.append({"index": index, "subject": step.serial, "seq": step.seq, "kind": e.kind, "actor": e.actor, "at": e.occurred_at.isoformat(), "batch": e.subject})
        elif e.subject_type != "actor":
            events.append({"index": index, "subject": e.subject, "seq": e.seq, "kind": e.kind, "actor": e.actor, "at": e.occurred_at.isoformat()})
    label = replay.states.get(("label", serial))
    if label is None:
        raise BundleError(f"bundle holds no event of label {serial}")
    lot = replay.states.get(("lot", f"{label.gtin}/{label.lot}"))
    return BundleResult(serial=serial, checkpoint=cp, label=label, lot=lot, events=events)
