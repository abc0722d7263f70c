"""The public auditor: what anyone can check with no credentials, from leaf hashes alone. Pure.

An outsider gets from the public API (or anywhere else) the log's signed
checkpoints, the leaf hash of every entry (``GET /v1/log/entries`` unsigned),
consistency proofs and a label's public bundle. With only the log's public key,
obtained from somewhere it trusts, it checks:

1. every checkpoint's signature (``ledger.transparency.checkpoints``);
2. that the leaf hashes it was given make exactly the checkpoint's root (a
   :class:`ledger.transparency.merkle.CompactRange` over them, kept between
   runs so the next run hashes only what is new);
3. that each new checkpoint extends the previous one (a consistency proof,
   RFC 9162 §2.1.4.2), and that the log never signed two roots for one size;
4. a label's public bundle (``traceledger-public-bundle/v1``): the
   checkpoint's signature and every leaf's inclusion proof.

Split views are detected by comparing checkpoints with other auditors
(:func:`compare`): the same size with another root, or no consistency between
two sizes, means the log showed different histories to different readers.

What leaf hashes cannot show is what the events say, who signed them, or
whether the chains link: that is the entitled auditor's job
(``traceledger audit run`` with a regulator's Kafka credentials).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from ledger.transparency import proofs
from ledger.transparency.checkpoints import Checkpoint, CheckpointError, parse_checkpoint
from ledger.transparency.merkle import CompactRange

PUBLIC_BUNDLE_FORMAT = "traceledger-public-bundle/v1"


class PublicAuditError(ValueError):
    """Something a public auditor can see is wrong (bad signature, wrong root, split view...); the message says what."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def checked_checkpoint(note: str, log_public_key: bytes, origin: str | None = None) -> Checkpoint:
    """A checkpoint note verified against the trusted log key, or :class:`PublicAuditError` (``bad_checkpoint``)."""
    try:
        return parse_checkpoint(note, log_public_key, origin=origin)
    except CheckpointError as exc:
        raise PublicAuditError("bad_checkpoint", f"checkpoint: {exc}") from None


@dataclass
class PublicAuditState:
    """What a public auditor remembers between runs: the leaves hashed so far, the latest checkpoint, every root seen."""

    tree: CompactRange = field(default_factory=CompactRange)
    latest: Checkpoint | None = None
    roots: dict[int, bytes] = field(default_factory=dict)  # size -> root of every verified checkpoint

    def to_json(self) -> dict:
        return {"tree": self.tree.to_json(), "latest_note": self.latest.note if self.latest else None,
                "roots": {str(n): r.hex() for n, r in self.roots.items()}}

    @classmethod
    def from_json(cls, data: dict, log_public_key: bytes, origin: str | None = None) -> "PublicAuditState":
        latest = checked_checkpoint(data["latest_note"], log_public_key, origin) if data.get("latest_note") else None
        return cls(CompactRange.from_json(data["tree"]), latest, {int(n): bytes.fromhex(r) for n, r in data.get("roots", {}).items()})


def note_root(state: PublicAuditState, cp: Checkpoint) -> None:
    """Remember ``cp``'s root; two different signed roots for one size are a split view."""
    seen = state.roots.get(cp.size)
    if seen is not None and seen != cp.root:
        raise PublicAuditError("split_view", f"the log signed two different roots for size {cp.size}: {seen.hex()[:16]}… and {cp.root.hex()[:16]}…")
    state.roots[cp.size] = cp.root


def advance(state: PublicAuditState, cp: Checkpoint, new_leaves: Iterable[bytes], consistency: Sequence[bytes] | None) -> int:
    """Move ``state`` to the (signature-checked) checkpoint ``cp``.

    ``new_leaves``: the leaf hashes from ``state.tree.size`` to ``cp.size``;
    their root must be ``cp.root``. ``consistency``: the log's proof from the
    previous checkpoint to ``cp`` (needed when there is one of a smaller size),
    checked as well, so a log cannot serve leaves that disagree with its proofs.
    Returns how many leaves were hashed. ``state`` is changed only on success.
    """
    if cp.size < state.tree.size:
        raise PublicAuditError("log_shrank", f"checkpoint size {cp.size} is below the {state.tree.size} leaves already verified")
    tree = state.tree.copy()
    for leaf in new_leaves:
        if len(leaf) != 32:
            raise PublicAuditError("bad_leaf", f"leaf {tree.size} is not a 32-byte hash")
        tree.append(leaf)
        if tree.size > cp.size:
            raise PublicAuditError("bad_leaf", f"more leaves than the checkpoint's {cp.size}")
    if tree.size != cp.size:
        raise PublicAuditError("missing_leaves", f"got {tree.size} leaves for a checkpoint of {cp.size}")
    if tree.root() != cp.root:
        raise PublicAuditError("root_mismatch", f"the {cp.size} leaf hashes do not make the signed root of checkpoint {cp.size}")
    old = state.latest
    if old is not None and 0 < old.size < cp.size:
        if consistency is None:
            raise PublicAuditError("need_proof", f"a consistency proof from {old.size} to {cp.size} is needed")
        verify_consistent(old, cp, consistency)
    note_root(state, cp)
    hashed = tree.size - state.tree.size
    state.tree = tree
    if old is None or cp.size >= old.size:
        state.latest = cp
    return hashed


def verify_consistent(old: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> None:
    """``new`` extends ``old`` (sizes in that order), or :class:`PublicAuditError` (``split_view``)."""
    try:
        proofs.verify_consistency(old.size, new.size, old.root, new.root, list(proof))
    except proofs.ProofError as exc:
        raise PublicAuditError("split_view", f"checkpoints {old.size} and {new.size} are not consistent: {exc}") from None


def compare(state: PublicAuditState, theirs: Checkpoint, consistency: Sequence[bytes] | None = None) -> str:
    """Check another reader's (signature-checked) checkpoint against what this auditor verified.

    Same size: the roots must match. Different sizes: ``consistency`` (from the
    smaller to the larger) must verify. Returns a one-line verdict; raises
    :class:`PublicAuditError` (``split_view``, ``need_proof``, ``no_checkpoint``).
    """
    if state.latest is None:
        raise PublicAuditError("no_checkpoint", "this auditor has not verified a checkpoint yet")
    if theirs.size in state.roots:
        note_root(PublicAuditState(roots=dict(state.roots)), theirs)
        return f"consistent: we verified the same root for size {theirs.size}"
    ours = state.latest
    if consistency is None:
        raise PublicAuditError("need_proof", f"sizes differ (ours {ours.size}, theirs {theirs.size}): a consistency proof is needed")
    old, new = (ours, theirs) if ours.size < theirs.size else (theirs, ours)
    verify_consistent(old, new, consistency)
    return f"consistent: size {new.size} extends size {old.size}"


@dataclass(frozen=True)
class PublicBundleResult:
    serial: str
    checkpoint: Checkpoint
    indexes: list[int]  # log indexes of the label's events the bundle proves

    def as_dict(self) -> dict:
        return {"serial": self.serial, "checkpoint": {"size": self.checkpoint.size, "root": self.checkpoint.root.hex()},
                "proven_entries": len(self.indexes), "indexes": self.indexes}


def verify_public_bundle(bundle: dict, log_public_key: bytes, *, origin: str | None = None) -> PublicBundleResult:
    """Verify a label's public bundle offline: checkpoint signature and every leaf's inclusion proof."""
    if not isinstance(bundle, dict) or bundle.get("format") != PUBLIC_BUNDLE_FORMAT:
        raise PublicAuditError("bad_bundle", f"not a {PUBLIC_BUNDLE_FORMAT} bundle")
    try:
        note, claimed = bundle["checkpoint"]["note"], bundle["checkpoint"]
    except (KeyError, TypeError):
        raise PublicAuditError("bad_bundle", "bundle has no checkpoint note") from None
    cp = checked_checkpoint(note, log_public_key, origin)
    if claimed.get("size") != cp.size or claimed.get("root") != cp.root.hex():
        raise PublicAuditError("bad_bundle", "checkpoint fields do not match its signed note")
    entries = bundle.get("entries")
    if not isinstance(entries, list) or not entries:
        raise PublicAuditError("bad_bundle", "bundle has no entries")
    indexes: list[int] = []
    for n, entry in enumerate(entries):
        try:
            index, leaf = int(entry["index"]), bytes.fromhex(entry["leaf_hash"])
            proof = [bytes.fromhex(h) for h in entry["proof"]]
        except (KeyError, TypeError, ValueError):
            raise PublicAuditError("bad_bundle", f"entry {n} is malformed") from None
        if indexes and index <= indexes[-1]:
            raise PublicAuditError("bad_bundle", f"entry {n}: log index {index} is out of order or repeated")
        try:
            proofs.verify_inclusion(index, cp.size, leaf, proof, cp.root)
        except proofs.ProofError as exc:
            raise PublicAuditError("bad_proof", f"entry {n} (log index {index}): {exc}") from None
        indexes.append(index)
    return PublicBundleResult(str(bundle.get("serial")), cp, indexes)
