"""Scans commit in parallel, yet the gateway never passes over one that commits late.

Inbox inserts take no table lock, so ids can become visible out of order; the
gateway worker reads only up to :func:`ledger.scan_inbox.committed_horizon`.
On real PostgreSQL: an insert held open in one transaction while a later one
commits.
"""

from __future__ import annotations

import psycopg

from ledger import gs1
from ledger.scan_inbox import ScanRecorder, accept, committed_horizon
from ledger.service import Ledger
from tests.helpers import Cast


def test_inserts_do_not_wait_for_each_other_and_the_horizon_waits_for_both(fresh_settings):
    settings = fresh_settings()
    with (psycopg.connect(settings.pg_conninfo, autocommit=True) as slow, psycopg.connect(settings.pg_conninfo, autocommit=True) as fast,
          psycopg.connect(settings.pg_conninfo, autocommit=True) as reader):
        fast.execute("SET lock_timeout = '2s'")  # a serialising lock would fail this insert, not hang the test
        with slow.transaction():
            early = accept(slow, gs1.new_serial(), channel="web")  # not committed yet
            late = accept(fast, gs1.new_serial(), channel="web")  # commits while the earlier id is in flight
            assert late.id > early.id
            assert reader.execute("SELECT max(id) FROM scan_inbox").fetchone()[0] == late.id  # visible out of order
            assert committed_horizon(reader) is None  # would pass over the early id: wait
        assert committed_horizon(reader) == late.id
        with slow.transaction() as tx:
            gap = accept(slow, gs1.new_serial(), channel="web")
            raise psycopg.Rollback(tx)  # the id stays a gap forever: the horizon does not wait for it
        assert late.id <= committed_horizon(reader) < gap.id


def test_the_gateway_records_a_late_committing_scan_and_nothing_twice(fresh_settings, tmp_path):
    settings = fresh_settings()
    ledger = Ledger(settings)
    cast = Cast()
    try:
        serials = [gs1.new_serial() for _ in range(2)]
        assert all(r.status == "accepted" for r in ledger.append(cast.founding_events() + [cast.issue(s) for s in serials]))
        recorder = ScanRecorder(ledger, cast.keys["gateway"], settings.pg_conninfo)
        with psycopg.connect(settings.pg_conninfo, autocommit=True) as slow, psycopg.connect(settings.pg_conninfo, autocommit=True) as fast:
            with slow.transaction():
                early = accept(slow, serials[0], channel="web")
                late = accept(fast, serials[1], channel="web")
                assert recorder.record_once() == 0  # the late id is committed, but the early one may still come
                assert recorder.position() == 0
            while recorder.record_once() > 0:
                pass
        assert recorder.position() == late.id > early.id
        assert ledger.head("label", serials[0])["seq"] == 1 and ledger.head("label", serials[1])["seq"] == 1
        assert recorder.record_once() == 0  # nothing recorded twice
        assert ledger.head("label", serials[0])["seq"] == 1
        recorder.conn.close()
    finally:
        ledger.close()
