"""RFC 6962 hashing, proofs and signed checkpoints against the published test vectors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from ledger.keys import KeyPair
from ledger.transparency import checkpoints as cps
from ledger.transparency import merkle, proofs

# The team's shared vectors sit beside the checkout (../shared); CI has them too.
VECTORS_PATH = Path(__file__).resolve().parents[2] / "shared" / "testvectors" / "rfc6962.json"
if not VECTORS_PATH.exists():  # a copy kept with the tests
    VECTORS_PATH = Path(__file__).parent / "data" / "rfc6962.json"
V = json.loads(VECTORS_PATH.read_text())
LEAVES = [bytes.fromhex(x) for x in V["leaves"]]
H = bytes.fromhex


def stored_tree(leaves: list[bytes]):
    """Every complete node of a tree, as storage keeps them, plus a counting reader."""
    nodes = {}
    cr = merkle.CompactRange()
    for d in leaves:
        for level, idx, h in cr.append(merkle.leaf_hash(d)):
            nodes[(level, idx)] = h
    reads = []

    def reader(wanted):
        wanted = list(wanted)
        reads.append(len(wanted))
        return {n: nodes[n] for n in wanted if n in nodes}

    return nodes, reader, reads, cr


def test_leaf_hashes_and_roots_match_the_vectors():
    assert [merkle.leaf_hash(d).hex() for d in LEAVES] == V["leaf_hashes"]
    assert merkle.root_of([]).hex() == V["empty_root"] == merkle.EMPTY_ROOT.hex()
    for n, root in V["roots"].items():
        assert merkle.root_of(LEAVES[: int(n)]).hex() == root


def test_split_point_is_the_largest_power_of_two_below_n():
    assert [merkle.split_point(n) for n in range(2, 10)] == [1, 2, 2, 4, 4, 4, 4, 8]
    with pytest.raises(ValueError):
        merkle.split_point(1)


def test_compact_range_and_stored_nodes_give_every_root():
    nodes, reader, _, _ = stored_tree(LEAVES)
    cr = merkle.CompactRange()
    for n in range(1, 9):
        cr.append(merkle.leaf_hash(LEAVES[n - 1]))
        assert cr.root().hex() == V["roots"][str(n)]
        assert proofs.root(n, reader).hex() == V["roots"][str(n)]
        assert merkle.CompactRange.from_json(cr.to_json()).root() == cr.root()
    # node (level, idx) covers leaves [idx*2^level, (idx+1)*2^level)
    assert nodes[(2, 1)] == merkle.root_of(LEAVES[4:8])


def test_inclusion_proofs_match_the_vectors_and_verify():
    _, reader, _, _ = stored_tree(LEAVES)
    for case in V["inclusion"]:
        i, n = case["index"], case["size"]
        proof = proofs.inclusion_proof(i, n, reader)
        assert [p.hex() for p in proof] == case["proof"], case
        proofs.verify_inclusion(i, n, merkle.leaf_hash(LEAVES[i]), proof, H(V["roots"][str(n)]))


def test_consistency_proofs_match_the_vectors_and_verify():
    _, reader, _, _ = stored_tree(LEAVES)
    for case in V["consistency"]:
        m, n = case["from"], case["to"]
        proof = proofs.consistency_proof(m, n, reader)
        assert [p.hex() for p in proof] == case["proof"], case
        proofs.verify_consistency(m, n, H(V["roots"][str(m)]), H(V["roots"][str(n)]), proof)


def test_tampered_proofs_fail():
    _, reader, _, _ = stored_tree(LEAVES)
    root7 = H(V["roots"]["7"])
    proof = proofs.inclusion_proof(3, 7, reader)
    with pytest.raises(proofs.ProofError):
        proofs.verify_inclusion(3, 7, merkle.leaf_hash(b"other"), proof, root7)
    with pytest.raises(proofs.ProofError):
        proofs.verify_inclusion(3, 7, merkle.leaf_hash(LEAVES[3]), proof[:-1], root7)
    with pytest.raises(proofs.ProofError):
        proofs.verify_inclusion(3, 7, merkle.leaf_hash(LEAVES[3]), proof + [proof[0]], root7)
    with pytest.raises(proofs.ProofError):
        proofs.verify_inclusion(7, 7, merkle.leaf_hash(LEAVES[3]), proof, root7)
    cons = proofs.consistency_proof(3, 7, reader)
    with pytest.raises(proofs.ProofError, match="rewritten"):
        proofs.verify_consistency(3, 7, merkle.root_of(LEAVES[:2] + [b"x"]), root7, cons)
    with pytest.raises(proofs.ProofError):
        proofs.verify_consistency(3, 7, H(V["roots"]["3"]), H(V["roots"]["6"]), cons)
    with pytest.raises(proofs.ProofError, match="split view"):
        proofs.verify_consistency(4, 4, H(V["roots"]["4"]), H(V["roots"]["5"]), [])
    with pytest.raises(proofs.ProofError):
        proofs.plan_consistency(0, 3)


def test_random_trees_prove_everything_with_log_n_reads():
    rng = random.Random(6962)
    leaves = [rng.randbytes(rng.randint(0, 40)) for _ in range(300)]
    _, reader, reads, _ = stored_tree(leaves)
    for _ in range(200):
        n = rng.randint(1, 300)
        i, m = rng.randrange(n), rng.randint(1, n)
        root_n = merkle.root_of(leaves[:n])
        reads.clear()
        p = proofs.inclusion_proof(i, n, reader)
        proofs.verify_inclusion(i, n, merkle.leaf_hash(leaves[i]), p, root_n)
        c = proofs.consistency_proof(m, n, reader)
        proofs.verify_consistency(m, n, merkle.root_of(leaves[:m]), root_n, c)
        assert proofs.root(n, reader) == root_n
        # one round trip each, and O(log n) nodes: at most ~2 log2(n) + 2
        assert len(reads) <= 3 and max(reads) <= 2 * n.bit_length() + 2


# ---------------------------------------------------------------- checkpoints


def test_checkpoint_note_round_trip_and_format():
    key = KeyPair.generate()
    root = H(V["roots"]["8"])
    cp = cps.sign_checkpoint(key, "traceledger.example/log", 8, root, timestamp_ms=1718000000123)
    lines = cp.note.split("\n")
    assert lines[:5] == ["traceledger.example/log", "8", "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=", "timestamp 1718000000123", ""]
    assert lines[5].startswith("\u2014 traceledger.example/log ") and lines[6] == ""
    back = cps.parse_checkpoint(cp.note, key.public_key, origin="traceledger.example/log")
    assert (back.size, back.root, back.timestamp_ms, back.key_id) == (8, root, 1718000000123, key.key_id)
    name, pub = cps.parse_verifier_key(cps.verifier_key("traceledger.example/log", key.public_key))
    assert pub == key.public_key


@pytest.mark.parametrize("mutate, message", [
    (lambda n: n.replace("\n8\n", "\n9\n"), "does not verify"),
    (lambda n: n.replace("\n8\n", "\n08\n"), "decimal"),
    (lambda n: n.replace("timestamp 1718000000123\n", ""), "timestamp"),
    (lambda n: n.replace("\n\n", "\n"), "blank line"),
    (lambda n: n[:-1], "newline"),
    (lambda n: n.split("\n\n")[0] + "\n\n", "no signature"),
    (lambda n: n.replace("\u2014 ", "- "), "malformed signature"),
    (lambda n: n.replace("log\n", "log2\n", 1), "origin"),
    (lambda n: n.replace("XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=", "XcnaeacGWamt"), "root"),
])
def test_malformed_or_altered_checkpoints_are_refused(mutate, message):
    key = KeyPair.generate()
    note = cps.sign_checkpoint(key, "traceledger.example/log", 8, H(V["roots"]["8"]), timestamp_ms=1718000000123).note
    with pytest.raises(cps.CheckpointError, match=message):
        cps.parse_checkpoint(mutate(note), key.public_key, origin="traceledger.example/log")


def test_checkpoint_signed_by_another_key_is_refused():
    key, other = KeyPair.generate(), KeyPair.generate()
    note = cps.sign_checkpoint(other, "o", 1, bytes(32)).note
    with pytest.raises(cps.CheckpointError, match="no signature by the log key"):
        cps.parse_checkpoint(note, key.public_key)
