"""Where an exactly-once consumer keeps its place: offsets and quarantine, in the read model's schema.

The consumer loop (``consumers.exactly_once``) commits these rows in the same
PostgreSQL transaction as the projection's writes; the tables belong with the
read model they position, so they are defined here.
"""

from __future__ import annotations


def offsets_sql(schema: str) -> str:
    return f"""
    CREATE SCHEMA IF NOT EXISTS {schema};
    CREATE TABLE IF NOT EXISTS {schema}.consumer_offsets (
        topic text NOT NULL,
        partition int NOT NULL,
        next_offset bigint NOT NULL,
        PRIMARY KEY (topic, partition)
    );
    CREATE TABLE IF NOT EXISTS {schema}.quarantine (
        id bigserial PRIMARY KEY,
        topic text NOT NULL,
        partition int NOT NULL,
        "offset" bigint NOT NULL,
        key bytea,
        value bytea,
        code text NOT NULL,
        detail text NOT NULL,
        quarantined_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (topic, partition, "offset")
    );
    """
