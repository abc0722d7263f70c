"""EPCIS 2.0 over HTTP: export history as a JSON-LD document, capture signed documents.

- ``GET /v1/epcis/events``: ``serial=`` (a label, the containers it travelled
  in and its lot's graph), ``lot=<gtin14>/<lot>`` (the lot and the lots it
  was made from), ``container=`` (an SSCC and the containers it was in), or
  none of them (everything); ``since`` / ``until`` (ISO times) narrow by event
  time. Events come from the global log (``log_entries``) in log order, so the
  document carries exactly the bytes on Kafka.
- ``POST /v1/epcis/capture``: a document of signed events (see
  :mod:`ledger.epcis`), checked against GS1's schema and mapped back onto the
  ledger as ONE all-or-nothing batch. The work is done within the request
  (documents are capped at the API's batch size), so the answer is 202 with
  a capture id whose job is already finished; ``GET /v1/epcis/capture/{id}``
  polls it. A refused document writes nothing and answers problem+json whose
  ``type`` is the EPCIS exception (``epcisException:ValidationException``...).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import orjson
import psycopg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ledger import epcis, gs1
from ledger.errors import Refused
from ledger.events import SignedEvent
from ledger.lifecycle import LabelState
from ledger.store import chain_id
from ledger.config import Settings
from ledger.logging_setup import get_logger
from traceledger.responses import OrjsonResponse

log = get_logger("epcis")

MAX_CAPTURE_EVENTS = 5000  # ledger events per document, as POST /v1/events
PROBLEM = "application/problem+json"

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS epcis_captures (
    capture_id uuid PRIMARY KEY, created_at timestamptz NOT NULL, finished_at timestamptz,
    success boolean NOT NULL, events int NOT NULL, errors jsonb NOT NULL
);
"""


def epcis_problem(error: epcis.EpcisError, status: int = 400, **extra) -> JSONResponse:
    """problem+json whose ``type`` is the EPCIS 2.0 exception."""
    return JSONResponse({**error.as_dict(), "status": status, **extra}, status_code=status, media_type=PROBLEM)


def router(settings: Settings, state: dict) -> APIRouter:
    api = APIRouter()
    host = settings.resolver_host

    def ledger():
        return state["ledger"]

    def gtin_lookup(serials: set[str]):
        chains = ledger().app.load_chains(chain_id("label", s) for s in serials)
        known = {c.subject: c.state.gtin for c in chains.values() if isinstance(c.state, LabelState)}
        return known.get

    @api.get("/v1/epcis/events")
    def export_events(serial: str | None = None, lot: str | None = None, container: str | None = None,
                      since: datetime | None = None, until: datetime | None = None):
        """An EPCIS 2.0 document of a label's, lot's or container's history, or of everything in a time range."""
        if sum(x is not None for x in (serial, lot, container)) > 1:
            raise Refused("invalid_option", "give at most one of serial, lot, container", field="serial")
        subjects = None
        if serial is not None:
            gs1.validate_serial(serial)
            subjects = _label_history(ledger(), serial)
        elif lot is not None:
            gs1.split_lot_key(lot)
            subjects = _lot_ancestry(ledger(), lot)
        elif container is not None:
            gs1.validate_sscc(container, "container")
            subjects = _containers_of(ledger(), "container", container)
        signed = _log_events(settings, subjects, since, until)
        serials = {c for s in signed for c in _label_codes(s)}
        doc = epcis.export(signed, gtin_lookup(serials), host)
        log.info("epcis_exported", events=len(signed), epcis_events=len(doc["epcisBody"]["eventList"]), serial=serial, lot=lot, container=container)
        return OrjsonResponse(doc)

    @api.post("/v1/epcis/capture", status_code=202)
    async def capture(request: Request):
        """Capture an EPCIS 2.0 document of traceledger-signed events: all or nothing."""
        try:
            doc = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return epcis_problem(epcis.EpcisError("ValidationException", "body is not JSON"))
        return await run_in_threadpool(_capture, doc)  # signature checks and the store are blocking work

    def _capture(doc) -> JSONResponse:
        capture_id = str(uuid.uuid4())
        created = datetime.now(timezone.utc)
        try:
            if isinstance(doc, dict) and len((doc.get("epcisBody") or {}).get("eventList") or ()) > MAX_CAPTURE_EVENTS:
                raise epcis.EpcisError("CaptureLimitExceededException", f"at most {MAX_CAPTURE_EVENTS} events per document")
            events = doc.get("epcisBody", {}).get("eventList", []) if isinstance(doc, dict) else []
            serials = {c for item in events if isinstance(item, dict) for c in _epc_serials(item)}
            signed = epcis.signed_events_of(doc, gtin_lookup(serials), host)
            if len(signed) > MAX_CAPTURE_EVENTS:
                raise epcis.EpcisError("CaptureLimitExceededException", f"at most {MAX_CAPTURE_EVENTS} signed events per document")
            results = ledger().append(signed, atomic=True)
            refused = [r.as_dict() for r in results if r.status == "refused"]
            if refused:
                first = next((r for r in refused if r.get("code") != "batch_aborted"), refused[0])
                index = _epcis_index(doc, first["index"])
                raise epcis.EpcisError("ValidationException", f"{first['subject']}: {first['detail']} [{first['code']}]", event_index=index)
        except epcis.EpcisError as error:
            status = 413 if error.exception == "CaptureLimitExceededException" else 400
            _record(settings, capture_id, created, False, 0, [error.as_dict()])
            log.info("epcis_capture_refused", capture_id=capture_id, exception=error.exception, detail=error.detail, event_index=error.event_index)
            return epcis_problem(error, status, captureID=capture_id)
        accepted = sum(r.status == "accepted" for r in results)
        _record(settings, capture_id, created, True, len(signed), [])
        log.info("epcis_captured", capture_id=capture_id, events=len(signed), accepted=accepted, duplicate=len(signed) - accepted)
        return JSONResponse({"captureID": capture_id, "events": len(signed), "accepted": accepted},
                            status_code=202, headers={"Location": f"/v1/epcis/capture/{capture_id}"})

    @api.get("/v1/epcis/capture/{capture_id}")
    def capture_job(capture_id: str):
        """A capture job: ``running`` (always false: capture finishes within its request), ``success``, ``errors``."""
        try:
            uuid.UUID(capture_id)
        except ValueError:
            raise Refused("invalid_field", "capture id must be a UUID", field="capture_id") from None
        with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
            conn.execute(_SCHEMA_SQL)
            row = conn.execute("SELECT created_at, finished_at, success, events, errors FROM epcis_captures WHERE capture_id = %s", (capture_id,)).fetchone()
        if row is None:
            return epcis_problem(epcis.EpcisError("NoSuchResourceException", f"no capture job {capture_id}"), 404)
        return {"captureID": capture_id, "createdAt": row[0].isoformat(), "finishedAt": row[1].isoformat() if row[1] else None,
                "running": False, "success": row[2], "captureErrorBehaviour": "rollback", "events": row[3], "errors": row[4]}

    return api


def _record(settings: Settings, capture_id: str, created: datetime, success: bool, events: int, errors: list) -> None:
    with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
        conn.execute(_SCHEMA_SQL)
        conn.execute(
            "INSERT INTO epcis_captures (capture_id, created_at, finished_at, success, events, errors) VALUES (%s, %s, %s, %s, %s, %s)",
            (capture_id, created, datetime.now(timezone.utc), success, events, orjson.dumps(errors).decode()),
        )


def _epcis_index(doc: dict, signed_index: int | None) -> int | None:
    """The EPCIS event that carried the ``signed_index``-th signed event."""
    if signed_index is None:
        return None
    seen = 0
    for i, item in enumerate(doc["epcisBody"]["eventList"]):
        seen += len(item[epcis.SIGNED])
        if signed_index < seen:
            return i
    return None


def _label_codes(signed: SignedEvent) -> list[str]:
    e = signed.event
    codes = [e.subject] if e.subject_type == "label" else []
    if e.kind in ("Packed", "Unpacked"):
        codes += [c for c in e.payload["children"] if not gs1.is_sscc(c)]
    return codes


def _epc_serials(item: dict) -> list[str]:
    """Serials named in a captured event's ``tl:event`` (to look up their GTINs once)."""
    event = item.get("tl:event") if isinstance(item.get("tl:event"), dict) else {}
    codes = [event.get("subject")] + list((event.get("payload") or {}).get("children") or [])
    return [c for c in codes if isinstance(c, str) and not gs1.is_sscc(c)]


def _containers_of(ledger, subject_type: str, subject: str) -> set[tuple[str, str]]:
    """The subject and every container it was ever packed into, transitively (from the write model)."""
    out, frontier = set(), [(subject_type, subject)]
    while frontier:
        current = frontier.pop()
        if current in out:
            continue
        out.add(current)
        frontier.extend(("container", box) for box in _packed_into(ledger, *current))
    return out


def _packed_into(ledger, subject_type: str, subject: str) -> set[str]:
    """Containers named by a chain's PackedInto events (read from the global log)."""
    with psycopg.connect(ledger.settings.pg_conninfo, autocommit=True) as conn:
        rows = conn.execute("SELECT value FROM log_entries WHERE subject_type = %s AND subject = %s ORDER BY log_index", (subject_type, subject)).fetchall()
    events = [SignedEvent.from_envelope(bytes(r[0])).event for r in rows]
    return {e.payload["container"] for e in events if e.kind == "PackedInto"}


def _lot_ancestry(ledger, lot_key: str) -> set[tuple[str, str]]:
    """A lot and every lot it was made from, transitively (write model)."""
    out, frontier = set(), [lot_key]
    while frontier:
        key = frontier.pop()
        if ("lot", key) in out:
            continue
        out.add(("lot", key))
        chain = ledger.app.load_chain("lot", key)
        if chain is not None and chain.state is not None:
            frontier.extend(chain.state.inputs)
    return out


def _label_history(ledger, serial: str) -> set[tuple[str, str]]:
    subjects = _containers_of(ledger, "label", serial)
    chain = ledger.app.load_chain("label", serial)
    if chain is not None and isinstance(chain.state, LabelState):
        subjects |= _lot_ancestry(ledger, f"{chain.state.gtin}/{chain.state.lot}")
    return subjects


def _log_events(settings: Settings, subjects: set[tuple[str, str]] | None, since: datetime | None, until: datetime | None) -> list[SignedEvent]:
    """Signed events of ``subjects`` (None: all exported subject types) from the global log, in log order."""
    with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
        if subjects is None:
            rows = conn.execute(
                "SELECT value FROM log_entries WHERE subject_type = ANY(%s) ORDER BY log_index", (list(epcis.EXPORTED_SUBJECTS),)
            ).fetchall()
        else:
            rows = conn.execute(
                "SELECT value FROM log_entries l JOIN unnest(%s::text[], %s::text[]) AS w(t, s) ON l.subject_type = w.t AND l.subject = w.s "
                "ORDER BY log_index",
                ([t for t, _ in subjects], [s for _, s in subjects]),
            ).fetchall()
    signed = [SignedEvent.from_envelope(bytes(r[0])) for r in rows]
    return [s for s in signed if (since is None or s.event.occurred_at >= since) and (until is None or s.event.occurred_at < until)]
