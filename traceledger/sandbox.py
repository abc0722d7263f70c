"""Throw-away databases and topic prefixes for tests and benchmarks.

Each test or benchmark run works in its own PostgreSQL database and Kafka
topic prefix so runs never collide; :func:`drop` removes them afterwards.
Databases are created and dropped from the ``postgres`` maintenance database
(never from the demo's own, which may not exist yet or be in use), and a new
one gets its tables from the migrations (:mod:`ledger.migrate`), as every
database does.
"""

from __future__ import annotations

import psycopg
from kafka import KafkaAdminClient

from ledger import migrate
from ledger.config import Settings

MAINTENANCE_DB = "postgres"


def _maintenance(base: Settings) -> psycopg.Connection:
    return psycopg.connect(base.with_(pg_db=MAINTENANCE_DB).pg_conninfo, autocommit=True)


def create_database(base: Settings, name: str, *, migrated: bool = True) -> None:
    """Create database ``name`` on ``base``'s server, with every migration applied unless ``migrated`` is false."""
    with _maintenance(base) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    if migrated:
        migrate.upgrade(base.with_(pg_db=name).pg_conninfo)


def drop(base: Settings, dbs: list[str], prefixes: list[str]) -> None:
    """Drop ``dbs`` and every topic whose name starts with one of ``prefixes``."""
    with _maintenance(base) as conn:
        for db in dbs:
            conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
    if not prefixes:
        return
    admin = KafkaAdminClient(**base.kafka_client_config())
    try:
        doomed = [t for t in admin.list_topics() if any(t.startswith(p) for p in prefixes)]
        if doomed:
            admin.delete_topics(doomed)
    finally:
        admin.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m traceledger.sandbox DB... --prefixes P...``: drop what a test session made (from the environment's settings)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m traceledger.sandbox", description=main.__doc__)
    parser.add_argument("dbs", nargs="*", help="databases to drop")
    parser.add_argument("--prefixes", nargs="*", default=[], help="topic prefixes whose topics to delete")
    args = parser.parse_args(argv)
    drop(Settings.from_env(), args.dbs, args.prefixes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
