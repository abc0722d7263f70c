"""Schema migrations: every table, in ordered SQL files, applied once, by one process at a time.

``python -m ledger.migrate`` (or :func:`upgrade` from a process's start-up) applies what
is pending of

- ``ledger/migrations/NNNN_<name>.sql``: the database's own tables in schema ``public``
  (eventsourcing's event store, the global log and its Merkle tree, the scan inbox, the
  consumer channels' state, EPCIS capture jobs, the EPCIS query index), in version order;
- the read models, each a schema laid out from a *track* of templated files,
  ``ledger/migrations/<track>/NNNN_<name>.sql``, where ``{schema}`` stands for the read
  model's schema name. A read model's *kind* says which tracks make it: a
  ``verification`` read model is the ``verification`` track; the detector's ``alerts``
  read model is the ``verification`` track (it re-verifies with the same projector, in its
  own schema) and then the ``alerts`` track. The default read models are the schemas
  ``verification`` and ``alerts``; a projector or detector started with ``--schema NAME``
  lays out its own ``NAME`` from the same files (tests rebuild into side schemas and
  compare), so one set of files describes every copy.

``public.schema_migrations`` records each applied file per (track, schema): its version,
name and SHA-256 checksum (of the file as written, before ``{schema}`` is filled in). A
PostgreSQL advisory lock is held while migrating, so runners started at the same instant
(the relay, projectors, detector and API workers all call :func:`upgrade` at start-up)
take turns: the first applies what is pending, the others find nothing left. Each file
runs in its own transaction with its version row, so it is applied exactly once or not
at all. An applied file whose checksum changed is refused loudly (:class:`MigrationError`):
a change goes into a new file, never into an applied one.

``--rebuild`` of a projector or detector (:func:`rebuild_read_model`) drops the read
model's schema, forgets its version rows and lays it out again from the files, all in one
transaction under the lock: readers see the old read model or the new empty one, never
none, and no table is made anywhere but here. (Truncating would keep tables that a
rebuild is meant to renew, and would need its own list of them.)

Why not alembic: it is built on SQLAlchemy, which the project does not use (it speaks
SQL through psycopg), and its Python revision scripts would hold the same SQL as these
files plus a second database layer. The needs here are small and exact: ordered SQL, a
version table, a lock, checksums, and one templated read-model layout per schema.

The first files create everything with ``IF NOT EXISTS``: a database whose tables were
made at start-up before migrations existed is adopted as it is.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

import psycopg

from ledger.logging_setup import configure, get_logger

log = get_logger("migrate")

DATABASE_TRACK = "ledger"  # the files directly in ledger/migrations/, applied to schema public
# A read model's kind -> the tracks that lay it out, in order.
READ_MODEL_KINDS: dict[str, tuple[str, ...]] = {
    "verification": ("verification",),
    "alerts": ("verification", "alerts"),
}
# Schema -> kind of the read models every database has (the projector's, the detector's).
DEFAULT_READ_MODELS: dict[str, str] = {"verification": "verification", "alerts": "alerts"}
# Any fixed number, held while migrating so concurrent runners take turns.
MIGRATION_LOCK = 0x74726D6967
PLACEHOLDER = "{schema}"
_FILE_NAME = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

# The runner's own table (the one table not in a migration file: it says which files ran).
_VERSION_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS public.schema_migrations (
    track text NOT NULL,
    schema_name text NOT NULL,
    version int NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (track, schema_name, version)
)
"""


class MigrationError(RuntimeError):
    """A migration cannot be applied (or an applied one was edited)."""


@dataclass(frozen=True)
class Migration:
    """One SQL file of a track, for one schema."""

    track: str
    schema: str
    version: int
    name: str
    template: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.template.encode()).hexdigest()

    @property
    def sql(self) -> str:
        return self.template.replace(PLACEHOLDER, self.schema)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.track, self.schema, self.version)

    def __str__(self) -> str:
        where = "" if self.track == DATABASE_TRACK else f"{self.track}/"
        return f"{where}{self.version:04d}_{self.name}.sql in schema {self.schema}"


def track_files(track: str, schema: str) -> list[Migration]:
    """The files of ``track`` in version order, for ``schema``."""
    folder = resources.files("ledger") / "migrations"
    if track != DATABASE_TRACK:
        folder = folder / track
    found = []
    for entry in folder.iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(track, schema, int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise MigrationError(f"migrations of track {track!r} must be numbered 1, 2, 3, ... without gaps: found {versions}")
    return found


def read_model_files(schema: str, kind: str) -> list[Migration]:
    """The files that lay out a read model of ``kind`` in ``schema``."""
    if not _SCHEMA_NAME.fullmatch(schema) or schema in ("public", "pg_catalog", "information_schema"):
        raise MigrationError(f"{schema!r} is not a usable read model schema name (lower-case letters, digits, _)")
    if kind not in READ_MODEL_KINDS:
        raise MigrationError(f"unknown read model kind {kind!r} (one of {sorted(READ_MODEL_KINDS)})")
    return [m for track in READ_MODEL_KINDS[kind] for m in track_files(track, schema)]


def plan(read_models: Mapping[str, str] | None = None) -> list[Migration]:
    """Every migration of the database, then of the default read models and ``read_models`` (schema -> kind)."""
    wanted = track_files(DATABASE_TRACK, "public")
    for schema, kind in {**DEFAULT_READ_MODELS, **(read_models or {})}.items():
        wanted += read_model_files(schema, kind)
    return wanted


# ------------------------------------------------------------------ applying


def _applied(conn: psycopg.Connection) -> dict[tuple[str, str, int], str]:
    """(track, schema, version) -> checksum of every applied file; empty before the first run."""
    if conn.execute("SELECT to_regclass('public.schema_migrations')").fetchone()[0] is None:
        return {}
    rows = conn.execute("SELECT track, schema_name, version, checksum FROM public.schema_migrations").fetchall()
    return {(t, s, v): c for t, s, v, c in rows}


def pending(conn: psycopg.Connection, wanted: list[Migration]) -> list[Migration]:
    """What of ``wanted`` is not applied yet; raises :class:`MigrationError` if an applied file was edited."""
    applied = _applied(conn)
    for m in wanted:
        if m.key in applied and applied[m.key] != m.checksum:
            raise MigrationError(
                f"migration {m} was applied with checksum {applied[m.key]} but the file now has {m.checksum}: "
                "an applied migration must not change; put the change in a new file"
            )
    return [m for m in wanted if m.key not in applied]


def _apply(conn: psycopg.Connection, m: Migration) -> None:
    conn.execute(m.sql)
    conn.execute(
        "INSERT INTO public.schema_migrations (track, schema_name, version, name, checksum) VALUES (%s, %s, %s, %s, %s)",
        (m.track, m.schema, m.version, m.name, m.checksum),
    )
    log.info("migration_applied", track=m.track, schema=m.schema, version=m.version, name=m.name)


class _Locked:
    """The migration lock held by ``conn`` (a session advisory lock) and the version table in place."""

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn

    def __enter__(self) -> psycopg.Connection:
        self.conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        with self.conn.transaction():
            self.conn.execute(_VERSION_TABLE_SQL)
        return self.conn

    def __exit__(self, *exc) -> None:
        if not self.conn.closed and not self.conn.broken:
            self.conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))


def upgrade_on(conn: psycopg.Connection, read_models: Mapping[str, str] | None = None) -> list[Migration]:
    """:func:`upgrade` over an open autocommit connection; returns what it applied."""
    wanted = plan(read_models)
    if not pending(conn, wanted):  # the usual start-up: nothing to do, no lock taken
        return []
    with _Locked(conn):
        todo = pending(conn, wanted)  # again: another runner may have applied them meanwhile
        for m in todo:
            with conn.transaction():
                _apply(conn, m)
    return todo


def upgrade(conninfo: str, read_models: Mapping[str, str] | None = None) -> list[Migration]:
    """Apply every pending migration of the database at ``conninfo`` (see the module docstring).

    ``read_models``: extra read models to lay out, schema -> kind (``verification`` or
    ``alerts``), besides the default ``verification`` and ``alerts`` schemas. Idempotent
    and safe to call from every process at start-up. Returns what it applied.
    """
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        return upgrade_on(conn, read_models)


def rebuild_read_model(conninfo: str, schema: str, kind: str) -> list[Migration]:
    """Drop read model ``schema`` and lay it out again, empty, in one transaction (``--rebuild``)."""
    files = read_model_files(schema, kind)
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn, _Locked(conn):
        pending(conn, files)  # refuses edited files before dropping anything
        with conn.transaction():
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            conn.execute("DELETE FROM public.schema_migrations WHERE schema_name = %s", (schema,))
            for m in files:
                _apply(conn, m)
    log.info("read_model_rebuilt", schema=schema, kind=kind)
    return files


def main(argv: list[str] | None = None) -> int:
    from ledger.config import Settings

    parser = argparse.ArgumentParser(description="apply traceledger's pending schema migrations")
    parser.add_argument("--check", action="store_true", help="apply nothing; exit 1 if a migration is pending (or an applied one was edited)")
    args = parser.parse_args(argv)
    configure()
    settings = Settings.from_env()
    try:
        if args.check:
            with psycopg.connect(settings.pg_conninfo, autocommit=True, connect_timeout=10) as conn:
                todo = pending(conn, plan())
            for m in todo:
                print(f"pending: {m}")
            print(f"{len(todo)} pending migration(s) in database {settings.pg_db}")
            return 1 if todo else 0
        applied = upgrade(settings.pg_conninfo)
    except MigrationError as exc:
        log.error("migration_refused", error=str(exc))
        print(f"migrate: {exc}", file=sys.stderr)
        return 2
    log.info("migrations_current", database=settings.pg_db, applied=len(applied))
    return 0


if __name__ == "__main__":
    sys.exit(main())
