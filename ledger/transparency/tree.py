"""The global log's Merkle tree in PostgreSQL: complete subtrees, stored once.

Table ``merkle_nodes(level, idx, hash)``: the node at ``(level, idx)`` covers
leaves ``[idx·2^level, (idx+1)·2^level)``; level 0 holds the leaf hashes
(RFC 6962 ``leaf_hash`` of ``log_entries.value``, the exact Kafka record
value). A node is written the moment its subtree is complete and never
changes, so the table is append-only like the log. The sequencer appends
leaves and nodes in the same transaction as the ``log_entries`` rows
(:meth:`MerkleTree.append`), so the tree and the log can never disagree about
their size.

Any root or proof for a size n <= current size is computed from O(log n)
stored nodes fetched in one query (``ledger.transparency.proofs``); nothing is rebuilt.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import psycopg

from ledger.logging_setup import get_logger
from ledger.transparency import merkle, proofs

log = get_logger("tree")

_BACKFILL_BATCH = 5000


class TreeError(RuntimeError):
    """The stored tree and the log disagree (a bug or tampering)."""


def stored_size(cur) -> int:
    """Number of leaves in the stored tree (0 when empty). One index probe."""
    row = cur.execute("SELECT idx FROM merkle_nodes WHERE level = 0 ORDER BY idx DESC LIMIT 1").fetchone()
    return row[0] + 1 if row else 0


def read_nodes(cur, nodes: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """Hashes of the given ``(level, idx)`` nodes, in one query."""
    nodes = list(nodes)
    if not nodes:
        return {}
    rows = cur.execute(
        "SELECT m.level, m.idx, m.hash FROM merkle_nodes m "
        "JOIN unnest(%s::smallint[], %s::bigint[]) AS w(level, idx) ON m.level = w.level AND m.idx = w.idx",
        ([lvl for lvl, _ in nodes], [i for _, i in nodes]),
    ).fetchall()
    return {(r[0], r[1]): bytes(r[2]) for r in rows}


def reader_for(cur) -> proofs.NodeReader:
    """A ``proofs.NodeReader`` over a cursor or connection."""
    return lambda nodes: read_nodes(cur, nodes)


def frontier(cur, size: int) -> merkle.CompactRange:
    """The compact range of the first ``size`` leaves, from stored nodes."""
    plan = proofs.plan_root(size)
    got = read_nodes(cur, plan)
    if len(got) != len(plan):
        raise TreeError(f"stored tree is missing nodes of its first {size} leaves")
    return merkle.CompactRange(size, [(lvl, got[(lvl, i)]) for lvl, i in plan])


def root(cur, size: int) -> bytes:
    """Root hash of the first ``size`` leaves."""
    return proofs.root(size, reader_for(cur))


class MerkleTree:
    """Appends leaves and the nodes they complete; keeps the frontier in memory.

    One instance per sequencer (only one sequencer runs, under an advisory
    lock). The in-memory frontier is only trusted when its size equals the
    first index being appended; otherwise (a rolled back transaction, another
    process) it is reloaded from the table.
    """

    def __init__(self) -> None:
        self._range: merkle.CompactRange | None = None

    @property
    def size(self) -> int | None:
        return self._range.size if self._range else None

    def current(self) -> merkle.CompactRange | None:
        return self._range.copy() if self._range else None

    def append(self, cur, first_index: int, values: Sequence[bytes]) -> merkle.CompactRange:
        """Append leaves ``first_index..`` (Kafka record values) inside the caller's transaction."""
        cr = self._range.copy() if self._range and self._range.size == first_index else None
        if cr is None:
            size = stored_size(cur)
            if size > first_index:
                raise TreeError(f"stored tree has {size} leaves but the log is appending leaf {first_index}")
            cr = frontier(cur, size)
            if size < first_index:  # a log that predates the tree: hash its entries first
                self._backfill(cur, cr, first_index)
        rows: list[tuple[int, int, bytes]] = []
        for value in values:
            rows.extend(cr.append(merkle.leaf_hash(value)))
        self._write(cur, rows)
        self._range = cr
        return cr.copy()

    def catch_up(self, conn: psycopg.Connection) -> int:
        """Hash the log entries the tree does not cover yet (a log that predates
        the tree); return the tree's size. Run before publishing a checkpoint."""
        with conn.transaction(), conn.cursor() as cur:
            size = stored_size(cur)
            upto = cur.execute("SELECT coalesce(max(log_index) + 1, 0) FROM log_entries").fetchone()[0]
            if size < upto:
                cr = frontier(cur, size)
                self._backfill(cur, cr, upto)
                self._range = cr
            return max(size, upto)

    def _backfill(self, cur, cr: merkle.CompactRange, upto: int) -> None:
        log.info("tree_backfill_started", from_leaf=cr.size, to_leaf=upto)
        while cr.size < upto:
            batch = cur.execute(
                "SELECT log_index, value FROM log_entries WHERE log_index >= %s AND log_index < %s ORDER BY log_index LIMIT %s",
                (cr.size, upto, _BACKFILL_BATCH),
            ).fetchall()
            if not batch:
                raise TreeError(f"log entry {cr.size} is missing: the log has a hole")
            rows = []
            for index, value in batch:
                if index != cr.size:
                    raise TreeError(f"log entry {cr.size} is missing: the log has a hole")
                rows.extend(cr.append(merkle.leaf_hash(bytes(value))))
            self._write(cur, rows)
        log.info("tree_backfill_done", size=cr.size)

    @staticmethod
    def _write(cur, rows: list[tuple[int, int, bytes]]) -> None:
        if not rows:
            return
        with cur.copy("COPY merkle_nodes (level, idx, hash) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def rebuild(conn: psycopg.Connection) -> int:
    """Recompute every node from ``log_entries`` (an operator tool; used by tests
    that simulate an operator rewriting history). Returns the size."""
    with conn.transaction():
        conn.execute("DELETE FROM merkle_nodes")
        upto = conn.execute("SELECT coalesce(max(log_index) + 1, 0) FROM log_entries").fetchone()[0]
        tree = MerkleTree()
        cr = merkle.CompactRange()
        with conn.cursor() as cur:
            tree._backfill(cur, cr, upto)
    return upto
