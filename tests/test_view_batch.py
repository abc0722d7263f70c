"""traceledger.api.view_batch: concurrent lookups read together answer exactly what one lookup each answers.

On real PostgreSQL: a burst of concurrent lookups (known labels, an unknown serial, the same
serial twice, a label flagged by the integrity sweep) is read by fewer statements than
lookups, and each answer equals :func:`projections.checked_view.checked_view` of its serial;
a statement that fails fails every lookup of its batch, and the next batch is served.
"""

from __future__ import annotations

import asyncio
import base64
import json

import psycopg
from psycopg_pool import AsyncConnectionPool

from ledger import scan_inbox
from ledger.store import chain_id
from projections.checked_view import checked_view
from projections.integrity_sweep import sweep
from tests.test_checked_view import world  # noqa: F401  (12 labels, projected)
from traceledger.api.view_batch import ViewBatcher


def _flag_one(world, serial: str) -> None:
    """Edit the stored body of ``serial``'s version 2 and let a pass of the sweep flag it."""
    with psycopg.connect(world.settings.pg_conninfo, autocommit=True) as conn:
        where = (chain_id("label", serial), 2)
        state = json.loads(bytes(conn.execute("SELECT state FROM ledger_events WHERE originator_id = %s AND originator_version = %s",
                                              where).fetchone()[0]))
        body = base64.b64decode(state["body"]["_data_"])
        state["body"]["_data_"] = base64.b64encode(body[:-1] + bytes([body[-1] ^ 1])).decode()
        conn.execute("UPDATE ledger_events SET state = %s WHERE originator_id = %s AND originator_version = %s",
                     (json.dumps(state).encode(), *where))

    async def one_pass():
        async with await psycopg.AsyncConnection.connect(world.settings.pg_conninfo, autocommit=True) as conn:
            return await sweep(world.ledger.app, conn)

    assert asyncio.run(one_pass())["flagged"] == 1


def test_a_burst_of_lookups_is_read_together_and_each_answer_is_its_own(world):
    flagged = world.serials[0]
    _flag_one(world, flagged)
    asked = world.serials * 3 + ["NEVERISSUED00000000X", flagged]

    async def run():
        async with AsyncConnectionPool(world.settings.pg_conninfo, min_size=1, max_size=4, kwargs={"autocommit": True}) as pool:
            batcher = ViewBatcher(world.ledger.app, pool)
            got = await asyncio.gather(*(batcher.view(s) for s in asked))
            scans = ViewBatcher(world.ledger.app, pool, with_inbox=True)
            got_scans = await asyncio.gather(*(scans.view(s) for s in asked))
            async with pool.connection() as conn:
                want = {s: await checked_view(world.ledger.app, conn, s) for s in set(asked)}
                want_scans = {s: await checked_view(world.ledger.app, conn, s, with_inbox=True) for s in set(asked)}
            assert got_scans == [want_scans[s] for s in asked]
            assert all("unprojected" in v for v in got_scans if v["verdict"] != "unknown")
            return batcher, got, want

    with psycopg.connect(world.settings.pg_conninfo, autocommit=True) as conn:
        scan_inbox.accept(conn, world.serials[1], channel="web")  # a scan not projected yet: counted by the inbox figures
    batcher, got, want = asyncio.run(run())
    assert [g["serial"] for g in got] == asked
    for serial, view in zip(asked, got):
        assert view == want[serial]
    assert got[-1]["verdict"] == "suspicious" and "stored event 1 differs" in got[-1]["integrity"]
    assert got[-2]["verdict"] == "unknown"
    assert sum(g["verdict"] == "genuine" for g in got) == 3 * (len(world.serials) - 1)
    assert batcher.lookups == len(asked) and batcher.batches < len(asked) / 4, (batcher.batches, batcher.lookups)


def test_a_failed_statement_fails_its_batch_and_the_next_batch_is_served(world):
    async def run():
        async with AsyncConnectionPool(world.settings.pg_conninfo, min_size=1, max_size=2, kwargs={"autocommit": True}) as pool:
            batcher = ViewBatcher(world.ledger.app, pool)
            async with pool.connection() as conn:
                await conn.execute("ALTER TABLE verification.label_integrity RENAME TO label_integrity_away")
            failed = await asyncio.gather(*(batcher.view(s) for s in world.serials[:5]), return_exceptions=True)
            async with pool.connection() as conn:
                await conn.execute("ALTER TABLE verification.label_integrity_away RENAME TO label_integrity")
            served = await asyncio.gather(*(batcher.view(s) for s in world.serials[:5]))
            return failed, served

    failed, served = asyncio.run(run())
    assert all(isinstance(f, psycopg.errors.UndefinedTable) for f in failed), failed
    assert [v["verdict"] for v in served] == ["genuine"] * 5
