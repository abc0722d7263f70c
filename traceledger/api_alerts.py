"""Alert endpoints: list, show, summary (an APIRouter included by traceledger.api).

Reads the detector's ``alerts`` schema on the API's async pool. Who may see
what (producers their own labels' alerts, regulators all) needs caller
authentication, which the API does not have yet: today ``producer`` is a
filter, not a permission.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable, Literal

import psycopg
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, ORJSONResponse
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from ledger import regions
from ledger.errors import Refused
from projections import alerts as model
from consumers.exactly_once import offsets_sql
from projections.detection_config import ALERT_KINDS

MAX_PAGE = 1000
_COLUMNS = (
    "id, dedupe_key, kind, severity, serial, producer, gtin, region, province, lat, lon, gateway, evidence, sightings, "
    "first_seen, last_seen, state, resolution, detail, created_at, updated_at"
)


def alert_json(row: dict) -> dict:
    """An alerts row as the API shows it."""
    out = dict(row)
    for k in ("first_seen", "last_seen", "created_at", "updated_at"):
        out[k] = row[k].isoformat() if row.get(k) else None
    out["region_name"] = regions.name(row.get("region"))
    return out


def _filters(kind, serial, producer, region, state, since, until) -> tuple[list[str], list]:
    where, args = [], []
    if kind is not None:
        if kind not in ALERT_KINDS:
            raise Refused("invalid_field", f"kind must be one of {', '.join(ALERT_KINDS)}", field="kind")
        where.append("kind = %s"); args.append(kind)
    if serial is not None:
        where.append("serial = %s"); args.append(serial)
    if producer is not None:
        where.append("producer = %s"); args.append(producer)
    if region is not None:
        code = regions.normalize(region)
        if code is None:
            raise Refused("invalid_field", "region must be a GB/T 2260 code or prefix of 2-12 digits", field="region")
        where.append("region LIKE %s"); args.append(code + "%")
    if state is not None:
        where.append("state = %s"); args.append(state)
    if since is not None:
        where.append("last_seen >= %s"); args.append(since)
    if until is not None:
        where.append("first_seen < %s"); args.append(until)
    return where, args


def router(get_pool: Callable[[], AsyncConnectionPool], schema: str = model.DEFAULT_SCHEMA) -> APIRouter:
    """The alert routes, on the pool ``get_pool()`` returns once the app is running."""
    api = APIRouter(tags=["alerts"])
    s = schema
    ready = {"schema": False}

    async def connection():
        # The detector creates its schema; an API started first creates it too
        # (empty), so that reads answer "no alerts" rather than failing.
        pool = get_pool()
        if not ready["schema"]:
            async with pool.connection() as conn:
                try:
                    async with conn.transaction():
                        await conn.execute(offsets_sql(s) + model.schema_sql(s))
                except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateObject):
                    pass
            ready["schema"] = True
        return pool.connection()

    @api.get("/v1/alerts")
    async def list_alerts(
        kind: str | None = None,
        serial: str | None = None,
        producer: str | None = None,
        region: str | None = Query(None, description="GB/T 2260 code or prefix: 31 = Shanghai, 4403 = Shenzhen"),
        state: Literal["open", "acknowledged", "resolved"] | None = None,
        since: datetime | None = Query(None, description="alerts last seen at or after"),
        until: datetime | None = Query(None, description="alerts first seen before"),
        limit: int = Query(100, ge=1, le=MAX_PAGE),
        cursor: int | None = Query(None, description="next_cursor of the previous page"),
    ):
        """Alerts, newest first, filtered; page with ``cursor``."""
        where, args = _filters(kind, serial, producer, region, state, since, until)
        if cursor is not None:
            where.append("id < %s"); args.append(cursor)
        sql = f"SELECT {_COLUMNS} FROM {s}.alerts" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT %s"
        async with await connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            rows = await (await cur.execute(sql, args + [limit])).fetchall()
        return ORJSONResponse({
            "alerts": [alert_json(r) for r in rows],
            "next_cursor": rows[-1]["id"] if len(rows) == limit else None,
        })

    @api.get("/v1/alerts/summary")
    async def summary(
        since: datetime | None = None,
        until: datetime | None = None,
        bucket: Literal["hour", "day", "week", "month"] = "day",
        level: Literal["province", "city"] = "province",
        producer: str | None = None,
    ):
        """Counts by kind, by region and over time: the regulator's first view."""
        where, args = _filters(None, None, producer, None, None, since, until)
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        place = "province" if level == "province" else "left(region, 4)"
        async with await connection() as conn, conn.cursor() as cur:
            by_kind = await (await cur.execute(f"SELECT kind, count(*) FROM {s}.alerts{cond} GROUP BY kind ORDER BY 2 DESC", args)).fetchall()
            by_state = await (await cur.execute(f"SELECT state, count(*) FROM {s}.alerts{cond} GROUP BY state", args)).fetchall()
            by_region = await (await cur.execute(
                f"SELECT {place} AS r, kind, count(*) FROM {s}.alerts{cond} GROUP BY r, kind ORDER BY r NULLS LAST, kind", args)).fetchall()
            series = await (await cur.execute(
                f"SELECT date_trunc('{bucket}', first_seen) AS b, kind, count(*) FROM {s}.alerts{cond} GROUP BY b, kind ORDER BY b, kind", args)).fetchall()
        regions_out: dict[str | None, dict] = {}
        for r, kind, n in by_region:
            entry = regions_out.setdefault(r, {"region": r, "name": regions.name(r), "total": 0, "by_kind": {}})
            entry["total"] += n
            entry["by_kind"][kind] = n
        return ORJSONResponse({
            "total": sum(n for _, n in by_kind),
            "by_kind": dict(by_kind),
            "by_state": dict(by_state),
            "by_region": sorted(regions_out.values(), key=lambda e: -e["total"]),
            "series": [{"bucket": b.isoformat(), "kind": k, "count": n} for b, k, n in series],
            "bucket": bucket,
            "level": level,
        })

    @api.get("/v1/alerts/{alert_id}")
    async def show(alert_id: int):
        """One alert with its evidence: the ledger events (or unknown-code scans) behind it."""
        async with await connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            row = await (await cur.execute(f"SELECT {_COLUMNS} FROM {s}.alerts WHERE id = %s", (alert_id,))).fetchone()
            if row is None:
                return _not_found(alert_id)
            if row["serial"]:
                evidence = await (await cur.execute(
                    f"SELECT event_id, seq, kind, actor, region, occurred_at, log_index FROM {s}.events "
                    "WHERE subject_type = 'label' AND subject = %s AND event_id = ANY(%s) ORDER BY seq",
                    (row["serial"], row["evidence"]))).fetchall()
            else:
                evidence = await (await cur.execute(
                    f"SELECT event_id, serial, channel, region, occurred_at FROM {s}.unknown_scans WHERE event_id = ANY(%s) ORDER BY inbox_id",
                    (row["evidence"],))).fetchall()
        out = alert_json(row)
        out["evidence_events"] = [{**e, "occurred_at": e["occurred_at"].isoformat()} for e in evidence]
        return ORJSONResponse(out)

    return api



def _not_found(alert_id: int) -> JSONResponse:
    body = {"type": "https://traceledger.example/problems/unknown_alert", "title": "not found", "status": 404,
            "detail": f"there is no alert {alert_id}", "code": "unknown_alert", "field": "alert_id"}
    return JSONResponse(body, status_code=404, media_type="application/problem+json")
