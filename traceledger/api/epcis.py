"""EPCIS 2.0 over HTTP: export history as a JSON-LD document, capture signed documents.

- ``GET /v1/epcis/events``: ``serial=`` (a label, the containers it travelled
  in and its lot's graph), ``lot=<gtin14>/<lot>`` (the lot and the lots it
  was made from), ``container=`` (an SSCC and the containers it was in), with
  ``since`` / ``until`` (ISO times) narrowing by event time: one subject's
  history, whole (refused as ``QueryTooLargeException`` over 50,000 events). Without any of the three it is the whole log, *paged*: the
  standard query of :mod:`traceledger.api.epcis_query` (``since``/``until``
  standing for ``GE_eventTime``/``LT_eventTime``, ``perPage``,
  ``nextPageToken``, a ``Link: rel="next"`` header) answered as an
  EPCISDocument, so it can be captured elsewhere; the CLI follows the pages.
  Unknown parameters are a ``QueryParameterException``. Events come from the
  global log (``log_entries``) in log order, so the document carries exactly
  the bytes on Kafka. Signed requests only (:mod:`traceledger.api.access`): a
  history to a regulator or the subject's producer, whole; a page of the log
  to anyone signed, holding only the events the caller may read.
- ``POST /v1/epcis/capture``: a document of signed events (see
  :mod:`ledger.epcis`), checked against GS1's schema and mapped back onto the
  ledger as ONE all-or-nothing batch (with batch events: in runs, see
  :func:`append_document`). The work is done within the request
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
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ledger import capture_jobs, epcis, gs1
from ledger.epcis_query import parse_query
from ledger.errors import Refused
from ledger.events import SignedEvent
from ledger.lifecycle import LabelState
from ledger.logging_setup import get_logger
from ledger.service import Ledger
from ledger.store import chain_id
from projections import epcis_index, log_queries
from traceledger import auth
from traceledger.api import access
from traceledger.api.dependencies import caller, sync_pool
from traceledger.api.epcis_capture import declaration_refusal
from traceledger.api.epcis_query import EPCIS_HEADERS, check_versions, next_link, query_page
from traceledger.api.problems import epcis_problem
from traceledger.api.responses import OrjsonResponse
from traceledger.auth import Caller

log = get_logger("epcis")

MAX_CAPTURE_EVENTS = 5000  # ledger events per document, as POST /v1/events
MAX_HISTORY_EVENTS = 50_000  # ledger events in one serial/lot/container history (a worker holds it whole)
HISTORY_PARAMETERS = {"serial", "lot", "container", "since", "until"}
ALIASES = {"since": "GE_eventTime", "until": "LT_eventTime"}  # this endpoint's own names for the standard ones

router = APIRouter(dependencies=[Depends(check_versions)])


def gtin_lookup(ledger: Ledger, serials: set[str]):
    """A ``serial -> GTIN`` lookup over these labels (write model), for their EPCs."""
    chains = ledger.app.load_chains(chain_id("label", s) for s in serials)
    known = {c.subject: c.state.gtin for c in chains.values() if isinstance(c.state, LabelState)}
    return known.get


# ------------------------------------------------------------------ export


def subjects_asked(ledger: Ledger, conn, serial: str | None, lot: str | None, container: str | None) -> set[tuple[str, str]] | None:
    """The chains one export covers (None: everything); refuses more than one of serial, lot, container."""
    if sum(x is not None for x in (serial, lot, container)) > 1:
        raise Refused("invalid_option", "give at most one of serial, lot, container", field="serial")
    if serial is not None:
        gs1.validate_serial(serial)
        return label_history(ledger, conn, serial)
    if lot is not None:
        gs1.split_lot_key(lot)
        return lot_ancestry(ledger, lot)
    if container is not None:
        gs1.validate_sscc(container, "container")
        return containers_of(conn, "container", container)
    return None


@router.get("/v1/epcis/events")
def export_events(request: Request, serial: str | None = None, lot: str | None = None, container: str | None = None,
                  since: datetime | None = None, until: datetime | None = None, signer: Caller | None = Depends(caller)):
    """An EPCIS 2.0 document of a label's, lot's or container's history, or one page of the whole log's events (signed)."""
    reader = access.reader(signer, request.app.state.ledger)
    given = request.query_params.multi_items()
    if serial is None and lot is None and container is None:
        return export_page(request, given, reader)
    for subject_type, subject in (("label", serial), ("lot", lot), ("container", container)):
        if subject is not None:
            reader.require_subject(subject_type, subject, f"{subject_type} {subject}'s history")
    unknown = sorted({name for name, _ in given} - HISTORY_PARAMETERS)
    if unknown:
        raise epcis.EpcisError("QueryParameterException", f"{unknown[0][:60]!r} cannot be combined with serial, lot or container")
    state = request.app.state
    with sync_pool(state).connection() as conn:
        subjects = subjects_asked(state.ledger, conn, serial, lot, container)
        signed = log_events(conn, subjects, since, until)
        manifests = epcis_index.manifests_of(conn, signed)
    serials = {c for s in signed for c in epcis.label_codes(s, manifests)}
    doc = epcis.export(signed, gtin_lookup(state.ledger, serials), state.settings.resolver_host, manifests=manifests)
    log.info("epcis_exported", events=len(signed), epcis_events=len(doc["epcisBody"]["eventList"]), serial=serial, lot=lot, container=container)
    return OrjsonResponse(doc, headers=EPCIS_HEADERS)


def export_page(request: Request, given: list[tuple[str, str]], reader: access.Reader) -> OrjsonResponse:
    """One page of the whole log's EPCIS events ``reader`` may read, as an EPCISDocument (``since``/``until`` are GE_/LT_eventTime)."""
    renamed = [(ALIASES.get(name, name), value) for name, value in given]
    query, page = parse_query(renamed)
    results = query_page(request.app.state, query, page, with_record_time=False, reader=reader)
    log.info("epcis_exported_page", epcis_events=len(results.events), more=results.next_token is not None)
    return OrjsonResponse(epcis.document(results.events), headers=EPCIS_HEADERS | next_link(request, results.next_token))


# ------------------------------------------------------------------ capture


@router.post("/v1/epcis/capture", status_code=202)
async def capture(request: Request):
    """Capture an EPCIS 2.0 document of traceledger-signed events: all or nothing."""
    try:
        doc = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return epcis_problem(epcis.EpcisError("ValidationException", "body is not JSON"))
    return await run_in_threadpool(capture_document, request.app.state, doc)  # signature checks and the store are blocking work


def append_document(state, doc) -> tuple[list[SignedEvent], int]:
    """Append the document's signed events: (events, how many were new); raises EpcisError.

    Single events go as ONE atomic batch; a document holding batch events (event.v3) is
    appended in runs, in document order: each batch event whole with its manifest
    (``Ledger.append_batch``), the single events between them as one atomic batch. A refusal
    stops there: what came before it stays written (it was valid on its own), nothing after it
    is written, and the error names the EPCIS event that was refused.
    """
    if isinstance(doc, dict) and len((doc.get("epcisBody") or {}).get("eventList") or ()) > MAX_CAPTURE_EVENTS:
        raise epcis.EpcisError("CaptureLimitExceededException", f"at most {MAX_CAPTURE_EVENTS} events per document")
    events = doc.get("epcisBody", {}).get("eventList", []) if isinstance(doc, dict) else []
    serials = {c for item in events if isinstance(item, dict) for c in epc_serials(item)}
    signed, manifests = epcis.signed_events_of(doc, gtin_lookup(state.ledger, serials), state.settings.resolver_host)
    if len(signed) > MAX_CAPTURE_EVENTS:
        raise epcis.EpcisError("CaptureLimitExceededException", f"at most {MAX_CAPTURE_EVENTS} signed events per document")
    check_declarations(state, doc, signed)
    accepted, start = 0, 0
    for run in runs(signed):
        results = ([state.ledger.append_batch(run[0], manifests[run[0].event.event_id])] if run[0].event.subject_type == "batch"
                   else state.ledger.append(run, atomic=True))
        refused = [r.as_dict() for r in results if r.status == "refused"]
        if refused:
            first = next((r for r in refused if r.get("code") != "batch_aborted"), refused[0])
            index = epcis_index_of(doc, start + (first["index"] or 0))
            raise epcis.EpcisError("ValidationException", f"{first['subject']}: {first['detail']} [{first['code']}]", event_index=index)
        accepted += sum(r.status == "accepted" for r in results)
        start += len(run)
    return signed, accepted


def check_declarations(state, doc, signed: list[SignedEvent]) -> None:
    """Refuse the document whole (nothing written) if an error declaration in it names an event that is not on its
    chain, in the ledger or earlier in the document, or that someone else signed (a regulator excepted)."""
    earlier = {}
    for i, s in enumerate(signed):
        if (refusal := declaration_refusal(state, [s], earlier)) is not None:
            raise epcis.EpcisError("ValidationException", f"{s.event.subject}: {refusal[1]} [{refusal[0]}]", event_index=epcis_index_of(doc, i))
        earlier[s.event.event_id] = s.event


def runs(signed: list[SignedEvent]) -> list[list[SignedEvent]]:
    """The document's events cut into what is appended together: each batch event alone, single events between them."""
    out: list[list[SignedEvent]] = []
    for s in signed:
        if s.event.subject_type == "batch" or not out or out[-1][0].event.subject_type == "batch":
            out.append([s])
        else:
            out[-1].append(s)
    return out


def capture_document(state, doc) -> JSONResponse:
    """Capture ``doc`` and store its job; 202 with the capture id, or the EPCIS problem."""
    capture_id = str(uuid.uuid4())
    created = datetime.now(timezone.utc)
    try:
        signed, accepted = append_document(state, doc)
    except epcis.EpcisError as error:
        status = 413 if error.exception == "CaptureLimitExceededException" else 400
        record_job(state, capture_id, created, False, 0, [error.as_dict()])
        log.info("epcis_capture_refused", capture_id=capture_id, exception=error.exception, detail=error.detail, event_index=error.event_index)
        return epcis_problem(error, status, captureID=capture_id)
    record_job(state, capture_id, created, True, len(signed), [])
    log.info("epcis_captured", capture_id=capture_id, events=len(signed), accepted=accepted, duplicate=len(signed) - accepted)
    return JSONResponse({"captureID": capture_id, "events": len(signed), "accepted": accepted},
                        status_code=202, headers={"Location": f"/v1/epcis/capture/{capture_id}"})


def record_job(state, capture_id: str, created: datetime, success: bool, events: int, errors: list) -> None:
    with sync_pool(state).connection() as conn:
        capture_jobs.record(conn, capture_id, created, success, events, errors)


@router.get("/v1/epcis/capture/{capture_id}")
def capture_job(request: Request, capture_id: str, signer: auth.Caller | None = Depends(caller)):
    """A capture job: ``running``, ``success``, ``errors`` (and each event's ``results`` for a signed standard capture).

    The job of a standard capture names its actor and events: only that actor or a regulator sees it.
    """
    try:
        uuid.UUID(capture_id)
    except ValueError:
        raise Refused("invalid_field", "capture id must be a UUID", field="capture_id") from None
    with sync_pool(request.app.state).connection() as conn:
        job = capture_jobs.job(conn, capture_id)
    if job is None:
        return epcis_problem(epcis.EpcisError("NoSuchResourceException", f"no capture job {capture_id}"), 404)
    if "actor" in job:
        who = auth.require(signer)
        if who.role != "regulator" and who.actor_id != job["actor"]:
            raise Refused("forbidden", "a capture job is shown to its actor and to regulators", field="authorization")
    return job


def epcis_index_of(doc: dict, signed_index: int | None) -> int | None:
    """The EPCIS event that carried the ``signed_index``-th signed event."""
    if signed_index is None:
        return None
    seen = 0
    for i, item in enumerate(doc["epcisBody"]["eventList"]):
        seen += len(item[epcis.SIGNED])
        if signed_index < seen:
            return i
    return None


def epc_serials(item: dict) -> list[str]:
    """Serials named in a captured event's ``tl:event`` (to look up their GTINs once)."""
    event = item.get("tl:event") if isinstance(item.get("tl:event"), dict) else {}
    codes = [event.get("subject")] + list((event.get("payload") or {}).get("children") or [])
    return [c for c in codes if isinstance(c, str) and not gs1.is_sscc(c)]


# ------------------------------------------------------------------ history walks


def containers_of(conn: psycopg.Connection, subject_type: str, subject: str) -> set[tuple[str, str]]:
    """The subject and every container it was ever packed into, transitively (from the global log)."""
    out, frontier = set(), [(subject_type, subject)]
    while frontier:
        current = frontier.pop()
        if current in out:
            continue
        out.add(current)
        frontier.extend(("container", box) for box in packed_into(conn, *current))
    return out


def packed_into(conn: psycopg.Connection, subject_type: str, subject: str) -> set[str]:
    """Containers named by a chain's PackedInto events (read from the global log)."""
    events = [SignedEvent.from_envelope(v).event for v in log_queries.subject_values(conn, subject_type, subject)]
    return {e.payload["container"] for e in events if e.kind == "PackedInto"}


def lot_ancestry(ledger: Ledger, lot_key: str) -> set[tuple[str, str]]:
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


def label_history(ledger: Ledger, conn: psycopg.Connection, serial: str) -> set[tuple[str, str]]:
    """The label, the batch that issued it, the containers it travelled in and its lot's ancestry."""
    subjects = containers_of(conn, "label", serial) | {("batch", b) for b in epcis_index.issuing_batches(conn, [serial])}
    chain = ledger.app.load_chain("label", serial)
    if chain is not None and isinstance(chain.state, LabelState):
        subjects |= lot_ancestry(ledger, f"{chain.state.gtin}/{chain.state.lot}")
    return subjects


def log_events(conn: psycopg.Connection, subjects: set[tuple[str, str]], since: datetime | None, until: datetime | None) -> list[SignedEvent]:
    """Signed events of ``subjects`` from the global log, in log order, with event times in ``[since, until)``.

    A history is answered whole, so one too long to hold is refused (413 QueryTooLargeException) before
    anything is read: the paged query (``/epcis/events?MATCH_anyEPC=``) serves it instead.
    """
    if log_queries.count_of_subjects(conn, subjects) > MAX_HISTORY_EVENTS:
        raise epcis.EpcisError("QueryTooLargeException", f"more than {MAX_HISTORY_EVENTS} events: page through "
                               "/epcis/events with MATCH_anyEPC (or MATCH_epcClass for a lot) instead")
    signed = [SignedEvent.from_envelope(v) for v in log_queries.values_of_subjects(conn, subjects)]
    return [s for s in signed if (since is None or s.event.occurred_at >= since) and (until is None or s.event.occurred_at < until)]
