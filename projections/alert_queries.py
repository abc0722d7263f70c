"""Reads of the detector's alerts (schema ``alerts`` by default): list, one alert with its evidence, summary counts.

Every function takes an async connection; filters are validated here (a bad
kind or region is a :class:`ledger.errors.Refused`). Rows come back as dicts
with the alert's stable UUID as ``id`` and its table position as ``position``
(the list's page cursor).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import dict_row

from ledger import regions
from ledger.errors import Refused
from projections.alerts import DEFAULT_SCHEMA
from projections.detection_config import ALERT_KINDS

COLUMNS = (
    "id AS position, alert_id AS id, dedupe_key, kind, severity, serial, producer, gtin, region, province, lat, lon, gateway, "
    "evidence, sightings, first_seen, last_seen, state, resolution, detail, created_at, updated_at"
)

BUCKETS = ("hour", "day", "week", "month")
# Bounded work per request (issue 15 item 6): a summary's time series keeps its newest
# buckets (hourly buckets over years would otherwise be one row per hour and kind), and
# an alert shows at most this many transitions (a chain has two: acknowledged, resolved).
MAX_SERIES_ROWS = 5000
MAX_TRANSITIONS = 100
LEVELS = ("province", "city")


@dataclass
class AlertFilter:
    """Which alerts a read covers (None: any)."""

    kind: str | None = None
    serial: str | None = None
    producer: str | None = None
    region: str | None = None
    state: str | None = None
    since: datetime | None = None  # last seen at or after
    until: datetime | None = None  # first seen before

    def where(self) -> tuple[str, list]:
        """`` WHERE ...`` (or nothing) and its arguments; refuses an unknown kind or a malformed region."""
        conds, args = [], []
        if self.kind is not None:
            if self.kind not in ALERT_KINDS:
                raise Refused("invalid_field", f"kind must be one of {', '.join(ALERT_KINDS)}", field="kind")
            conds.append("kind = %s")
            args.append(self.kind)
        for column in ("serial", "producer", "state"):
            if getattr(self, column) is not None:
                conds.append(f"{column} = %s")
                args.append(getattr(self, column))
        if self.region is not None:
            code = regions.normalize(self.region)
            if code is None:
                raise Refused("invalid_field", "region must be a GB/T 2260 code or prefix of 2-12 digits", field="region")
            conds.append("region LIKE %s")
            args.append(code + "%")
        if self.since is not None:
            conds.append("last_seen >= %s")
            args.append(self.since)
        if self.until is not None:
            conds.append("first_seen < %s")
            args.append(self.until)
        return (" WHERE " + " AND ".join(conds)) if conds else "", args


async def page(conn: psycopg.AsyncConnection, which: AlertFilter, limit: int, before: int | None = None,
               schema: str = DEFAULT_SCHEMA) -> list[dict]:
    """Up to ``limit`` alerts, newest first, with a position below ``before`` if given."""
    cond, args = which.where()
    if before is not None:
        cond, args = (cond + " AND " if cond else " WHERE ") + "id < %s", args + [before]
    async with conn.cursor(row_factory=dict_row) as cur:
        return await (await cur.execute(f"SELECT {COLUMNS} FROM {schema}.alerts{cond} ORDER BY position DESC LIMIT %s",
                                        args + [limit])).fetchall()


async def one(conn: psycopg.AsyncConnection, alert_id: uuid.UUID, schema: str = DEFAULT_SCHEMA) -> dict | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        return await (await cur.execute(f"SELECT {COLUMNS} FROM {schema}.alerts WHERE alert_id = %s", (alert_id,))).fetchone()


async def evidence(conn: psycopg.AsyncConnection, alert: dict, schema: str = DEFAULT_SCHEMA) -> list[dict]:
    """The ledger events (or, for an unknown code, the scans) behind an alert."""
    async with conn.cursor(row_factory=dict_row) as cur:
        if alert["serial"]:
            return await (await cur.execute(
                f"SELECT event_id, seq, kind, actor, region, occurred_at, log_index FROM {schema}.events "
                "WHERE subject_type = 'label' AND subject = %s AND event_id = ANY(%s) ORDER BY seq",
                (alert["serial"], alert["evidence"]))).fetchall()
        return await (await cur.execute(
            f"SELECT event_id, serial, channel, region, occurred_at FROM {schema}.unknown_scans WHERE event_id = ANY(%s) ORDER BY inbox_id",
            (alert["evidence"],))).fetchall()


async def transitions(conn: psycopg.AsyncConnection, alert_id: uuid.UUID, schema: str = DEFAULT_SCHEMA) -> list[dict]:
    """An alert's acknowledgements and resolutions, in chain order."""
    async with conn.cursor(row_factory=dict_row) as cur:
        return await (await cur.execute(
            f"SELECT seq, event_id, kind, actor, resolution, note, occurred_at, log_index, status, reason "
            f"FROM {schema}.alert_transitions WHERE alert_id = %s ORDER BY seq LIMIT {MAX_TRANSITIONS}", (alert_id,))).fetchall()


async def counts(conn: psycopg.AsyncConnection, which: AlertFilter, bucket: str, level: str, schema: str = DEFAULT_SCHEMA) -> dict:
    """Raw summary counts: ``by_kind``, ``by_state``, ``by_region`` (place, kind, n) and ``series`` (time bucket, kind, n).

    ``bucket`` is hour | day | week | month; ``level`` province | city (a city is a 4-digit region prefix).
    The series holds at most :data:`MAX_SERIES_ROWS` rows, the newest.
    """
    if bucket not in BUCKETS or level not in LEVELS:
        raise Refused("invalid_field", f"bucket must be one of {', '.join(BUCKETS)}, level one of {', '.join(LEVELS)}", field="bucket")
    cond, args = which.where()
    place = "province" if level == "province" else "left(region, 4)"
    table = f"{schema}.alerts{cond}"
    async with conn.cursor() as cur:
        return {
            "by_kind": await (await cur.execute(f"SELECT kind, count(*) FROM {table} GROUP BY kind ORDER BY 2 DESC, 1", args)).fetchall(),
            "by_state": await (await cur.execute(f"SELECT state, count(*) FROM {table} GROUP BY state", args)).fetchall(),
            "by_region": await (await cur.execute(
                f"SELECT {place} AS r, kind, count(*) FROM {table} GROUP BY r, kind ORDER BY r NULLS LAST, kind", args)).fetchall(),
            "series": list(reversed(await (await cur.execute(
                f"SELECT date_trunc('{bucket}', first_seen) AS b, kind, count(*) FROM {table} GROUP BY b, kind "
                f"ORDER BY b DESC, kind DESC LIMIT {MAX_SERIES_ROWS}", args)).fetchall())),
        }
