"""Inclusion and consistency proofs (RFC 6962 §2.1.1-2.1.2, verified per RFC 9162 §2.1.3-2.1.4).

Generation works on stored *complete* subtrees only (see ``ledger.transparency.merkle``):
a proof is first planned symbolically — each proof hash is a list of complete
``(level, idx)`` nodes to fold right (one node unless it is a right-edge
subtree) — then every node is fetched in one call to the ``NodeReader`` and
the hashes are computed. A proof for a tree of size n therefore costs
O(log n) node reads and one round trip, whatever n is.

Verification is pure and follows RFC 9162's iterative algorithms exactly, so a
proof from this module is checked the same way any CT client would check it.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

from ledger.transparency.merkle import decompose, fold_right, node_hash, split_point

Node = tuple[int, int]
# Given node coordinates, returns their hashes; must return every one asked for.
NodeReader = Callable[[Iterable[Node]], dict[Node, bytes]]


class ProofError(ValueError):
    """A proof that does not verify, or a request for an impossible proof."""


# ---------------------------------------------------------------- planning


def _subtree(start: int, end: int) -> list[Node]:
    return decompose(start, end)


def plan_inclusion(index: int, size: int) -> list[list[Node]]:
    """The nodes making up PATH(index, D[0:size]), leaf-side first."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is outside a tree of size {size}")
    out: list[list[Node]] = []
    start, end, m = 0, size, index
    while end - start > 1:
        k = split_point(end - start)
        if m < k:
            out.append(_subtree(start + k, end))
            end = start + k
        else:
            out.append(_subtree(start, start + k))
            start, m = start + k, m - k
    out.reverse()  # RFC order: the sibling nearest the leaf first
    return out


def plan_consistency(first: int, second: int) -> list[list[Node]]:
    """The nodes making up PROOF(first, D[0:second]) (RFC 6962 §2.1.2)."""
    if not 0 < first <= second:
        raise ProofError(f"no consistency proof from size {first} to size {second} (need 0 < from <= to)")
    out: list[list[Node]] = []
    start, end, m, complete = 0, second, first, True
    while True:
        n = end - start
        if m == n:
            if not complete:
                out.append(_subtree(start, end))
            break
        k = split_point(n)
        if m <= k:
            out.append(_subtree(start + k, end))
            end = start + k
        else:
            out.append(_subtree(start, start + k))
            start, m, complete = start + k, m - k, False
    out.reverse()
    return out


def plan_root(size: int) -> list[Node]:
    """The complete subtrees whose right fold is the root of a tree of ``size``."""
    return decompose(0, size)


def resolve(plan: Sequence[Sequence[Node]], reader: NodeReader) -> list[bytes]:
    """Fetch every node of ``plan`` in one reader call and fold each entry."""
    wanted = {node for entry in plan for node in entry}
    got = reader(wanted) if wanted else {}
    missing = wanted - set(got)
    if missing:
        raise ProofError(f"tree nodes missing from storage: {sorted(missing)[:5]}")
    return [fold_right([got[n] for n in entry]) for entry in plan]


def inclusion_proof(index: int, size: int, reader: NodeReader) -> list[bytes]:
    """Audit path for leaf ``index`` in the tree of ``size`` leaves."""
    return resolve(plan_inclusion(index, size), reader)


def consistency_proof(first: int, second: int, reader: NodeReader) -> list[bytes]:
    """Consistency proof between trees of ``first`` and ``second`` leaves."""
    return resolve(plan_consistency(first, second), reader)


def root(size: int, reader: NodeReader) -> bytes:
    """Root hash of the tree of ``size`` leaves from stored nodes."""
    return resolve([plan_root(size)], reader)[0] if size else fold_right([])


# ---------------------------------------------------------------- verifying


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2: the root implied by ``leaf`` (a leaf hash) and its path."""
    if not 0 <= index < size:
        raise ProofError(f"index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof has too many hashes")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("inclusion proof has too few hashes")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root_hash: bytes) -> None:
    """Raise :class:`ProofError` unless ``leaf`` is leaf ``index`` of the tree ``root_hash``."""
    got = root_from_inclusion(index, size, leaf, proof)
    if got != root_hash:
        raise ProofError(f"inclusion proof of leaf {index} in size {size} gives root {got.hex()[:16]}…, not {root_hash.hex()[:16]}…")


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.4.2: raise :class:`ProofError` unless tree ``second`` extends tree ``first``."""
    if not 0 < first <= second:
        raise ProofError(f"no consistency proof from size {first} to size {second}")
    if first == second:
        if proof:
            raise ProofError("consistency proof between equal sizes must be empty")
        if first_root != second_root:
            raise ProofError(f"two different roots for size {first}: a split view")
        return
    if not proof:
        raise ProofError("empty consistency proof between different sizes")
    path = list(proof)
    if first & (first - 1) == 0:  # an exact power of two: the old root is a node of the new tree
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof has too many hashes")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("consistency proof has too few hashes")
    if fr != first_root:
        raise ProofError(f"consistency proof does not lead to the old root of size {first}: the history was rewritten")
    if sr != second_root:
        raise ProofError(f"consistency proof does not lead to the new root of size {second}")
