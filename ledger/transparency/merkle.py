"""RFC 6962 / RFC 9162 Merkle tree hashing. Pure, no I/O.

The global log is one append-only Merkle tree whose leaf i is the exact Kafka
record value of log entry i. Hashing follows RFC 6962 §2.1 so any CT tooling
computes the same roots:

    leaf_hash(d)     = SHA-256(0x00 || d)
    node_hash(l, r)  = SHA-256(0x01 || l || r)
    MTH([])          = SHA-256()
    MTH(D[0:n])      = node_hash(MTH(D[0:k]), MTH(D[k:n])), k = largest power of 2 < n

Node coordinates used by storage and proofs: the node at ``(level, idx)``
covers leaves ``[idx·2^level, (idx+1)·2^level)``; level 0 is the leaf hashes.
Only such *complete, aligned* subtrees are ever stored; everything else (the
right edge of a tree whose size is not a power of two) is computed from them.
"""

from __future__ import annotations

import hashlib
from typing import Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()
HASH_SIZE = 32


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n`` >= 2)."""
    if n < 2:
        raise ValueError(f"split_point needs n >= 2, got {n}")
    return 1 << ((n - 1).bit_length() - 1)


def root_of_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH of a list of *leaf hashes* (recursive definition, for tests and small trees)."""
    n = len(hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return hashes[0]
    k = split_point(n)
    return node_hash(root_of_hashes(hashes[:k]), root_of_hashes(hashes[k:]))


def root_of(leaves: Iterable[bytes]) -> bytes:
    """MTH of a list of leaf *data* (hashes each leaf first)."""
    return root_of_hashes([leaf_hash(d) for d in leaves])


def decompose(start: int, end: int) -> list[tuple[int, int]]:
    """The complete aligned subtrees ``(level, idx)`` that exactly tile ``[start, end)``.

    For the right edge of an RFC 6962 tree (``start`` aligned to a power of two
    larger than ``end - start``) these are listed left to right with
    decreasing size, which is the order :func:`fold_right` expects.
    """
    out = []
    while start < end:
        # the largest aligned block starting at ``start`` that fits
        level = (start & -start).bit_length() - 1 if start else 63
        while (1 << level) > end - start:
            level -= 1
        out.append((level, start >> level))
        start += 1 << level
    return out


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """Hash of a right-edge subtree from its complete subtrees (left to right).

    In an RFC 6962 tree the right edge nests to the right, so the root is
    node(h0, node(h1, node(h2, ...))).
    """
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


class CompactRange:
    """The right frontier of a growing tree: O(log n) hashes give the root.

    ``nodes`` holds the roots of the complete subtrees that tile ``[0, size)``,
    largest first, as ``(level, hash)``. Appending a leaf merges equal-sized
    neighbours; :meth:`append` reports every node it completes so storage can
    keep them. Used by the sequencer (incremental storage) and by the auditor
    (root of what it has read from Kafka), so both hash identically.
    """

    __slots__ = ("size", "nodes")

    def __init__(self, size: int = 0, nodes: list[tuple[int, bytes]] | None = None):
        self.size = size
        self.nodes = list(nodes or [])
        if sum(1 << lvl for lvl, _ in self.nodes) != size:
            raise ValueError(f"compact range nodes do not cover {size} leaves")

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Append one leaf *hash*; return the new complete nodes ``(level, idx, hash)``."""
        index = self.size
        made = [(0, index, leaf)]
        self.nodes.append((0, leaf))
        self.size += 1
        while len(self.nodes) >= 2 and self.nodes[-1][0] == self.nodes[-2][0]:
            (level, right), (_, left) = self.nodes.pop(), self.nodes.pop()
            parent = node_hash(left, right)
            self.nodes.append((level + 1, parent))
            made.append((level + 1, index >> (level + 1), parent))
        return made

    def root(self) -> bytes:
        """MTH of the ``size`` leaves appended so far."""
        return fold_right([h for _, h in self.nodes])

    def copy(self) -> "CompactRange":
        return CompactRange(self.size, self.nodes)

    def to_json(self) -> dict:
        return {"size": self.size, "nodes": [[lvl, h.hex()] for lvl, h in self.nodes]}

    @classmethod
    def from_json(cls, data: dict) -> "CompactRange":
        return cls(int(data["size"]), [(int(lvl), bytes.fromhex(h)) for lvl, h in data["nodes"]])
