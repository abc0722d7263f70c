"""Group commit of limit spends and inbox rows (ledger/inbox_group.py) on a real PostgreSQL.

Many concurrent requests share one statement; each keeps the exact answer it would have
had alone: hit n of a client is refused exactly when past the limit (nothing inserted),
a label's query counts once per client and window, a failed batch writes nothing.
"""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from ledger import scan_inbox
from ledger.client_limits import Limit, OverLimit
from ledger.inbox_group import GroupCommit
from ledger.places import Placed

SERIAL = "A" * 16


async def _with_group(settings, body, **kw):
    pool = AsyncConnectionPool(settings.pg_conninfo, min_size=1, max_size=4, kwargs={"autocommit": True}, open=False)
    await pool.open()
    try:
        return await body(GroupCommit(pool, **kw))
    finally:
        await pool.close()


def _rows(settings, sql="SELECT serial, client, counted, region, place_source FROM scan_inbox ORDER BY id"):
    with psycopg.connect(settings.pg_conninfo) as conn:
        return conn.execute(sql).fetchall()


def test_concurrent_requests_share_commits_and_keep_exact_limits(settings):
    limit = Limit(3, 3600)

    async def body(group):
        async def one(i):
            try:
                return await group.accept(SERIAL, channel="web", scope="scan", limit=limit, client=f"client-{i % 2}", count_window=3600)
            except OverLimit as exc:
                return exc

        results = await asyncio.gather(*(one(i) for i in range(10)))
        return results, group.batches

    results, batches = asyncio.run(_with_group(settings, body))
    accepted = [r for r in results if isinstance(r, scan_inbox.AcceptedScan)]
    refused = [r for r in results if isinstance(r, OverLimit)]
    assert len(accepted) == 6 and len(refused) == 4  # 3 per client, each of the two clients sent 5
    assert all(r.retry_after >= 1 for r in refused)
    assert batches < 10, "ten concurrent requests were not grouped"
    rows = _rows(settings)
    assert len(rows) == 6 and sorted(r.id for r in accepted) == [r[0] for r in _rows(settings, "SELECT id FROM scan_inbox ORDER BY id")]
    # Each client's first query of the label counts, its repeats do not.
    assert sorted((r[1], r[2]) for r in rows) == [("client-0", False), ("client-0", False), ("client-0", True),
                                                 ("client-1", False), ("client-1", False), ("client-1", True)]
    hits = dict(_rows(settings, "SELECT client, hits FROM client_limits WHERE scope = 'scan'"))
    assert hits == {"client-0": 5, "client-1": 5}


def test_spend_only_and_placed_client_and_unlimited(settings):
    async def body(group):
        await group.spend("pin", "c1", Limit(1, 60))
        with pytest.raises(OverLimit):
            await group.spend("pin", "c1", Limit(1, 60))
        placed = Placed("c2", "4401", "ip")
        a = await group.accept(SERIAL, channel="web", region="1100", scope="scan", limit=Limit(5, 60), client=placed)
        b = await group.accept(SERIAL, channel="web", scope="scan", limit=Limit(0, 60), client="c3")  # unlimited: no counter
        c = await group.accept(SERIAL, channel="app", kind=scan_inbox.REPORT, reason="fake")  # no client at all
        return a, b, c

    a, b, c = asyncio.run(_with_group(settings, body))
    assert a.id < b.id < c.id
    assert _rows(settings) == [(SERIAL, "c2", True, "4401", "ip"), (SERIAL, "c3", True, None, None), (SERIAL, None, True, None, None)]
    claim = _rows(settings, "SELECT claim FROM scan_inbox ORDER BY id LIMIT 1")[0][0]
    assert claim == {"region": "1100"}  # the client's own claim kept, never signed
    assert dict(_rows(settings, "SELECT scope || '/' || client, hits FROM client_limits")) == {"pin/c1": 2, "scan/c2": 1}


def test_a_failed_batch_writes_nothing_and_fails_every_request(settings):
    async def body(group):
        ok = Limit(5, 60)
        # A serial longer than any text index allows still fits; an invalid float does not reach SQL:
        # a NUL byte is what PostgreSQL refuses, and the whole statement with it.
        bad = group.accept("BAD\x00SERIAL", channel="web", scope="scan", limit=ok, client="x")
        good = group.accept(SERIAL, channel="web", scope="scan", limit=ok, client="y")
        return await asyncio.gather(bad, good, return_exceptions=True)

    results = asyncio.run(_with_group(settings, body, max_rows=8))
    assert all(isinstance(r, Exception) for r in results)
    assert _rows(settings) == []
    assert _rows(settings, "SELECT * FROM client_limits") == []


def test_two_workers_writing_the_same_clients_keep_the_limits_exact(settings):
    """Two workers' group commits (own pools) racing on the same clients' counters: no deadlock, no hit lost."""
    limit = Limit(25, 3600)

    async def body():
        pools = [AsyncConnectionPool(settings.pg_conninfo, min_size=1, max_size=4, kwargs={"autocommit": True}, open=False)
                 for _ in range(2)]
        for p in pools:
            await p.open()
        try:
            groups = [GroupCommit(p) for p in pools]

            async def one(i):
                try:
                    await groups[i % 2].accept(f"{'B' * 15}{i % 4}", channel="app", scope="scan", limit=limit, client=f"c{i % 3}")
                    return True
                except OverLimit:
                    return False

            return await asyncio.gather(*(one(i) for i in range(120)))
        finally:
            for p in pools:
                await p.close()

    results = asyncio.run(body())
    assert sum(results) == 75  # 25 per client, 40 asked each
    assert _rows(settings, "SELECT count(*) FROM scan_inbox")[0][0] == 75
    assert sorted(_rows(settings, "SELECT hits FROM client_limits")) == [(40,), (40,), (40,)]
    # Each (label, client) pair that got through counts once.
    counted = _rows(settings, "SELECT serial, client, count(*) FILTER (WHERE counted) FROM scan_inbox GROUP BY 1, 2")
    assert all(n == 1 for _, _, n in counted)
