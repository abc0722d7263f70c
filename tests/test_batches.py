"""Batch manifests (ledger/batches.py) and commitments (ledger/commitments.py): pure, with vectors.

The vectors pin the bytes: a change here re-keys every batch ever signed, so it must be a
new manifest schema version, never an accident.
"""

import hashlib
import io
import json
import os
from dataclasses import replace

import fastavro
import pytest

from ledger import batches, commitments
from ledger.batches import Batch, LabelStep
from ledger.encoding import SCHEMA_DIR, codec, event_codec
from ledger.errors import Refused
from ledger.events import SignedEvent
from ledger.keys import verify_signature
from ledger.transparency import merkle
from ledger.transparency.proofs import verify_inclusion
from tests.helpers import Cast, gtin, issued_payload

VECTOR_STEPS = [
    LabelStep("0000000000000000000A"),
    LabelStep("ABCDEFGHJKMNPQRSTVWX", 0, bytes(32), bytes(range(32))),
    LabelStep("S1", 3, hashlib.sha256(b"prev").digest(), None),
]
# Computed once from the definitions in the module doc and pinned.
VECTOR_LEAF_0 = "b4952ac1d48094d05fe907fad37d49d5746d6053d0dbf213eaf148bae979d8aa"
VECTOR_ROOT = "2df7f03913de9bf0c1abecef6ad7835afd48519ac7757982f707277384a7802c"
VECTOR_STEP_HASH = "74786048adbf51c36d8160d8837b1e4d8ac85cc356254868853c43907aae110a"


def test_vectors_are_pinned():
    assert batches.leaf_of(VECTOR_STEPS[0]).hex() == VECTOR_LEAF_0
    assert batches.labels_root(VECTOR_STEPS).hex() == VECTOR_ROOT
    assert batches.step_hash(bytes(32), bytes.fromhex(VECTOR_LEAF_0)).hex() == VECTOR_STEP_HASH


def test_hand_encoding_is_byte_exact_with_the_avro_schema():
    manifest_codec = codec("batch_manifest").latest
    steps = VECTOR_STEPS + [LabelStep("Z" * 20, (1 << 20) - 1, os.urandom(32), os.urandom(32))]
    assert batches.encode_manifest(steps) == manifest_codec.encode({"steps": [s.to_record() for s in steps]})
    item_schema = fastavro.parse_schema(json.loads((SCHEMA_DIR / "batch_manifest.v1.avsc").read_text()))["fields"][0]["type"]["items"]
    for s in steps:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, item_schema, s.to_record())
        assert batches.leaf_data(s) == manifest_codec.header + buf.getvalue()
        assert len(batches.leaf_data(s)) <= batches.MAX_STEP_BYTES
    assert batches.decode_manifest(batches.encode_manifest(steps)) == steps


def test_root_and_paths_are_rfc6962_for_every_size_up_to_33():
    for n in range(1, 34):
        leaves = [hashlib.sha256(bytes([i])).digest() for i in range(n)]
        root = batches.root_of_leaves(leaves)
        assert root == merkle.root_of_hashes(leaves)
        for i in range(n):
            verify_inclusion(i, n, leaves[i], batches.inclusion_path(leaves, i), root)


def _batch(n=5, pins=None, seal=None, prefix="SER") -> tuple[Cast, Batch]:
    cast = Cast()
    serials = [f"{prefix}{i:05d}" for i in range(n)]
    b = batches.issuance(issued_payload(gtin()), serials, actor="acme", key=cast.keys["acme"], pins=pins, seal_public_key=seal)
    return cast, b


def test_a_batch_event_round_trips_under_event_v3_and_every_label_verifies_alone():
    _, b = _batch(7)
    again = SignedEvent.from_parts(b.signed.body, b.signed.signature)
    assert again.event == b.signed.event and b.signed.body[:10] == event_codec().latest.header
    checked = Batch.checked(again, b.manifest)
    leaves = checked.leaves
    for i, step in enumerate(checked.steps):
        path = batches.inclusion_path(leaves, i)
        assert len(path) <= batches.MAX_PATH
        batches.verify_step(step, i, len(leaves), path, again.event.payload["labels_root"])


def test_tampered_reordered_or_foreign_manifest_is_refused():
    _, b = _batch(4)
    steps = list(b.steps)
    reordered = batches.encode_manifest([steps[1], steps[0], *steps[2:]])
    tampered = batches.encode_manifest([LabelStep("EVIL1"), *steps[1:]])
    shorter = batches.encode_manifest(steps[:3])
    _, other = _batch(4, prefix="OTH")
    for manifest in (reordered, tampered, other.manifest):
        with pytest.raises(Refused) as caught:
            Batch.checked(b.signed, manifest)
        assert caught.value.code == "manifest_mismatch"
    with pytest.raises(Refused, match="lists 3 labels"):
        Batch.checked(b.signed, shorter)
    flipped = bytearray(b.manifest)
    flipped[-5] ^= 1  # a bit inside the last serial's bytes or hash
    with pytest.raises(Refused):
        Batch.checked(b.signed, bytes(flipped))
    with pytest.raises(Refused) as caught:
        Batch.checked(b.signed, b.manifest + b"\x00")
    assert caught.value.code == "malformed_manifest"


def test_wrong_path_wrong_index_or_foreign_step_is_refused():
    _, b = _batch(6)
    leaves, root = b.leaves, b.signed.event.payload["labels_root"]
    path = batches.inclusion_path(leaves, 2)
    bad_cases = [
        (b.steps[2], 3, path),  # right step, wrong index
        (b.steps[3], 2, path),  # another label's step on this path
        (b.steps[2], 2, path[:-1]),  # path too short
        (b.steps[2], 2, [bytes(32)] + path[1:]),  # a forged sibling
        (LabelStep(b.steps[2].serial, 1, os.urandom(32)), 2, path),  # a different step of the same label
    ]
    for step, index, p in bad_cases:
        with pytest.raises(Refused) as caught:
            batches.verify_step(step, index, len(leaves), p, root)
        assert caught.value.code == "not_in_batch"


def test_limits_are_refused_with_a_clear_error():
    too_many = [LabelStep(f"S{i}") for i in range(batches.MAX_BATCH_LABELS + 1)]
    with pytest.raises(Refused) as caught:
        batches.encode_manifest(too_many)
    assert caught.value.code == "batch_too_large" and "8192" in caught.value.detail
    with pytest.raises(Refused) as caught:
        batches.decode_manifest(bytes(batches.MAX_MANIFEST_BYTES + 1))
    assert caught.value.code == "batch_too_large"
    with pytest.raises(Refused) as caught:
        batches.encode_manifest([LabelStep("S1"), LabelStep("S1")])
    assert caught.value.code == "duplicate_label"
    with pytest.raises(Refused):
        batches.encode_manifest([])
    with pytest.raises(Refused) as caught:
        batches.encode_manifest([LabelStep("S1", 0, os.urandom(32))])
    assert caught.value.code == "chain_mismatch"
    # The largest batch of the largest steps fits a default Kafka record with room to spare.
    largest = batches.encode_manifest([LabelStep(f"{i:020d}", (1 << 20) - 1, os.urandom(32), os.urandom(32)) for i in range(batches.MAX_BATCH_LABELS)])
    assert len(largest) <= batches.MAX_MANIFEST_BYTES < 1_048_588 - 100_000


def test_pin_commitments_public_data_does_not_decide_a_guess():
    """What anyone can read (the signed body with its sealed secret, the manifest) fits two
    different PINs equally: for any guessed PIN there is a nonce that makes it right, and the
    nonce is behind the sealed box. Only the service holding the seal key can tell."""
    seal = commitments.SealKey.generate()
    _, b = _batch(3, pins={f"SER{i:05d}": f"{i:08d}" for i in range(3)}, seal=seal.public_key)
    step = b.steps[1]
    public = (b.signed.body, b.manifest)
    assert step.pin_commitment is not None and b"00000001" not in b"".join(public)
    secret = seal.open(b.signed.event.payload["pin_secret"])
    nonce = commitments.pin_nonce(secret, step.serial)
    assert commitments.check_pin(step.serial, "00000001", nonce, step.pin_commitment)
    assert not commitments.check_pin(step.serial, "00000002", nonce, step.pin_commitment)
    # Without the nonce, a commitment is a hash of 16 unknown random bytes: a guesser with the
    # wrong nonce (here: any nonce of its own) gets "no" for the right PIN as well.
    assert not commitments.check_pin(step.serial, "00000001", os.urandom(16), step.pin_commitment)
    # Two different PINs, each consistent with the same public commitment under some nonce:
    # the public data alone cannot rule either out (the nonce is 128 bits, never published).
    other_nonce = os.urandom(16)
    alt = commitments.pin_commitment(step.serial, "99999999", other_nonce)
    assert alt != step.pin_commitment  # and 2^128 nonces: some nonce maps 99999999 to it too
    # The sealed box opens only for the service's key.
    with pytest.raises(Refused) as caught:
        commitments.SealKey.generate().open(b.signed.event.payload["pin_secret"])
    assert caught.value.code == "bad_seal"


def test_pin_labels_without_a_seal_key_are_refused():
    with pytest.raises(Refused) as caught:
        _batch(2, pins={"SER00000": "12345678", "SER00001": "12345678"})
    assert caught.value.field == "seal-key"


def test_confidential_fields_commitment_checks_only_the_true_disclosure():
    fields = {"consignee": "distributor", "territory": "44", "channel": "offline_retail"}
    commitment, salt = commitments.commit_confidential(fields)
    assert commitments.check_disclosure(commitment, salt, fields)
    assert not commitments.check_disclosure(commitment, salt, {**fields, "territory": "45"})
    assert not commitments.check_disclosure(commitment, os.urandom(16), fields)
    again, _ = commitments.commit_confidential(fields)
    assert again != commitment  # salted: equal fields do not give equal public commitments
    with pytest.raises(Refused):
        commitments.commit_confidential({"price": 3})


def test_old_events_still_decode_and_verify_next_to_v3():
    cast = Cast()
    single = cast.issue(serial="OLD0001")
    v2 = event_codec().versions[1]
    old_body = v2.encode(single.event.to_record())
    key = cast.keys["acme"]
    old = SignedEvent.from_parts(old_body, key.sign(old_body))
    # v2 has fewer payload fields than the latest schema (whose extra fields are optional)
    assert old.body[:10] == v2.header and old.event == replace(single.event, payload={k: single.event.payload[k] for k in old.event.payload})
    assert verify_signature(key.public_key, old.body, old.signature)


def test_a_labels_step_proof_is_small_and_verifies_alone_and_tampering_is_refused():
    cast = Cast()
    serials = [f"{i:020d}" for i in range(batches.MAX_BATCH_LABELS)]  # the largest batch of the longest serials
    b = batches.issuance(issued_payload(gtin()), serials, actor="acme", key=cast.keys["acme"],
                         pins={s: "12345678" for s in serials}, seal_public_key=commitments.SealKey.generate().public_key)
    public_key = cast.keys["acme"].public_key
    for index in (0, 4095, batches.MAX_BATCH_LABELS - 1):
        proof = batches.step_proof(b, index)
        assert len(json.dumps(proof)) <= 2048, len(json.dumps(proof))  # issue 16: ≤ 2 KB plus the log proofs
        signed, step, head = batches.verify_step_proof(proof, public_key)
        assert step == b.steps[index] and head == b.step_hashes()[index] and signed.hash == b.signed.hash
    proof = batches.step_proof(b, 7)
    for bad, code in (
        ({**proof, "index": 8}, "not_in_batch"),
        ({**proof, "step": batches.step_proof(b, 8)["step"]}, "not_in_batch"),
        ({**proof, "path": proof["path"][:-1]}, "not_in_batch"),
        ({**proof, "signature": batches.step_proof(_batch(1)[1], 0)["signature"]}, "bad_signature"),
        ({**proof, "step": "!!"}, "malformed_proof"),
    ):
        with pytest.raises(Refused) as caught:
            batches.verify_step_proof(bad, public_key)
        assert caught.value.code == code
    with pytest.raises(Refused) as caught:
        batches.verify_step_proof(proof, cast.keys["distributor"].public_key)
    assert caught.value.code == "bad_signature"


def _judged_alone(batch, signer, opened, states, actors):
    """The law, label by label: each step's single event authorized and folded on its own."""
    from ledger.lifecycle import authorize, fold

    out = []
    for i, (step, state, head) in enumerate(zip(batch.steps, states, batch.step_hashes())):
        single = batches.label_event(batch.signed.event, step, opened)
        try:
            if state is None:
                raise Refused("unknown_subject", f"label {step.serial} does not exist", field="subject")
            authorize(state, single, signer, actors)
        except Refused as refusal:
            raise Refused(refusal.code, f"nothing written: label {step.serial} (steps[{i}]) is refused: {refusal.detail}", field=f"steps[{i}]") from None
        out.append(fold(state, single, head))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_a_movement_judged_once_per_kind_of_label_equals_judging_every_label_alone(seed):
    """apply_movement judges labels whose states agree (but for serial and chain position) once;
    over random mixes of states, actors, kinds and broken links it gives exactly the states,
    or the first refusal (code, field, detail), of judging every label alone."""
    import random

    from ledger.lifecycle import ActorState, LabelState

    rnd = random.Random(seed)
    cast = Cast()
    actors = {a: ActorState(a, role, a, cast.keys[a].public_key) for a, (role, _) in Cast.ROLES.items()}
    lookup = actors.get
    agreed = refused = 0
    for _ in range(120):
        kind = rnd.choice(sorted(batches.STEP_KINDS))
        signer_id = rnd.choice(["acme", "distributor", "retailer", "regulator"])
        states, heads = [], []
        # One kind of label per batch, each label departing from it now and then (1 in 25 per
        # field): batches that pass and batches that one label refuses both come up.
        choices = {"gtin": [gtin("00001"), gtin("00002")], "lot": ["L1", "L2"], "status": ["issued", "in_transit", "received", "decommissioned"],
                   "custodian": ["acme", "distributor"], "consignee": [None, "distributor", "retailer"], "territory": [None, "44"],
                   "channel": [None, "retail"], "recalled": [False, True], "counterfeit": [False, True], "container": [None, "SSCC1"]}
        usual = {f: rnd.choice(c) for f, c in choices.items()}
        if rnd.random() < 0.7:  # mostly a kind of label the movement and its signer fit
            usual.update(counterfeit=False, recalled=False, container=None, consignee=usual["consignee"] or "distributor",
                         status={"BatchReceived": "in_transit", "BatchShipped": rnd.choice(["issued", "received"])}.get(kind, usual["status"]))
            signer_id = {"BatchShipped": usual["custodian"], "BatchReceived": usual["consignee"], "BatchRecalled": rnd.choice(["acme", "regulator"]),
                         "BatchDecommissioned": usual["custodian"]}[kind]
            usual["status"] = "received" if kind == "BatchDecommissioned" and usual["status"] == "decommissioned" else usual["status"]
        for n in range(rnd.randint(1, 40)):
            serial = f"R{seed}{n:05d}"
            prev = hashlib.sha256(serial.encode()).digest()
            if rnd.random() < 0.01:
                states.append(None)
            else:
                fields = {f: rnd.choice(c) if rnd.random() < 0.04 else usual[f] for f, c in choices.items()}
                states.append(LabelState(serial=serial, product="p", producer="acme", seq=rnd.randint(0, 3), head=prev, **fields))
            state = states[-1]
            seq = max(1, (state.seq if state else 0) + (1 if rnd.random() < 0.97 else rnd.choice([0, 2])))  # 3 %: a stale or gapped step
            heads.append((serial, seq, prev if rnd.random() < 0.98 else hashlib.sha256(b"another head").digest()))
        confidential = {"consignee": rnd.choice(["distributor", "retailer"]), "territory": "44", "channel": "retail"} if kind == "BatchShipped" else None
        batch, opening = batches.movement(kind, heads, actor=signer_id, key=cast.keys[signer_id], reason="r", confidential=confidential)
        opened = batches.opened_fields(kind, batch.signed.event.payload, opening)
        try:
            want = _judged_alone(batch, actors[signer_id], opened, states, lookup)
        except Refused as expected:
            with pytest.raises(Refused) as got:
                batches.apply_movement(batch, actors[signer_id], opened, states, lookup)
            assert (got.value.code, got.value.field, got.value.detail) == (expected.code, expected.field, expected.detail)
            refused += 1
        else:
            assert batches.apply_movement(batch, actors[signer_id], opened, states, lookup) == want
            agreed += 1
    assert agreed >= 10 and refused >= 10, (agreed, refused)  # both outcomes were exercised


def test_few_collections_raises_the_threshold_while_inside_and_restores_it():
    import gc

    before = gc.get_threshold()
    with batches.few_collections():
        assert gc.get_threshold()[0] == max(before[0], batches.BULK_GC_THRESHOLD)
        with batches.few_collections():  # nested (another thread's batch): still raised
            pass
        assert gc.get_threshold()[0] == max(before[0], batches.BULK_GC_THRESHOLD)
    assert gc.get_threshold() == before
    with pytest.raises(RuntimeError), batches.few_collections():
        raise RuntimeError("a refused batch")
    assert gc.get_threshold() == before
