"""EPCIS named queries and subscriptions, stored: definitions, owners, durable cursors.

A *named query* is a saved set of standard query parameters
(:func:`ledger.epcis_query.parse_query` checks them) under a name, owned by the
actor who saved it. A *subscription* to one is a cursor in PostgreSQL: the log
index of the last EPCIS event its subscriber acknowledged
(``acked_through``). Delivery reads the events after it; only an
acknowledgement moves it, and only forward. So delivery is at least once: a
subscriber that lost an answer (or an API that restarted mid-answer) gets the
same events again, never fewer. Tables: ledger/migrations/0013_epcis_subscriptions.sql.

A *webhook* subscription (``dest``, migration 0016) is pushed to by the API
(:mod:`traceledger.api.epcis_webhooks`): a worker leases a due subscription
(:func:`claim_due`, ``FOR UPDATE SKIP LOCKED``, so one worker at a time), posts the
events after the cursor, and only a 2xx answer moves the cursor
(:func:`delivered`); a failure schedules the next attempt after a growing delay
(:func:`failed_attempt`) and after :data:`MAX_ATTEMPTS` the subscription is
``failed`` (its owner sees why). A lease that outlives its worker (a crash, a
restart) simply expires and the delivery is made again: at least once.
"""

from __future__ import annotations

import re
import uuid

import orjson
import psycopg

from ledger.epcis import EpcisError
from ledger.epcis_query import PAGING, SHAPING, parse_query
from ledger.errors import Refused

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_QUERIES_PER_OWNER = 100
MAX_SUBSCRIPTIONS_PER_QUERY = 20
MAX_WEBHOOKS_PER_OWNER = 5  # each delivery may hold a worker up to its timeout: one actor cannot take them all
MAX_ATTEMPTS = 8  # failed deliveries in a row before a webhook subscription is given up ('failed')
FIRST_RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 600.0
_COLUMNS = ("owner, acked_through, created_at, acked_at, dest, state, attempts, next_attempt_at, last_error, delivered_at, "
            "deliveries")


def check_params(params: list[tuple[str, str]]) -> None:
    """A named query's parameters: standard ones, valid, no paging (a subscription pages itself)."""
    if not params:
        raise EpcisError("QueryParameterException", "a named query needs at least one parameter")
    if any(name in PAGING or name in SHAPING for name, _ in params):
        raise EpcisError("QueryParameterException", "perPage, nextPageToken, orderBy, orderDirection and eventCountLimit belong to "
                         "a request, not to a named query (a subscription delivers in the log's order)")
    parse_query(params)


def create_query(conn: psycopg.Connection, name: str, owner: str, params: list[tuple[str, str]]) -> None:
    """Save a named query; refuse a bad or taken name or bad parameters (nothing stored)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise Refused("invalid_field", "a query name is 1-64 characters of A-Z, a-z, 0-9, '_', '.', '-'", field="name")
    check_params(params)
    with conn.transaction():
        count = conn.execute("SELECT count(*) FROM epcis_named_queries WHERE owner = %s", (owner,)).fetchone()[0]
        if count >= MAX_QUERIES_PER_OWNER:
            raise Refused("too_many", f"at most {MAX_QUERIES_PER_OWNER} named queries per actor", field="name")
        row = conn.execute("INSERT INTO epcis_named_queries (name, owner, params) VALUES (%s, %s, %s) ON CONFLICT (name) DO NOTHING "
                           "RETURNING name", (name, owner, orjson.dumps(params).decode())).fetchone()
    if row is None:
        raise Refused("name_taken", f"a named query {name!r} exists already", field="name")


def _query_dict(row) -> dict:
    name, owner, params, created = row
    return {"name": name, "owner": owner, "query": [list(p) for p in params], "createdAt": created.isoformat()}


def query(conn: psycopg.Connection, name: str) -> dict | None:
    row = conn.execute("SELECT name, owner, params, created_at FROM epcis_named_queries WHERE name = %s", (name,)).fetchone()
    return None if row is None else _query_dict(row)


def queries(conn: psycopg.Connection, owner: str | None) -> list[dict]:
    """Named queries (``owner``'s, or all for None), by name."""
    rows = conn.execute("SELECT name, owner, params, created_at FROM epcis_named_queries "
                        "WHERE %(owner)s::text IS NULL OR owner = %(owner)s ORDER BY name", {"owner": owner}).fetchall()
    return [_query_dict(r) for r in rows]


def delete_query(conn: psycopg.Connection, name: str) -> bool:
    """Delete a named query and its subscriptions; False if there was none."""
    return conn.execute("DELETE FROM epcis_named_queries WHERE name = %s RETURNING name", (name,)).fetchone() is not None


def subscribe(conn: psycopg.Connection, name: str, owner: str, after: int, dest: str | None = None, secret: bytes | None = None) -> str:
    """A new subscription to ``name`` delivering events after log index ``after`` (pushed to ``dest``, signed with
    ``secret``, if given); its id."""
    with conn.transaction():
        count = conn.execute("SELECT count(*) FROM epcis_subscriptions WHERE query_name = %s", (name,)).fetchone()[0]
        if count >= MAX_SUBSCRIPTIONS_PER_QUERY:
            raise Refused("too_many", f"at most {MAX_SUBSCRIPTIONS_PER_QUERY} subscriptions per named query", field="name")
        if dest is not None:
            hooks = conn.execute("SELECT count(*) FROM epcis_subscriptions WHERE owner = %s AND dest IS NOT NULL", (owner,)).fetchone()[0]
            if hooks >= MAX_WEBHOOKS_PER_OWNER:
                raise Refused("too_many", f"at most {MAX_WEBHOOKS_PER_OWNER} webhook subscriptions per actor", field="dest")
        subscription_id = str(uuid.uuid4())
        conn.execute("INSERT INTO epcis_subscriptions (subscription_id, query_name, owner, acked_through, dest, secret) "
                     "VALUES (%s, %s, %s, %s, %s, %s)", (subscription_id, name, owner, after, dest, secret))
    return subscription_id


def _subscription_dict(subscription_id: str, name: str, row) -> dict:
    owner, acked, created, acked_at, dest, state, attempts, next_at, error, delivered_at, deliveries = row
    out = {"subscriptionID": subscription_id, "queryName": name, "owner": owner, "ackedThrough": acked,
           "createdAt": created.isoformat(), "ackedAt": acked_at.isoformat() if acked_at else None}
    if dest is not None:  # a webhook's delivery state (never its secret)
        out |= {"dest": dest, "state": state, "attempts": attempts, "nextAttemptAt": next_at.isoformat(), "lastError": error,
                "deliveredAt": delivered_at.isoformat() if delivered_at else None, "deliveries": deliveries}
    return out


def subscription(conn: psycopg.Connection, name: str, subscription_id: str) -> dict | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM epcis_subscriptions WHERE query_name = %s AND subscription_id = %s",
                       (name, subscription_id)).fetchone()
    return None if row is None else _subscription_dict(subscription_id, name, row)


def subscriptions(conn: psycopg.Connection, name: str) -> list[dict]:
    ids = conn.execute("SELECT subscription_id FROM epcis_subscriptions WHERE query_name = %s ORDER BY created_at", (name,)).fetchall()
    return [subscription(conn, name, str(i)) for (i,) in ids]


def acknowledge(conn: psycopg.Connection, subscription_id: str, through: int) -> int:
    """Move the cursor forward to ``through`` (never back); the cursor after."""
    row = conn.execute("UPDATE epcis_subscriptions SET acked_through = greatest(acked_through, %s), acked_at = now() "
                       "WHERE subscription_id = %s RETURNING acked_through", (through, subscription_id)).fetchone()
    return row[0]


def unsubscribe(conn: psycopg.Connection, subscription_id: str) -> bool:
    return conn.execute("DELETE FROM epcis_subscriptions WHERE subscription_id = %s RETURNING 1", (subscription_id,)).fetchone() is not None


# ---------------------------------------------------------------- webhook delivery state


def retry_delay(attempts: int) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones in a row: doubling, capped."""
    return min(FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0), MAX_RETRY_SECONDS)


def claim_due(conn: psycopg.Connection, lease_seconds: float, limit: int = 10) -> list[dict]:
    """Lease up to ``limit`` webhook subscriptions due for delivery (no other worker holds them)."""
    rows = conn.execute(
        "UPDATE epcis_subscriptions SET lease_until = now() + make_interval(secs => %s) WHERE subscription_id IN ("
        " SELECT subscription_id FROM epcis_subscriptions WHERE dest IS NOT NULL AND state = 'active' AND next_attempt_at <= now()"
        " AND (lease_until IS NULL OR lease_until < now()) ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED) "
        "RETURNING subscription_id, query_name, owner, acked_through, dest, secret, attempts",
        (lease_seconds, limit)).fetchall()
    return [{"subscriptionID": str(i), "queryName": q, "owner": o, "ackedThrough": a, "dest": d, "secret": bytes(s), "attempts": n}
            for i, q, o, a, d, s, n in rows]


def delivered(conn: psycopg.Connection, subscription_id: str, through: int) -> None:
    """The receiver took the events through log index ``through``: move the cursor, due again at once."""
    conn.execute("UPDATE epcis_subscriptions SET acked_through = greatest(acked_through, %s), acked_at = now(), attempts = 0, "
                 "last_error = NULL, delivered_at = now(), deliveries = deliveries + 1, next_attempt_at = now(), lease_until = NULL "
                 "WHERE subscription_id = %s", (through, subscription_id))


def idle(conn: psycopg.Connection, subscription_id: str, through: int, seconds: float) -> None:
    """Nothing new to deliver (events up to ``through`` were none the owner may read): look again in ``seconds``."""
    conn.execute("UPDATE epcis_subscriptions SET acked_through = greatest(acked_through, %s), "
                 "next_attempt_at = now() + make_interval(secs => %s), lease_until = NULL WHERE subscription_id = %s",
                 (through, seconds, subscription_id))


def failed_attempt(conn: psycopg.Connection, subscription_id: str, error: str) -> dict:
    """A delivery failed: the next attempt after :func:`retry_delay`, or ``failed`` after MAX_ATTEMPTS; the new state."""
    row = conn.execute("SELECT attempts FROM epcis_subscriptions WHERE subscription_id = %s", (subscription_id,)).fetchone()
    attempts = (row[0] if row else 0) + 1
    state = "failed" if attempts >= MAX_ATTEMPTS else "active"
    conn.execute("UPDATE epcis_subscriptions SET attempts = %s, state = %s, last_error = %s, lease_until = NULL, "
                 "next_attempt_at = now() + make_interval(secs => %s) WHERE subscription_id = %s",
                 (attempts, state, error[:500], retry_delay(attempts), subscription_id))
    return {"attempts": attempts, "state": state}
