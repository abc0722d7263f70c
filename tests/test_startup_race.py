"""Schema migrations (ledger/migrate.py): run once, by one process at a time, before anything
uses a table, so processes started together on a fresh database never race to create them.

Before migrations each process created its tables at start-up with ``CREATE ... IF NOT
EXISTS``, and two projectors started together on a fresh machine died with a
``UniqueViolation`` on schema ``verification`` (issue 13). Here the whole set of services
starts at the same instant on ten fresh databases, and the runner itself is raced and
fed an edited migration.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

import httpx
import psycopg
import pytest

from ledger import migrate
from ledger.config import REPO_ROOT
from ledger.store import LedgerApplication
from tests.conftest import Service, free_port

pytestmark = pytest.mark.integration

ROUNDS = 10
# What each process logs once it is past its start-up (tables used, consumer built).
READY = {"relay": '"relay_resumed"', "projector-1": '"projector_started"', "projector-2": '"projector_started"',
         "detector": '"detector_started"'}
API_WORKERS = 2
TROUBLE = re.compile(r'"level": "(error|critical)"|Traceback|UniqueViolation|DuplicateObject|already exists')


def _start_together(settings, log_dir) -> tuple[dict[str, Service], str]:
    """The relay, two projectors, the detector and the API (two workers), started back to back."""
    port = free_port()
    api_settings = settings.with_(listen_port=port, api_url=f"http://127.0.0.1:{port}", api_workers=API_WORKERS)
    procs = {name: Service(module, settings, log_dir, name) for name, module in
             [("relay", "consumers.relay"), ("projector-1", "consumers.projector"), ("projector-2", "consumers.projector"),
              ("detector", "consumers.detector")]}
    procs["api"] = Service("traceledger.api", api_settings, log_dir, "api")
    for svc in procs.values():
        svc.start()
    return procs, api_settings.api_url


def _api_ready(svc: Service, url: str) -> bool:
    """Every worker started (its lifespan ran) and the API answers."""
    if svc.log_path.read_text(errors="replace").count('"api_started"') < API_WORKERS:
        return False
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _wait_until_all_ready(procs: dict[str, Service], api_url: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    waiting = set(procs)
    while waiting and time.monotonic() < deadline:
        for name in sorted(waiting):
            svc = procs[name]
            assert svc.running(), f"{name} exited at start-up:\n{svc.log_path.read_text(errors='replace')[-3000:]}"
            ready = _api_ready(svc, api_url) if name == "api" else READY[name] in svc.log_path.read_text(errors="replace")
            if ready:
                waiting.discard(name)
        time.sleep(0.2)
    assert not waiting, f"not ready after {timeout}s: {sorted(waiting)}"


def test_all_services_started_at_once_on_a_fresh_database_all_come_up(fresh_settings, tmp_path):
    for round_no in range(ROUNDS):
        settings = fresh_settings(migrated=False)
        log_dir = tmp_path / f"round-{round_no}"
        log_dir.mkdir()
        procs, api_url = _start_together(settings, log_dir)
        try:
            _wait_until_all_ready(procs, api_url)
            time.sleep(0.3)  # a process that fails right after saying it is ready still counts
            for name, svc in procs.items():
                log = svc.log_path.read_text(errors="replace")
                assert svc.running(), f"round {round_no}: {name} exited:\n{log[-3000:]}"
                trouble = [line for line in log.splitlines() if TROUBLE.search(line)]
                assert not trouble, f"round {round_no}: {name} logged trouble:\n" + "\n".join(trouble[:10])
        finally:
            for svc in procs.values():  # SIGKILL: throw-away processes, and the next round is waiting
                svc.kill()
        with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
            assert migrate.pending(conn, migrate.plan()) == []
            applied = conn.execute("SELECT count(*) FROM public.schema_migrations").fetchone()[0]
            assert applied == len(migrate.plan())


# ------------------------------------------------------------------ the runner itself


def test_concurrent_runners_apply_each_migration_once(fresh_settings):
    settings = fresh_settings(migrated=False)
    runners = 6
    start = threading.Barrier(runners)
    results: list[list[migrate.Migration]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            results.append(migrate.upgrade(settings.pg_conninfo, read_models={"side": "alerts"}))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(runners)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    applied = [m.key for done in results for m in done]
    wanted = [m.key for m in migrate.plan({"side": "alerts"})]
    assert sorted(applied) == sorted(wanted)  # every migration once, by whichever runner got there first
    with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
        rows = conn.execute("SELECT track, schema_name, version FROM public.schema_migrations").fetchall()
        assert sorted(rows) == sorted(wanted)
        assert migrate.upgrade_on(conn, {"side": "alerts"}) == []  # nothing left: a no-op


def test_an_edited_applied_migration_is_refused(fresh_settings):
    settings = fresh_settings()  # migrated
    first = migrate.plan()[0]
    with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
        # As if 0001's file had been edited after it was applied.
        conn.execute("UPDATE public.schema_migrations SET checksum = %s WHERE track = %s AND schema_name = %s AND version = %s",
                     ("0" * 64, first.track, first.schema, first.version))
    with pytest.raises(migrate.MigrationError, match="must not change"):
        migrate.upgrade(settings.pg_conninfo)
    refused = _migrate_cli(settings)
    assert refused.returncode == 2 and "must not change" in refused.stderr


def test_check_reports_pending_migrations(fresh_settings):
    settings = fresh_settings(migrated=False)
    before = _migrate_cli(settings, "--check")
    assert before.returncode == 1 and "pending: 0001_event_store.sql in schema public" in before.stdout
    assert _migrate_cli(settings).returncode == 0
    assert _migrate_cli(settings, "--check").returncode == 0


def test_a_read_model_is_laid_out_in_any_schema_and_rebuilt_empty(fresh_settings):
    settings = fresh_settings()
    migrate.upgrade(settings.pg_conninfo, read_models={"rebuilt": "verification"})
    with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
        conn.execute("INSERT INTO rebuilt.consumer_offsets VALUES ('t', 0, 42)")
        tables = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'rebuilt'")}
        assert {"labels", "events", "consumer_offsets", "quarantine"} <= tables and "alerts" not in tables
    migrate.rebuild_read_model(settings.pg_conninfo, "rebuilt", "verification")
    with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM rebuilt.consumer_offsets").fetchone()[0] == 0
        laid_out = len(migrate.read_model_files("rebuilt", "verification"))
        assert laid_out >= 1
        assert conn.execute("SELECT count(*) FROM public.schema_migrations WHERE schema_name = 'rebuilt'").fetchone()[0] == laid_out
    with pytest.raises(migrate.MigrationError):
        migrate.upgrade(settings.pg_conninfo, read_models={"public": "verification"})


def _migrate_cli(settings, *args: str) -> subprocess.CompletedProcess:
    """``python -m ledger.migrate ARGS`` on ``settings``'s database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACELEDGER_")} | settings.to_env()
    return subprocess.run([sys.executable, "-m", "ledger.migrate", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)


def _event_store_layout(conninfo: str) -> dict:
    """What eventsourcing's tables, type and function look like in a database (catalog queries)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        def rows(sql: str) -> list:
            return conn.execute(sql).fetchall()
        return {
            "columns": rows("SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns"
                            " WHERE table_schema = 'public' AND table_name IN ('ledger_events', 'ledger_tracking')"
                            " ORDER BY table_name, ordinal_position"),
            "indexes": rows("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
                            " AND tablename IN ('ledger_events', 'ledger_tracking') ORDER BY indexname"),
            "options": rows("SELECT relname, reloptions FROM pg_class WHERE relname IN ('ledger_events', 'ledger_tracking') ORDER BY relname"),
            "type": rows("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
                         " WHERE attrelid = 'public.stored_event_uuid'::regclass ORDER BY attnum"),
            "function": rows("SELECT pg_get_functiondef('public.es_insert_events_uuid'::regproc)"),
            "tracking": rows("SELECT * FROM public.ledger_tracking ORDER BY application_name"),
        }


def test_the_event_store_migration_is_what_eventsourcing_creates(fresh_settings):
    """0001_event_store.sql against the pinned library creating its own tables (CREATE_TABLE=yes)."""
    by_library = fresh_settings(migrated=False)
    LedgerApplication(env={**by_library.eventsourcing_env(), "CREATE_TABLE": "yes"}).close()
    by_migration = fresh_settings()
    assert _event_store_layout(by_migration.pg_conninfo) == _event_store_layout(by_library.pg_conninfo)
