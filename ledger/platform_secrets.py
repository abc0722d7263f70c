"""Keys the platform draws once per database and never publishes.

Each is 32 random bytes under a name in ``platform_secrets``
(ledger/migrations/0009_alert_owners_and_places.sql), drawn by whichever
process asks first; every process of the platform then uses the same key, and
it survives restarts and read-model rebuilds. Used for keyed hashes whose
outputs are public but must not be computable or linkable by outsiders: alert
ids (:mod:`ledger.alert_owners`) and per-label consumer pseudonyms
(:mod:`ledger.scan_inbox`).
"""

from __future__ import annotations

import os

import psycopg

ALERT_IDS = "alert_ids"
CONSUMER_PSEUDONYMS = "consumer_pseudonyms"


def get(cur: psycopg.Cursor | psycopg.Connection, name: str) -> bytes:
    """The key named ``name``: drawn now if no process has drawn it yet."""
    cur.execute("INSERT INTO public.platform_secrets (name, secret) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING", (name, os.urandom(32)))
    return bytes(cur.execute("SELECT secret FROM public.platform_secrets WHERE name = %s", (name,)).fetchone()[0])
