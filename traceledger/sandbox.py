"""Throw-away databases and topic prefixes for tests and benchmarks.

Each test or benchmark run works in its own PostgreSQL database and Kafka
topic prefix so runs never collide; :func:`drop` removes them afterwards.
"""

from __future__ import annotations

from kafka import KafkaAdminClient
import psycopg

from ledger.config import Settings


def create_database(base: Settings, name: str) -> None:
    with psycopg.connect(base.pg_conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")


def drop(base: Settings, dbs: list[str], prefixes: list[str]) -> None:
    """Drop ``dbs`` and every topic whose name starts with one of ``prefixes``."""
    with psycopg.connect(base.pg_conninfo, autocommit=True) as conn:
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
