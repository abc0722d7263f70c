"""EPCIS capture jobs: one row per ``POST /v1/epcis/capture``, polled at ``GET /v1/epcis/capture/{id}``.

A capture is done within its request, so a job is stored once, finished:
whether the document was accepted, how many events it carried, and the
EPCIS errors of a refused one.
"""

from __future__ import annotations

from datetime import datetime, timezone

import orjson
import psycopg

# The table is ledger/migrations/0005_epcis_captures.sql.


def record(conn: psycopg.Connection, capture_id: str, created: datetime, success: bool, events: int, errors: list) -> None:
    """Store a finished job (finished now)."""
    conn.execute(
        "INSERT INTO epcis_captures (capture_id, created_at, finished_at, success, events, errors) VALUES (%s, %s, %s, %s, %s, %s)",
        (capture_id, created, datetime.now(timezone.utc), success, events, orjson.dumps(errors).decode()),
    )


def job(conn: psycopg.Connection, capture_id: str) -> dict | None:
    """A job as EPCIS 2.0 describes it (``captureID``, ``createdAt``, ``success``, ``errors``...), or None."""
    row = conn.execute("SELECT created_at, finished_at, success, events, errors FROM epcis_captures WHERE capture_id = %s",
                       (capture_id,)).fetchone()
    if row is None:
        return None
    return {"captureID": capture_id, "createdAt": row[0].isoformat(), "finishedAt": row[1].isoformat() if row[1] else None,
            "running": False, "success": row[2], "captureErrorBehaviour": "rollback", "events": row[3], "errors": row[4]}
