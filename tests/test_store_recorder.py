"""The ledger's own event writer (``ledger.store.ColumnarProcessRecorder``) and what it relies on.

The recorder inherits eventsourcing's PostgreSQL process recorder for reading and for
its tables, and writes with its own SQL through the public ``insert_events``. This
file fails when the library changes underneath it:

- the pinned eventsourcing version, and the public names and signatures used;
- no private method of the library is overridden (a new release may rename those freely);
- the table layout the SQL writes to (columns, types, primary keys);

and checks, on the real PostgreSQL, what the write must still guarantee: concurrent
writers of one chain's next event cannot fork it, the tracking record commits (or
not) with the events, the notification ids returned are the ones eventsourcing's
reading API gives, in batch order, and listeners are notified.
"""

from __future__ import annotations

import inspect
import threading
import tomllib
import uuid
from importlib import metadata

import psycopg
import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, StoredEvent, Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresFactory, PostgresProcessRecorder

from ledger.config import REPO_ROOT
from ledger.store import Chain, ColumnarProcessRecorder, LedgerApplication, chain_topic_sql, signed_body_sql
from tests.helpers import Cast

PINNED = "9.5.6"


def _parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_eventsourcing_is_the_pinned_version():
    assert metadata.version("eventsourcing") == PINNED
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert f"eventsourcing[postgres]=={PINNED}" in project["dependencies"]


def test_the_public_names_the_recorder_uses_are_still_there():
    # Constructed by the factory with these keywords; the attributes our SQL is built from.
    assert _parameters(PostgresProcessRecorder.__init__) == ["self", "datastore", "events_table_name", "tracking_table_name"]
    assert {"schema", "lock_timeout", "originator_id_type", "single_row_tracking"} <= set(
        _parameters(PostgresDatastore.__init__))
    assert inspect.isfunction(PostgresDatastore.get_connection)
    # The application calls insert_events(stored_events, tracking=...) and reads back with these.
    assert _parameters(PostgresProcessRecorder.insert_events)[:2] == ["self", "stored_events"]
    assert _parameters(PostgresProcessRecorder.select_notifications) == [
        "self", "start", "limit", "stop", "topics", "inclusive_of_start"]
    assert _parameters(PostgresProcessRecorder.max_notification_id) == ["self"]
    assert _parameters(PostgresProcessRecorder.max_tracking_id) == ["self", "application_name"]
    assert _parameters(PostgresProcessRecorder.insert_tracking) == ["self", "tracking"]
    assert _parameters(PostgresProcessRecorder.subscribe) == ["self", "gt", "topics"]
    # How LedgerApplication registers the recorder.
    assert PostgresFactory.PROCESS_RECORDER_TOPIC == "PROCESS_RECORDER_TOPIC"
    assert _parameters(PostgresFactory.process_recorder) == ["self"]
    assert _parameters(Application.construct_recorder) == ["self"]


def test_the_recorder_overrides_no_private_method_of_the_library():
    ours = {name for name, value in vars(ColumnarProcessRecorder).items()
            if inspect.isfunction(value) and name.startswith("_") and not name.startswith("__")}
    assert not {name for name in ours if hasattr(PostgresProcessRecorder, name)}
    assert "insert_events" in vars(ColumnarProcessRecorder)


@pytest.fixture
def app(settings):
    app = LedgerApplication(env=settings.eventsourcing_env())
    yield app
    app.close()


def _columns(conn, table: str) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
        (table,)).fetchall()


def _primary_key(conn, table: str) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
        " WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
        (table,)).fetchall()]


def test_the_tables_the_recorder_writes_are_laid_out_as_it_expects(app, settings):
    recorder = app.recorder
    assert isinstance(recorder, ColumnarProcessRecorder)
    assert (recorder.events_table_name, recorder.tracking_table_name, recorder.channel_name) == (
        "ledger_events", "ledger_tracking", "ledger_events")
    with psycopg.connect(settings.pg_conninfo) as conn:
        assert _columns(conn, "ledger_events") == [
            ("originator_id", "uuid"), ("originator_version", "bigint"), ("topic", "text"), ("state", "bytea"),
            ("notification_id", "bigint")]
        assert _primary_key(conn, "ledger_events") == ["originator_id", "originator_version"]
        assert _columns(conn, "ledger_tracking") == [("application_name", "text"), ("notification_id", "bigint")]
        assert _primary_key(conn, "ledger_tracking") == ["application_name"]


def _event(originator_id: uuid.UUID, version: int, state: bytes = b"{}") -> StoredEvent:
    return StoredEvent(originator_id=originator_id, originator_version=version, topic="test:Event", state=state)


def test_notification_ids_follow_the_batch_and_are_what_the_library_reads(app):
    recorder = app.recorder
    before = recorder.max_notification_id() or 0
    batch = [_event(uuid.uuid4(), 1, f'{{"n": {i}}}'.encode()) for i in range(500)]
    ids = recorder.insert_events(batch)
    assert len(ids) == len(batch) and ids == sorted(ids) and ids[0] > before
    read = recorder.select_notifications(start=before, limit=1000, inclusive_of_start=False)
    assert [n.id for n in read] == ids
    assert [(n.originator_id, n.originator_version, n.topic, n.state) for n in read] == [
        (e.originator_id, e.originator_version, e.topic, e.state) for e in batch]
    assert recorder.max_notification_id() == ids[-1]
    assert recorder.insert_events([]) == []


def test_the_library_saves_an_aggregate_through_the_recorder(app):
    signed = Cast().founding_events()[0]
    chain = Chain.start(signed)
    app.save(chain)
    loaded = app.repository.get(chain.id)
    assert (loaded.head, loaded.length) == (chain.head, 1)


def test_concurrent_writers_of_a_chains_next_event_cannot_fork_it(app, settings):
    chain = uuid.uuid4()
    app.recorder.insert_events([_event(chain, 1)])
    writers = [LedgerApplication(env=settings.eventsourcing_env()) for _ in range(4)]
    start = threading.Barrier(len(writers))
    outcomes: list[str] = []

    def write(writer: LedgerApplication, n: int) -> None:
        start.wait()
        try:
            writer.recorder.insert_events([_event(uuid.uuid4(), 1), _event(chain, 2, f'{{"writer": {n}}}'.encode())])
            outcomes.append("stored")
        except IntegrityError:
            outcomes.append("refused")

    try:
        threads = [threading.Thread(target=write, args=(w, n)) for n, w in enumerate(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for w in writers:
            w.close()
    assert sorted(outcomes) == ["refused"] * 3 + ["stored"]
    assert [e.originator_version for e in app.recorder.select_events(chain)] == [1, 2]
    # A refused batch stored nothing: only the winner's other row is there.
    assert len(app.recorder.select_notifications(start=None, limit=100)) == 1 + 2


def test_the_tracking_record_commits_with_the_events_or_not_at_all(app):
    recorder = app.recorder
    chain = uuid.uuid4()
    recorder.insert_events([_event(chain, 1)], tracking=Tracking("inbox", 5))
    assert recorder.max_tracking_id("inbox") == 5
    # The events are refused (version 1 again): the position does not move either.
    with pytest.raises(IntegrityError):
        recorder.insert_events([_event(chain, 1)], tracking=Tracking("inbox", 6))
    assert recorder.max_tracking_id("inbox") == 5
    # The position does not move forward (already recorded): the events are not stored.
    with pytest.raises(IntegrityError):
        recorder.insert_events([_event(chain, 2)], tracking=Tracking("inbox", 5))
    assert [e.originator_version for e in recorder.select_events(chain)] == [1]
    # Tracking alone, with no events, still moves forward.
    assert recorder.insert_events([], tracking=Tracking("inbox", 7)) == []
    assert recorder.max_tracking_id("inbox") == 7


def test_listeners_are_notified_of_a_write(app, settings):
    with psycopg.connect(settings.pg_conninfo, autocommit=True) as listener:
        listener.execute(f'LISTEN "{app.recorder.channel_name}"')
        app.recorder.insert_events([_event(uuid.uuid4(), 1)])
        assert [n.channel for n in listener.notifies(timeout=5, stop_after=1)] == [app.recorder.channel_name]


def test_the_stored_format_sql_reads_what_the_application_stores(app, settings):
    cast = Cast()
    founding = cast.founding_events()[:2]
    chain = Chain.start(founding[0])
    app.recorder.insert_events(app.to_stored_events(chain.collect_events()))
    with psycopg.connect(settings.pg_conninfo) as conn:
        topic, body = conn.execute(
            f"SELECT s.topic = {chain_topic_sql('0')}, {signed_body_sql('s.state')} FROM ledger_events s WHERE originator_id = %s",
            (chain.id,)).fetchone()
        assert topic is True and bytes(body) == founding[0].body
        assert conn.execute(f"SELECT {chain_topic_sql('1')}").fetchone()[0] == "ledger.store:Chain.Appended"
        assert conn.execute(f"SELECT {signed_body_sql(chr(39) + '{}' + chr(39) + '::bytea')}").fetchone()[0] is None
