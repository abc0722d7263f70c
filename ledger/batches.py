"""Batch manifests: one signed event for many labels, each label still provable alone. Pure.

A batch event (``subject_type = batch``, event.v3) signs the RFC 6962 Merkle root
(``labels_root``) of its *manifest*: the list of :class:`LabelStep`, one per label,
in leaf order. The manifest itself travels next to the body (a Kafka record
header, a table beside the event store) and is covered by the signature through
the root. Each label's step is provable on its own: the batch body, the
signature, the step and its inclusion path (:func:`inclusion_path`, at most 13
hashes for the largest batch).

A label's chain stays linear and hash-linked across single and batch events:
the *step hash* of a label's step in batch ``B`` at leaf ``i`` is
``SHA-256(0x03 || event_hash(B) || leaf_hash_i)`` (:func:`step_hash`), and the
label's next step carries it as ``prev_hash``. A single event's step hash is its
event hash, as before.

Limits (:data:`MAX_BATCH_LABELS`, :data:`MAX_MANIFEST_BYTES`): a batch holds at
most 8,192 labels. The largest step is 90 bytes (20-character serial, a
3-byte seq, two 32-byte hashes, union and length bytes), so a full manifest is
at most ~737 KB: with the signed envelope (~400 bytes) and headers it fits
Kafka's default 1 MiB record limit (``max.message.bytes`` 1,048,588) with
~300 KB to spare, and a label's inclusion path is exactly 13 hashes (416 bytes),
which keeps a label's proof bundle under 2 KB for two batch steps. Anything
larger is refused with ``batch_too_large``; the CLI splits a run into batches.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import gc
import hashlib
import operator
import threading
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Sequence

from ledger import commitments, gs1
from ledger.encoding import codec
from ledger.errors import Refused
from ledger.events import Event, SignedEvent, new_event
from ledger.keys import KeyPair, verify_signature
from ledger.lifecycle import ActorLookup, ActorState, LabelState, authorize, fold
from ledger.transparency.merkle import EMPTY_ROOT, leaf_hash, node_hash, split_point
from ledger.transparency.proofs import ProofError, root_from_inclusion

MAX_BATCH_LABELS = 8192
MAX_STEP_BYTES = 100  # single-object encoding of the largest valid LabelStep is 100 bytes (10 of header)
MAX_MANIFEST_BYTES = 16 + MAX_BATCH_LABELS * MAX_STEP_BYTES
MAX_PATH = 13  # log2(MAX_BATCH_LABELS)
GENESIS_HASH = bytes(32)
_STEP_DOMAIN = b"\x03"


@dataclass(frozen=True)
class LabelStep:
    """One label's step in a batch: its position in the label's own hash chain."""

    serial: str
    seq: int = 0
    prev_hash: bytes = GENESIS_HASH
    pin_commitment: bytes | None = None

    def to_record(self) -> dict:
        return {"serial": self.serial, "seq": self.seq, "prev_hash": self.prev_hash, "pin_commitment": self.pin_commitment}


def _manifest_codec():
    return codec("batch_manifest").latest


def _step_header() -> bytes:
    # A step's leaf data is tagged with the manifest schema's fingerprint: a leaf of one
    # manifest version can never be read as a leaf of another.
    return _manifest_codec().header


def _zigzag(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [bytes([n << 1]) for n in range(64)]  # zig-zag varints of 0..63: one byte each


def _step_bytes(step: LabelStep) -> bytes:
    """Schemaless Avro of ``step``, by hand (byte-exact with fastavro: tests/test_batches.py)."""
    serial = step.serial.encode()
    tail = b"\x00" if step.pin_commitment is None else b"\x02" + step.pin_commitment
    n, seq = len(serial), step.seq
    return b"".join((_SMALL[n] if n < 64 else _zigzag(n), serial, _SMALL[seq] if 0 <= seq < 64 else _zigzag(seq), step.prev_hash, tail))


def validate_step(step: LabelStep, index: int = 0) -> None:
    """Field rules of one step; raises :class:`Refused` naming the step."""
    where = f"steps[{index}]"
    gs1.validate_serial(step.serial, f"{where}.serial")
    if not isinstance(step.seq, int) or isinstance(step.seq, bool) or not 0 <= step.seq < 1 << 20:
        raise Refused("invalid_field", f"{where}.seq must be 0..2^20", field=f"{where}.seq")
    if not isinstance(step.prev_hash, bytes) or len(step.prev_hash) != 32:
        raise Refused("invalid_field", f"{where}.prev_hash must be 32 bytes", field=f"{where}.prev_hash")
    if (step.seq == 0) != (step.prev_hash == GENESIS_HASH):
        raise Refused("chain_mismatch", f"{where}: prev_hash must be the genesis value exactly when seq is 0", field=f"{where}.prev_hash")
    if step.pin_commitment is not None and (not isinstance(step.pin_commitment, bytes) or len(step.pin_commitment) != 32):
        raise Refused("invalid_field", f"{where}.pin_commitment must be 32 bytes", field=f"{where}.pin_commitment")


def leaf_data(step: LabelStep) -> bytes:
    """The Merkle leaf data of ``step``: its Avro single-object encoding."""
    return _step_header() + _step_bytes(step)


def leaf_of(step: LabelStep) -> bytes:
    """RFC 6962 leaf hash of ``step``."""
    return leaf_hash(leaf_data(step))


def step_hash(batch_event_hash: bytes, leaf: bytes) -> bytes:
    """The label's chain hash after its step at leaf hash ``leaf`` of batch event ``batch_event_hash``."""
    return hashlib.sha256(_STEP_DOMAIN + batch_event_hash + leaf).digest()


def _check_size(count: int) -> None:
    if count < 1:
        raise Refused("invalid_field", "a batch lists at least one label", field="steps")
    if count > MAX_BATCH_LABELS:
        raise Refused("batch_too_large", f"a batch lists at most {MAX_BATCH_LABELS} labels (Kafka record and proof size); got {count}: split it", field="steps")


def _validated(steps: Sequence[LabelStep]) -> None:
    """The rules every manifest meets, written or read: size, fields, no label twice."""
    _check_size(len(steps))
    seen: set[str] = set()
    for i, step in enumerate(steps):
        validate_step(step, i)
        if step.serial in seen:
            raise Refused("duplicate_label", f"steps[{i}]: {step.serial} is listed twice in the batch", field=f"steps[{i}].serial")
        seen.add(step.serial)


def _leaves_of(raw_steps: Sequence[bytes]) -> list[bytes]:
    """Leaf hashes of steps given as their schemaless bytes (the leaf data is header + bytes)."""
    prefix = b"\x00" + _step_header()  # RFC 6962 leaf: SHA-256(0x00 || data)
    sha = hashlib.sha256
    return [sha(prefix + raw).digest() for raw in raw_steps]


def _encode(steps: Sequence[LabelStep]) -> tuple[bytes, list[bytes]]:
    """``(manifest bytes, leaf hashes)`` of valid ``steps``, each step encoded once."""
    _validated(steps)
    raw = [_step_bytes(s) for s in steps]
    return b"".join((_step_header(), _zigzag(len(steps)), *raw, b"\x00")), _leaves_of(raw)


def encode_manifest(steps: Sequence[LabelStep]) -> bytes:
    """The manifest bytes (``schemas/batch_manifest.v1.avsc``, single-object). Validates first."""
    return _encode(steps)[0]


def _long(data: bytes, pos: int) -> tuple[int, int]:
    """A minimally encoded non-negative Avro long at ``pos`` and the position after it."""
    raw = shift = 0
    for i in range(pos, min(pos + 10, len(data))):
        b = data[i]
        raw |= (b & 0x7F) << shift
        if b < 0x80:
            if (b == 0 and i > pos) or raw & 1:  # overlong or negative: not ours
                raise ValueError("not a minimal non-negative long")
            return raw >> 1, i + 1
        shift += 7
    raise ValueError("truncated long")


def _parse(data: bytes) -> tuple[list[LabelStep], list[bytes]]:
    """Read the canonical layout by hand (fastavro's decode and re-encode cost ~75 µs a label).

    Accepts exactly the canonical encoding (minimal non-negative varints, one array block,
    union branches 0 or 2, nothing after the end), so what it reads re-encodes to ``data``;
    also returns each step's own bytes (its leaf data after the header)."""
    header = _step_header()
    if not data.startswith(header):
        raise ValueError("wrong header")
    count, pos = _long(data, len(header))
    steps, raw = [], []
    for _ in range(count):
        start = pos
        b = data[pos]
        if b < 0x80 and not b & 1:  # one-byte length: every serial (at most 20 characters)
            n, pos = b >> 1, pos + 1
        else:
            n, pos = _long(data, pos)
        serial = data[pos:pos + n].decode("utf-8")
        pos += n
        b = data[pos]
        if b < 0x80 and not b & 1:  # seq below 64: one byte
            seq, pos = b >> 1, pos + 1
        else:
            seq, pos = _long(data, pos)
        prev = data[pos:pos + 32]
        branch = data[pos + 32]
        pos += 33
        if branch == 2:
            commitment, pos = data[pos:pos + 32], pos + 32
        elif branch == 0:
            commitment = None
        else:
            raise ValueError("bad union branch")
        steps.append(LabelStep(serial, seq, prev, commitment))
        raw.append(data[start:pos])
    if count == 0 or data[pos:] != b"\x00" or pos > len(data) or any(len(s.prev_hash) != 32 for s in steps[-1:]) or len(steps[-1].pin_commitment or bytes(32)) != 32:
        raise ValueError("not the canonical layout")
    return steps, raw


def _decode(data: bytes) -> tuple[list[LabelStep], list[bytes]]:
    """``(steps, leaf hashes)`` of manifest ``data``; refuses non-canonical bytes, oversize, bad or repeated steps."""
    if not isinstance(data, (bytes, bytearray)):
        raise Refused("malformed_manifest", "manifest must be bytes", field="manifest")
    data = bytes(data)
    if len(data) > MAX_MANIFEST_BYTES:
        raise Refused("batch_too_large", f"manifest is {len(data)} bytes, over the {MAX_MANIFEST_BYTES}-byte limit", field="manifest")
    try:
        steps, raw = _parse(data)
    except (ValueError, UnicodeDecodeError, IndexError):
        # What the quick reader does not accept, the codec decodes or refuses with its reason.
        try:
            record = _manifest_codec().decode(data)
        except Refused as refusal:
            raise Refused("malformed_manifest", refusal.detail, field="manifest") from None
        steps = [LabelStep(r["serial"], r["seq"], r["prev_hash"], _unwrap(r["pin_commitment"])) for r in record["steps"]]
        manifest, leaves = _encode(steps)
        if manifest != data:
            raise Refused("malformed_manifest", "manifest is not in the canonical encoding", field="manifest") from None
        return steps, leaves
    _validated(steps)
    return steps, _leaves_of(raw)


def decode_manifest(data: bytes) -> list[LabelStep]:
    """The steps of manifest ``data``; refuses non-canonical bytes, oversize, bad or repeated steps."""
    return _decode(data)[0]


def _unwrap(value):
    """A union branch as fastavro returns it for a named type (``(name, value)``), as the value."""
    return value[1] if isinstance(value, tuple) else value


def root_of_leaves(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 MTH over leaf hashes, bottom-up (same result as ``merkle.root_of_hashes``)."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:
        # Pairing left to right and carrying an odd last node up is RFC 6962's tree
        # (the right edge nests to the right), without recursion over slices.
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) & 1:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def labels_root(steps: Sequence[LabelStep]) -> bytes:
    """The ``labels_root`` a batch body must carry for ``steps``."""
    return root_of_leaves([leaf_of(s) for s in steps])


def inclusion_path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 6962 PATH(index, leaves), leaf-side first (what ``proofs.verify_inclusion`` checks)."""
    n = len(leaves)
    if not 0 <= index < n:
        raise Refused("invalid_field", f"leaf {index} is outside a batch of {n}", field="index")
    if n == 1:
        return []
    k = split_point(n)
    if index < k:
        return inclusion_path(leaves[:k], index) + [root_of_leaves(leaves[k:])]
    return inclusion_path(leaves[k:], index - k) + [root_of_leaves(leaves[:k])]


def verify_step(step: LabelStep, index: int, count: int, path: Sequence[bytes], root: bytes) -> bytes:
    """Check that ``step`` is leaf ``index`` of the batch with ``labels_root`` ``root``; its leaf hash.

    Raises ``Refused("not_in_batch")`` for a wrong step, index, path or root.
    """
    _check_size(count)
    if len(path) > MAX_PATH or any(not isinstance(h, bytes) or len(h) != 32 for h in path):
        raise Refused("not_in_batch", f"an inclusion path is at most {MAX_PATH} hashes of 32 bytes", field="path")
    validate_step(step, index)
    leaf = leaf_of(step)
    try:
        got = root_from_inclusion(index, count, leaf, path)
    except ProofError as exc:
        raise Refused("not_in_batch", f"{step.serial}: {exc}", field="path") from None
    if got != root:
        raise Refused("not_in_batch", f"{step.serial} at leaf {index} is not in this batch: its path gives another root", field="path")
    return leaf


def check_manifest(payload: dict, manifest: bytes) -> tuple[list[LabelStep], list[bytes]]:
    """``(steps, leaf hashes)`` of ``manifest`` if it is exactly what batch payload ``payload`` signed (count and root)."""
    steps, leaves = _decode(manifest)
    if len(steps) != payload["count"]:
        raise Refused("manifest_mismatch", f"manifest lists {len(steps)} labels, the signed body says {payload['count']}", field="manifest")
    if root_of_leaves(leaves) != payload["labels_root"]:
        raise Refused("manifest_mismatch", "manifest does not hash to the signed labels_root (tampered, reordered or from another batch)", field="manifest")
    return steps, leaves


@dataclass(frozen=True)
class Batch:
    """A signed batch event with its manifest (what the ledger, Kafka and every verifier carry)."""

    signed: SignedEvent
    manifest: bytes
    steps: tuple[LabelStep, ...]
    leaves: tuple[bytes, ...]  # leaf hash of each step, in order

    def step_hashes(self) -> list[bytes]:
        """Each label's chain head after this batch, in manifest order."""
        h = self.signed.hash
        return [step_hash(h, leaf) for leaf in self.leaves]

    @classmethod
    def checked(cls, signed: SignedEvent, manifest: bytes) -> "Batch":
        """``signed`` (a decoded batch event; its signature is the caller's to check) with a manifest that matches it."""
        if signed.event.subject_type != "batch":
            raise Refused("invalid_field", "not a batch event", field="subject_type")
        steps, leaves = check_manifest(signed.event.payload, manifest)
        return cls(signed, bytes(manifest), tuple(steps), tuple(leaves))


def issuance(
    payload: dict,
    serials: Sequence[str],
    *,
    actor: str,
    key: KeyPair,
    pins: dict[str, str] | None = None,
    seal_public_key: bytes | None = None,
) -> Batch:
    """Sign one ``BatchIssued`` for ``serials`` (``payload``: gtin, lot, product, expiry, region).

    With ``pins`` (serial -> PIN), each step carries a PIN commitment under a fresh
    batch secret sealed to ``seal_public_key`` (the verification service's key).
    """
    sealed = None
    nonce_of = None
    if pins:
        if seal_public_key is None:
            raise Refused("invalid_option", "PIN labels need the verification service's seal key", field="seal-key")
        secret = commitments.new_batch_secret()
        sealed = commitments.seal_secret(secret, seal_public_key)
        nonce_of = lambda serial: commitments.pin_nonce(secret, serial)  # noqa: E731
    steps = [
        LabelStep(s, 0, GENESIS_HASH, commitments.pin_commitment(s, pins[s], nonce_of(s)) if nonce_of else None)
        for s in serials
    ]
    manifest, leaves = _encode(steps)
    body = {k: payload.get(k) for k in ("gtin", "lot", "expiry", "product", "region")}
    body.update(count=len(steps), labels_root=root_of_leaves(leaves), pin_secret=sealed)
    body.update({k: payload[k] for k in ("certificates", "production_date") if payload.get(k)})  # event.v4: as Issued's
    event = new_event(subject_type="batch", subject=str(uuid.uuid4()), kind="BatchIssued", payload=body, actor=actor, key_id=key.key_id)
    return Batch(event.sign(key), manifest, tuple(steps), tuple(leaves))


# ---------------------------------------------------------------- a label's step, provable alone


def step_proof(batch: Batch, index: int) -> dict:
    """What proves label ``index``'s step in ``batch`` offline: the signed batch body, its
    signature, the step and its inclusion path (JSON-ready; base64). At most ~1.6 KB for the
    largest batch; the log's inclusion proof of the batch event comes on top (its leaf is the
    signed envelope of ``body`` and ``signature``, not the manifest)."""
    step = batch.steps[index]
    return {
        "body": base64.b64encode(batch.signed.body).decode(),
        "signature": base64.b64encode(batch.signed.signature).decode(),
        "index": index,
        "step": base64.b64encode(_step_bytes(step)).decode(),
        "path": [base64.b64encode(h).decode() for h in inclusion_path(batch.leaves, index)],
    }


def verify_step_proof(proof: dict, public_key: bytes) -> tuple[SignedEvent, LabelStep, bytes]:
    """Check a :func:`step_proof` with the signer's Ed25519 ``public_key``: ``(batch event, step, step hash)``.

    Refuses (``Refused``) a bad signature, a step not at ``index`` under the signed
    ``labels_root``, or anything malformed. The caller checks that ``public_key`` is the
    signer's key (the actor's registration, itself on the log).
    """
    try:
        body, signature = base64.b64decode(proof["body"], validate=True), base64.b64decode(proof["signature"], validate=True)
        raw = base64.b64decode(proof["step"], validate=True)
        path = [base64.b64decode(h, validate=True) for h in proof["path"]]
        index = proof["index"]
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise Refused("malformed_proof", "a step proof has body, signature, index, step and path (base64)", field="proof") from None
    signed = SignedEvent.from_parts(body, signature)
    if signed.event.subject_type != "batch":
        raise Refused("malformed_proof", "the proof's body is not a batch event", field="body")
    if not verify_signature(public_key, body, signature):
        raise Refused("bad_signature", "the batch body's signature does not verify with this key", field="signature")
    try:
        (step,), _ = _parse(_step_header() + b"\x02" + raw + b"\x00")
    except (ValueError, UnicodeDecodeError, IndexError):
        raise Refused("malformed_proof", "the step is not one canonical LabelStep", field="step") from None
    if not isinstance(index, int) or isinstance(index, bool):
        raise Refused("malformed_proof", "index must be an integer", field="index")
    leaf = verify_step(step, index, signed.event.payload["count"], path, signed.event.payload["labels_root"])
    return signed, step, step_hash(signed.hash, leaf)


# ---------------------------------------------------------------- movements: ship, receive, recall, decommission

# A batch movement applies, to each label of its manifest, the rule and the effect of the
# single event it stands for (ledger/lifecycle.py): one signature, the same per-label law.
STEP_KINDS = {"BatchShipped": "Shipped", "BatchReceived": "Received", "BatchRecalled": "Recalled", "BatchDecommissioned": "Decommissioned"}
SEALED_KINDS = frozenset({"BatchShipped", "BatchReceived"})
_SHIPMENT_FIELDS = ("consignee", "territory", "channel")


@dataclass(frozen=True)
class Opening:
    """The disclosure of a batch body's ``sealed`` commitment: the salt and the confidential fields.

    Never in the signed body: it travels beside it (the ``opening`` of ``POST /v1/batches``,
    ``public.batch_openings``, the ``opening`` Kafka record header) to the readers entitled to
    it, who check it against the signed commitment (:func:`opened_fields`).
    """

    salt: bytes
    fields: dict

    def to_bytes(self) -> bytes:
        """``salt(16) || single-object Avro of the Confidential record`` (the stored and header form)."""
        record = {name: self.fields.get(name) for name in commitments.CONFIDENTIAL_FIELDS}
        return self.salt + codec("confidential").encode(record)

    @classmethod
    def from_bytes(cls, data: bytes) -> "Opening":
        data = bytes(data)
        if len(data) <= commitments.SALT_BYTES:
            raise Refused("malformed_opening", "an opening is a 16-byte salt and the confidential record", field="opening")
        try:
            record = codec("confidential").decode(data[commitments.SALT_BYTES:])
        except Refused as refusal:
            raise Refused("malformed_opening", refusal.detail, field="opening") from None
        return cls(data[:commitments.SALT_BYTES], {k: v for k, v in record.items() if v is not None})

    def as_json(self) -> dict:
        return {"salt": base64.b64encode(self.salt).decode(), "fields": dict(self.fields)}

    @classmethod
    def from_json(cls, data: dict) -> "Opening":
        try:
            salt = base64.b64decode(data["salt"], validate=True)
            fields = dict(data["fields"])
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise Refused("malformed_opening", "an opening is {salt: base64, fields: {...}}", field="opening") from None
        return cls(salt, {k: v for k, v in fields.items() if v is not None})


def seal(fields: dict) -> tuple[bytes, Opening]:
    """``(commitment for the body's sealed, its opening)`` of the confidential ``fields``."""
    commitment, salt = commitments.commit_confidential(fields)
    return commitment, Opening(salt, {k: v for k, v in fields.items() if v is not None})


def opened_fields(kind: str, payload: dict, opening: Opening | None) -> dict:
    """The confidential fields of a batch body, checked against its signed ``sealed`` commitment.

    A shipment must seal its consignee, territory and channel (the rules need them); a body
    without ``sealed`` takes no opening. Refuses a missing, unasked-for or wrong opening.
    """
    sealed = payload.get("sealed") if kind in SEALED_KINDS else None
    if sealed is None:
        if kind == "BatchShipped":
            raise Refused("missing_field", "a batch shipment seals its consignee, territory and channel (sealed)", field="sealed")
        if opening is not None:
            raise Refused("invalid_field", f"{kind} has no sealed commitment to open", field="opening")
        return {}
    if opening is None:
        raise Refused("missing_opening", f"{kind} seals confidential fields: their opening (salt and fields) must come with it", field="opening")
    if not commitments.check_disclosure(sealed, opening.salt, opening.fields):
        raise Refused("wrong_opening", "the opening does not match the signed sealed commitment", field="opening")
    if kind == "BatchShipped" and any(opening.fields.get(name) is None for name in _SHIPMENT_FIELDS):
        raise Refused("missing_field", "a batch shipment's opening names consignee, territory and channel", field="opening")
    return dict(opening.fields)


def label_event(batch_event: Event, step: LabelStep, opened: dict) -> Event:
    """The single event that ``step`` of movement ``batch_event`` stands for on the label's chain.

    Only the rules and the fold read it (ledger, projector, auditor): it is never signed or
    stored. Its hash on the label's chain is the step hash, not the hash of its bytes.
    """
    p = batch_event.payload
    kind = STEP_KINDS[batch_event.kind]
    if kind == "Shipped":
        payload = {"consignee": opened["consignee"], "territory": opened["territory"], "channel": opened["channel"], "region": p.get("region")}
    elif kind == "Received":
        payload = {"region": p.get("region")}
    else:
        payload = {"reason": p["reason"]}
    return Event(event_id=batch_event.event_id, subject_type="label", subject=step.serial, seq=step.seq, prev_hash=step.prev_hash,
                 occurred_at=batch_event.occurred_at, actor=batch_event.actor, key_id=batch_event.key_id, kind=kind, payload=payload)


def movement(
    kind: str,
    heads: Sequence[tuple[str, int, bytes]],
    *,
    actor: str,
    key: KeyPair,
    region: str | None = None,
    reason: str | None = None,
    confidential: dict | None = None,
) -> tuple[Batch, Opening | None]:
    """Sign one batch movement (``BatchShipped``/``Received``/``Recalled``/``Decommissioned``).

    ``heads`` is each label's ``(serial, next seq, current head hash)``; ``confidential``
    (consignee, territory, channel) is sealed into the body, its opening returned beside it.
    """
    if kind not in STEP_KINDS:
        raise Refused("invalid_field", f"{kind} is not a batch movement", field="kind")
    steps = [LabelStep(serial, seq, prev) for serial, seq, prev in heads]
    manifest, leaves = _encode(steps)
    body: dict = {"count": len(steps), "labels_root": root_of_leaves(leaves)}
    opening = None
    if kind in SEALED_KINDS:
        sealed = None
        if confidential:
            sealed, opening = seal(confidential)
        body.update(region=region, sealed=sealed)
    else:
        body["reason"] = reason
    event = new_event(subject_type="batch", subject=str(uuid.uuid4()), kind=kind, payload=body, actor=actor, key_id=key.key_id)
    return Batch(event.sign(key), manifest, tuple(steps), tuple(leaves)), opening


# ---------------------------------------------------------------- work on whole batches

_GC_LOCK = threading.Lock()
_gc_users = 0
_gc_saved: tuple[int, int, int] | None = None
BULK_GC_THRESHOLD = 50_000


@contextmanager
def few_collections():
    """Run the body with Python's cyclic garbage collector triggered less often.

    Checking or loading a batch of 8,192 labels allocates a few objects per label (states,
    chains, rows), all still alive when the collector runs every 700 allocations, so each
    young collection walks them again: ~30 % of the CPU of a batch's heads, check and store
    (``bench/batch_stages.py``, same run). The young-generation threshold is raised to
    50,000 while any thread is inside (nested and concurrent uses share it), then restored;
    garbage is still collected, less often.
    """
    global _gc_users, _gc_saved
    with _GC_LOCK:
        if _gc_users == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(max(_gc_saved[0], BULK_GC_THRESHOLD), *_gc_saved[1:])
        _gc_users += 1
    try:
        yield
    finally:
        with _GC_LOCK:
            _gc_users -= 1
            if _gc_users == 0 and _gc_saved is not None:
                gc.set_threshold(*_gc_saved)


# A label's state apart from its serial and its chain position (seq, head): what the rule and the
# fold of a movement's single event read (see apply_movement).
JUDGED_FIELDS = tuple(f.name for f in dataclasses.fields(LabelState) if f.name not in ("serial", "seq", "head"))
# judged_part(state): a LabelState's fields other than serial, seq and head, as a tuple.
judged_part = operator.attrgetter(*JUDGED_FIELDS)


def with_position(fields: dict, serial: str, seq: int, head: bytes) -> LabelState:
    """The LabelState with ``fields`` (a state's ``__dict__``) but ``serial``, ``seq`` and ``head``.

    What ``dataclasses.replace`` gives, without re-running ``__init__`` (a plain frozen
    dataclass: no ``__post_init__``, no ``init=False`` fields), ~10x cheaper."""
    fields = fields.copy()
    fields["serial"], fields["seq"], fields["head"] = serial, seq, head
    label = object.__new__(LabelState)
    object.__setattr__(label, "__dict__", fields)
    return label


def apply_movement(batch: Batch, signer: ActorState, opened: dict, states: Sequence[LabelState | None], actors: ActorLookup) -> list[LabelState]:
    """Each label's state after movement ``batch``, from its state before (``states``, in
    manifest order): the rule of the single event each step stands for, then its fold with the
    step hash as the label's new head. Pure; the ledger, the projector and the auditor all
    call it. One label refused refuses the batch: :class:`Refused` names the label and its
    step (``field = steps[i]``), and nothing is returned.

    Judged once per kind of label, not once per label: after its chain link (seq, prev_hash)
    is checked, a movement's rule and fold read a label's state only through its other fields
    (status, custodian, consignee, container, flags, ...; never its serial or chain position)
    and the single event only through what every step of the batch shares (kind, payload,
    actor, time). So labels whose states agree on those fields get the same verdict and the
    same new fields: the first of them is judged by :func:`ledger.lifecycle.authorize` and
    folded by :func:`ledger.lifecycle.fold`, the others take its result with their own serial,
    seq and step hash (``tests/test_batches.py`` checks this against judging every label
    alone). A label whose link does not hold is judged alone, so its refusal is its own.
    """
    e = batch.signed.event
    judged: dict[tuple, dict] = {}  # judged part of a state before -> fields of the state after
    out = []
    for i, (step, state, head) in enumerate(zip(batch.steps, states, batch.step_hashes())):
        if type(state) is LabelState and step.seq == state.seq + 1 and step.prev_hash == state.head:
            after = judged.get(key := judged_part(state))
            if after is not None:
                out.append(with_position(after, state.serial, step.seq, head))
                continue
        else:
            key = None
        single = label_event(e, step, opened)
        try:
            if state is None:
                raise Refused("unknown_subject", f"label {step.serial} does not exist", field="subject")
            authorize(state, single, signer, actors)  # chain link (seq, prev_hash), custody, status, consignee
        except Refused as refusal:
            raise Refused(refusal.code, f"nothing written: label {step.serial} (steps[{i}]) is refused: {refusal.detail}", field=f"steps[{i}]") from None
        label = fold(state, single, head)
        if key is not None:
            judged[key] = dict(label.__dict__)
        out.append(label)
    return out
