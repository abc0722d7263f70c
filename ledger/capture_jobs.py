"""EPCIS capture jobs: one row per capture, listed at ``GET /v1/epcis/capture``, shown at ``.../capture/{id}``.

Two kinds of capture write jobs here:

- a document of traceledger-signed events (``POST /v1/epcis/capture``), all
  or nothing, stored once, finished (:func:`record`);
- a standard document mapped and signed by the capturing actor's client
  (``POST /v1/epcis/capture/signed``), event by event: the job is started
  (:func:`start`, refusing a document this actor captured before), each EPCIS
  event is reserved (:func:`reserve`, refusing one captured before by anyone)
  before its ledger events are appended and released if they are refused,
  and the job is finished with every event's result (:func:`finish`).

Crash recovery: a capture runs within one request, well under
:data:`STALE_AFTER`. A job started but not finished by then died with its API
process: it reads ``running: false, interrupted: true``, and its document and
the events it had reserved are released to the next capture that asks for
them (taken over in one statement, so two cannot both take one). Capturing
the document again then appends what the crash left out; what the crashed job
had already appended is refused by the lifecycle rules (a label is not issued
or shipped twice), never written twice.
"""

from __future__ import annotations

from datetime import datetime, timezone

import orjson
import psycopg

from ledger.epcis import EpcisError

# Tables: ledger/migrations/0005_epcis_captures.sql, 0012_epcis_capture_results.sql.
STALE_AFTER = "10 minutes"  # an unfinished job older than this died with its process
_COLUMNS = ("capture_id, created_at, finished_at, success, events, errors, actor, document_sha256, results, seq, "
            f"finished_at IS NULL AND created_at < now() - interval '{STALE_AFTER}'")
_STALE = f"SELECT capture_id FROM epcis_captures WHERE finished_at IS NULL AND created_at < now() - interval '{STALE_AFTER}'"


def record(conn: psycopg.Connection, capture_id: str, created: datetime, success: bool, events: int, errors: list, actor: str | None = None) -> None:
    """Store a finished job (finished now)."""
    conn.execute(
        "INSERT INTO epcis_captures (capture_id, created_at, finished_at, success, events, errors, actor) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (capture_id, created, datetime.now(timezone.utc), success, events, orjson.dumps(errors).decode(), actor),
    )


def start(conn: psycopg.Connection, capture_id: str, actor: str, document_sha256: str, events: int) -> None:
    """Start a job for ``actor``'s document; refuse (nothing stored) a document this actor captured before."""
    try:
        with conn.transaction():
            # A crashed job's claim on the document is released first (see the module's crash recovery).
            conn.execute(f"UPDATE epcis_captures SET document_sha256 = NULL WHERE actor = %s AND document_sha256 = %s "
                         f"AND capture_id IN ({_STALE})", (actor, document_sha256))
            conn.execute("INSERT INTO epcis_captures (capture_id, created_at, success, events, errors, actor, document_sha256) "
                         "VALUES (%s, now(), false, %s, '[]', %s, %s)", (capture_id, events, actor, document_sha256))
    except psycopg.errors.UniqueViolation:
        row = conn.execute("SELECT capture_id FROM epcis_captures WHERE actor = %s AND document_sha256 = %s",
                           (actor, document_sha256)).fetchone()
        raise EpcisError("ValidationException", f"replayed document: {actor} captured this document (sha256 "
                         f"{document_sha256[:16]}…) before, as capture {row[0] if row else '?'}; nothing written") from None


def reserve(conn: psycopg.Connection, event_key: str, capture_id: str, index: int) -> str | None:
    """Reserve an EPCIS event for this capture: None, or the capture that holds it already."""
    row = conn.execute("INSERT INTO epcis_captured_events (event_key, capture_id, event_index) VALUES (%s, %s, %s) "
                       "ON CONFLICT (event_key) DO NOTHING RETURNING capture_id", (event_key, capture_id, index)).fetchone()
    if row is not None:
        return None
    taken = conn.execute(f"UPDATE epcis_captured_events SET capture_id = %s, event_index = %s WHERE event_key = %s "
                         f"AND capture_id IN ({_STALE}) RETURNING 1", (capture_id, index, event_key)).fetchone()
    if taken is not None:  # held by a job that died: this capture takes the event over
        return None
    held = conn.execute("SELECT capture_id FROM epcis_captured_events WHERE event_key = %s", (event_key,)).fetchone()
    return str(held[0]) if held else "?"


def release(conn: psycopg.Connection, event_key: str, capture_id: str) -> None:
    """Give back a reservation whose ledger events were refused (the event may be captured again)."""
    conn.execute("DELETE FROM epcis_captured_events WHERE event_key = %s AND capture_id = %s", (event_key, capture_id))


def captured(conn: psycopg.Connection, event_keys: list[str], actor: str | None) -> dict[str, list[str]]:
    """EPCIS event key -> the ledger event ids it was captured as, for the keys captured and accepted (by ``actor``
    only, unless None: a regulator's question); a key captured by someone else is absent."""
    rows = conn.execute(
        "SELECT k.event_key, r.value -> 'ledgerEvents' FROM epcis_captured_events k JOIN epcis_captures c ON c.capture_id = k.capture_id "
        "CROSS JOIN LATERAL jsonb_array_elements(coalesce(c.results, '[]'::jsonb)) AS r(value) WHERE k.event_key = ANY(%s) "
        "AND (r.value ->> 'index')::int = k.event_index AND r.value ->> 'status' = 'accepted' AND (%s::text IS NULL OR c.actor = %s)",
        (event_keys, actor, actor)).fetchall()
    return {key: list(ids) for key, ids in rows}


def finish(conn: psycopg.Connection, capture_id: str, success: bool, errors: list, results: list) -> None:
    """Finish a started job with its per-event results."""
    conn.execute("UPDATE epcis_captures SET finished_at = now(), success = %s, errors = %s, results = %s WHERE capture_id = %s",
                 (success, orjson.dumps(errors).decode(), orjson.dumps(results).decode(), capture_id))


def _as_job(row) -> dict:
    capture_id, created, finished, success, events, errors, actor, digest, results, seq, stale = row
    out = {"captureID": str(capture_id), "createdAt": created.isoformat(), "finishedAt": finished.isoformat() if finished else None,
           "running": finished is None and not stale, "success": success,
           "captureErrorBehaviour": "rollback" if digest is None else "proceed", "events": events, "errors": errors}
    if actor is not None:
        out["actor"] = actor
    if digest is not None:
        out["documentSha256"] = digest
    if results is not None:
        out["results"] = results
    if stale:
        out["interrupted"] = True
    return out


def job(conn: psycopg.Connection, capture_id: str) -> dict | None:
    """A job as EPCIS 2.0 describes it (``captureID``, ``createdAt``, ``running``, ``success``, ``errors``...), or None."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM epcis_captures WHERE capture_id = %s", (capture_id,)).fetchone()
    return None if row is None else _as_job(row)


def jobs(conn: psycopg.Connection, limit: int, before: int | None = None, actor: str | None = None) -> tuple[list[dict], int | None]:
    """Jobs newest first (only ``actor``'s if given), at most ``limit``, older than position ``before``;
    and the position to go on from (None: no more)."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM epcis_captures WHERE (%(before)s::bigint IS NULL OR seq < %(before)s) "
                        "AND (%(actor)s::text IS NULL OR actor = %(actor)s) ORDER BY seq DESC LIMIT %(n)s",
                        {"before": before, "n": limit + 1, "actor": actor}).fetchall()
    shown = rows[:limit]
    for_list = [{k: v for k, v in _as_job(r).items() if k != "results"} for r in shown]
    return for_list, (shown[-1][9] if len(rows) > limit else None)
