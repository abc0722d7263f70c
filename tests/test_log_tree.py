"""The Merkle tree stored beside the log, and the relay's signed checkpoints (real PostgreSQL + Kafka)."""

from __future__ import annotations

import psycopg
import pytest

from consumers.checkpointer import load_or_create_log_key
from ledger.service import Ledger
from ledger.transparency import merkle, proofs, tree
from ledger.transparency.checkpoints import parse_checkpoint
from tests.helpers import Cast
from tests.pipeline import relay_all, topic_records


@pytest.fixture
def world(fresh_settings, tmp_path):
    settings = fresh_settings(log_key=tmp_path / "log.key", checkpoint_events=100, checkpoint_seconds=3600)
    ledger = Ledger(settings)
    cast = Cast()
    assert all(r.status == "accepted" for r in ledger.append(cast.founding_events()))
    yield settings, ledger, cast
    ledger.close()


def values(conn) -> list[bytes]:
    return [bytes(v) for (v,) in conn.execute("SELECT value FROM log_entries ORDER BY log_index").fetchall()]


def test_tree_grows_with_the_log_and_checkpoints_are_signed_and_published(world):
    settings, ledger, cast = world
    for _ in range(3):  # several relay batches and runs: the frontier carries over
        ledger.append([cast.issue() for _ in range(70)])
        relay_all(settings.with_(relay_batch=50))
    key = load_or_create_log_key(settings.log_key)
    with psycopg.connect(settings.pg_conninfo) as conn:
        leaves = values(conn)
        n = len(leaves)
        assert n == 7 + 210
        assert tree.stored_size(conn) == n
        assert tree.root(conn, n) == merkle.root_of(leaves)
        assert tree.root(conn, 100) == merkle.root_of(leaves[:100])
        reader = tree.reader_for(conn)
        for i in (0, 1, 99, n - 1):
            proofs.verify_inclusion(i, n, merkle.leaf_hash(leaves[i]), proofs.inclusion_proof(i, n, reader), merkle.root_of(leaves))
        proofs.verify_consistency(57, n, merkle.root_of(leaves[:57]), merkle.root_of(leaves), proofs.consistency_proof(57, n, reader))
        stored = conn.execute("SELECT size, note FROM checkpoints ORDER BY id").fetchall()
    # every 100 events at least, and one for the final size when the relay went idle
    assert [s for s, _ in stored][-1] == n and len(stored) >= 3
    on_kafka = [r.value.decode() for r in topic_records(settings, settings.checkpoint_topic)]
    assert on_kafka == [note for _, note in stored]
    for note in on_kafka:
        cp = parse_checkpoint(note, key.public_key, origin=settings.log_origin)
        assert cp.root == merkle.root_of(leaves[: cp.size])


def test_a_log_older_than_the_tree_is_backfilled(world):
    settings, ledger, cast = world
    ledger.append([cast.issue() for _ in range(40)])
    relay_all(settings)
    with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
        conn.execute("DELETE FROM merkle_nodes")  # as if the log predates this feature
    ledger.append([cast.issue() for _ in range(5)])
    relay_all(settings)
    with psycopg.connect(settings.pg_conninfo) as conn:
        leaves = values(conn)
        assert tree.stored_size(conn) == len(leaves) == 52
        assert tree.root(conn, len(leaves)) == merkle.root_of(leaves)


def test_log_key_is_created_once(tmp_path):
    a = load_or_create_log_key(tmp_path / "k" / "log.key")
    b = load_or_create_log_key(tmp_path / "k" / "log.key")
    assert a.key_id == b.key_id and (tmp_path / "k" / "log.key.pub").exists()
    assert sorted(p.name for p in (tmp_path / "k").iterdir()) == ["log.key", "log.key.pub"]


def test_relay_start_hashes_a_log_that_predates_the_tree(settings):
    """An existing deployment upgraded to the Merkle log: entries indexed
    before the tree existed are hashed when the relay starts, so its first
    checkpoint covers them."""
    import psycopg

    from consumers.relay import Relay
    from ledger.service import Ledger
    from ledger.transparency import tree as merkle_tree
    from tests.helpers import Cast

    ledger = Ledger(settings)
    cast = Cast()
    ledger.append(cast.founding_events() + [cast.issue() for _ in range(20)])
    Relay(settings).run(until_idle=True)
    with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
        expected = merkle_tree.root(conn.cursor(), 27)
        conn.execute("DELETE FROM merkle_nodes")  # as if the log predates the tree
        conn.execute("DELETE FROM checkpoints")
    Relay(settings).run(until_idle=True)
    with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
        assert merkle_tree.root(conn.cursor(), 27) == expected
        assert conn.execute("SELECT max(size) FROM checkpoints").fetchone()[0] == 27
    ledger.close()
