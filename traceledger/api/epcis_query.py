"""The EPCIS 2.0 query interface (REST binding) under ``/epcis``: filtered, paged, from the query index.

- ``GET /epcis/events``: an ``EPCISQueryDocument`` of the events matching the
  standard query parameters (:mod:`ledger.epcis_query` lists them; an unknown
  one is a ``QueryParameterException``, never ignored), in log order, at most
  ``perPage`` per answer (default 30, at most 1000). When more match, the
  answer has a ``Link: <...>; rel="next"`` header (RFC 8288) whose URL repeats
  the query with an opaque ``nextPageToken``. Each event carries ``recordTime``
  (when the global log took it). A worker holds one page at a time, never the log,
  and a page stops early when its events carry more than 10,000 signed events.
- ``GET /epcis/events/{eventID}``: one event (``urn:uuid:...``), or 404
  ``NoSuchResourceException``.
- ``GET /epcis/eventTypes``, ``/bizSteps``, ``/dispositions``: the values this
  repository uses (public); ``/epcis/bizLocations``, ``/readPoints`` (signed callers) and
  ``/epcs`` (regulators: the list names every label and container) the identifiers its
  events name, paged (``perPage``, ``nextPageToken``, ``Link``), each with ``/{value}/events``; ``/epcis/eventTypes/{t}/events``, ``/bizSteps/{s}/events``,
  ``/dispositions/{d}/events``, ``/epcis/epcs/{epc}/events``: the same query with
  that value fixed (``MATCH_anyEPC`` for an EPC); giving the fixed parameter
  again in the query string is refused.

Every answer is ``application/ld+json`` with ``GS1-EPCIS-Version: 2.0.0`` and
``GS1-CBV-Version: 2.0.0``; a request naming another version in either header
is refused (406, ``epcisException:NotAcceptableException``) rather than answered
in a version the client did not ask for. ``orderBy`` / ``orderDirection`` /
``eventCountLimit`` shape ``/events`` (:mod:`ledger.epcis_query`). The index is brought up to the global log's head
before each query (:func:`projections.epcis_index.catch_up`), so a page shows
everything the log held when it was asked. ``GET /v1/epcis/events`` without
``serial``/``lot``/``container`` is the same query answered as an
``EPCISDocument`` (:mod:`traceledger.api.epcis`).

Access (:mod:`traceledger.api.access`): every event query needs a signed
request (401 without one). A regulator sees every event; anyone else only the
EPCIS events all of whose signed ledger events it may read (signed them, or
owns their subjects), so a page may hold fewer than ``perPage`` events while
its ``Link`` still leads on. The vocabularies in use (``/eventTypes``...) are
public: they name no event.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request

from ledger import epcis
from ledger.epcis_query import EventQuery, Page, decode_value_token, encode_token, encode_value_token, parse_query
from ledger.errors import Refused
from ledger.events import EPCIS_MAPPING, SignedEvent
from projections import epcis_index
from traceledger import auth
from traceledger.api import access
from traceledger.api.dependencies import caller, sync_pool
from traceledger.api.responses import OrjsonResponse
from traceledger.auth import Caller

LD_JSON = "application/ld+json"
EPCIS_HEADERS = {"GS1-EPCIS-Version": "2.0.0", "GS1-CBV-Version": "2.0.0"}
QUERY_NAME = "SimpleEventQuery"
# Signed ledger events (or EPCs of a batch event) per page at most (a pack of 5,000 units is one EPCIS event
# carrying 5,001; a batch of 8,192 labels one naming 8,192): a page stops early rather than hold more; the
# first event of a page is always shown whole.
MAX_SIGNED_PER_PAGE = 10_000
BIZ_STEPS = sorted({step for step, _ in EPCIS_MAPPING.values()})
DISPOSITIONS = sorted({disposition for _, disposition in EPCIS_MAPPING.values() if disposition})
EVENT_TYPES = ["ObjectEvent", "AggregationEvent", "TransformationEvent"]
LD_RESPONSE = {200: {"description": "an EPCIS 2.0 JSON-LD document or event", "content": {LD_JSON: {"schema": {"type": "object"}}}}}
LIST_RESPONSE = {200: {"description": "the values in use", "content": {LD_JSON: {"schema": {"type": "array", "items": {"type": "string"}}}}}}

SUPPORTED_VERSIONS = {"GS1-EPCIS-Version": ("2.0", "2.0.0"), "GS1-CBV-Version": ("2.0", "2.0.0")}


def check_versions(request: Request) -> None:
    """Refuse a request asking for an EPCIS or CBV version this repository does not speak (406)."""
    for header, supported in SUPPORTED_VERSIONS.items():
        asked = request.headers.get(header)
        if asked is not None and asked.strip() not in supported:
            raise epcis.EpcisError("NotAcceptableException", f"{header} {asked[:20]!r} is not supported: this repository speaks 2.0.0")


router = APIRouter(prefix="/epcis", tags=["epcis"], dependencies=[Depends(check_versions)])


class LdJsonResponse(OrjsonResponse):
    media_type = LD_JSON


@dataclass(frozen=True)
class Results:
    """One page of a query: EPCIS events, and the token of the next page (None: this was the last)."""

    events: list[dict]
    next_token: str | None
    last_index: int | None = None  # log index of the last event shown (a subscription's acknowledgement)


def visible(groups: dict[int, list[SignedEvent]], reader: access.Reader | None) -> set[int]:
    """The EPCIS events (by log index) whose every signed event ``reader`` may read (None: no check)."""
    if reader is None or reader.sees_everything:
        return set(groups)
    flat = [(i, s) for i, group in groups.items() for s in group]
    hidden = {i for (i, _), ok in zip(flat, reader.readable([s for _, s in flat])) if not ok}
    return set(groups) - hidden


def mapped_events(conn, rows: list[tuple], host: str, with_record_time: bool,
                  reader: access.Reader | None = None) -> list[dict]:
    """The EPCIS events of index rows that ``reader`` may read, from their signed bytes in the global log."""
    values = epcis_index.signed_values(conn, [i for i, *_ in rows])
    groups = {i: [SignedEvent.from_envelope(v) for v in envelopes] for i, envelopes in values.items()}
    shown = visible(groups, reader)
    rows = [r for r in rows if r[0] in shown]
    manifests = epcis_index.manifests_of(conn, [s for i, *_ in rows for s in groups[i]])
    serials = {c for i, *_ in rows for s in groups[i] for c in epcis.label_codes(s, manifests)}
    gtin_of = epcis_index.label_gtins(conn, list(serials)).get
    declared = epcis_index.declared_events(conn, [s for i, *_ in rows for s in groups[i]])
    out = []
    for event_index, record_time, *_ in rows:
        event = epcis.to_epcis(groups[event_index], gtin_of, host, manifests, declared)
        if with_record_time:
            event["recordTime"] = epcis.epcis_time(record_time)
        out.append(event)
    return out


def within_budget(rows: list[tuple], size: int) -> list[tuple]:
    """The first ``size`` rows, fewer if they carry more than MAX_SIGNED_PER_PAGE signed events (never none)."""
    shown, carried = [], 0
    for row in rows[:size]:
        carried += row[2]
        if shown and carried > MAX_SIGNED_PER_PAGE:
            break
        shown.append(row)
    return shown


def query_page(state, query: EventQuery, page: Page, *, with_record_time: bool = True, reader: access.Reader | None = None) -> Results:
    """One page of ``query`` from the index (brought up to date first), only what ``reader`` may read;
    memory bounded by the page's budget, and never past the query's ``eventCountLimit``."""
    left = None if page.limit is None else page.limit - page.shown
    if left is not None and left <= 0:
        return Results([], None)
    sized = replace(page, size=min(page.size, left)) if left is not None else page
    with sync_pool(state).connection() as conn:
        epcis_index.catch_up(conn)
        rows = epcis_index.page_rows(conn, query, sized)
        shown = within_budget(rows, sized.size)
        events = mapped_events(conn, shown, state.settings.resolver_host, with_record_time, reader)
    counted = page.shown + len(shown)
    more = len(rows) > len(shown) and (page.limit is None or counted < page.limit)
    token = encode_token(shown[-1][0], query.fingerprint, counted, shown[-1][3] if page.order == "event_time" else None) if more else None
    return Results(events, token, shown[-1][0] if shown else None)


def next_link(request: Request, token: str | None) -> dict[str, str]:
    """The RFC 8288 ``Link`` header to the next page: this request's URL with the new ``nextPageToken``."""
    if token is None:
        return {}
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "nextPageToken"] + [("nextPageToken", token)]
    return {"Link": f'<{request.url.path}?{urlencode(params)}>; rel="next"'}


def query_document(events: list[dict]) -> dict:
    """An EPCISQueryDocument of a SimpleEventQuery's results."""
    doc = epcis.document([])
    doc["type"] = "EPCISQueryDocument"
    doc["epcisBody"] = {"queryResults": {"queryName": QUERY_NAME, "resultsBody": {"eventList": events}}}
    return doc


def answer_query(request: Request, signer: Caller | None, fixed: list[tuple[str, str]] = ()) -> LdJsonResponse:
    """Parse the request's query (plus ``fixed`` parameters of the path), answer one page of what ``signer`` may read."""
    reader = access.reader(signer, request.app.state.ledger)
    given = request.query_params.multi_items()
    if any(name == fixed_name for name, _ in given for fixed_name, _ in fixed):
        raise epcis.EpcisError("QueryParameterException", "this resource fixes that parameter in its path: do not repeat it")
    query, page = parse_query(given + list(fixed))
    results = query_page(request.app.state, query, page, reader=reader)
    headers = EPCIS_HEADERS | next_link(request, results.next_token)
    return LdJsonResponse(query_document(results.events), headers=headers)


@router.get("/events", responses=LD_RESPONSE, response_class=LdJsonResponse)
def events(request: Request, signer: Caller | None = Depends(caller)):
    """EPCIS events matching the standard query parameters, one page at a time (``perPage``, ``nextPageToken``)."""
    return answer_query(request, signer)


@router.get("/events/{event_id}", responses=LD_RESPONSE, response_class=LdJsonResponse)
def event(request: Request, event_id: str, signer: Caller | None = Depends(caller)):
    """One EPCIS event by its eventID (``urn:uuid:...``), if the signed caller may read it."""
    reader = access.reader(signer, request.app.state.ledger)
    query, page = parse_query([("EQ_eventID", event_id)])
    results = query_page(request.app.state, query, page, reader=reader)
    if not results.events:
        raise epcis.EpcisError("NoSuchResourceException", f"no EPCIS event {event_id[:100]}")
    return LdJsonResponse(results.events[0], headers=EPCIS_HEADERS)


# Top-level resources: the values in use, and (``/{value}/events``) the query with that value fixed.
VOCABULARIES = (
    ("/eventTypes", EVENT_TYPES, "eventType", "The EPCIS event types this repository holds."),
    ("/bizSteps", BIZ_STEPS, "EQ_bizStep", "The CBV business steps this repository's events use."),
    ("/dispositions", DISPOSITIONS, "EQ_disposition", "The CBV dispositions this repository's events use."),
)


def values_route(values: list[str], summary: str):
    def values_in_use():
        return LdJsonResponse(values, headers=EPCIS_HEADERS)

    values_in_use.__doc__ = summary
    return values_in_use


def fixed_query_route(parameter: str):
    def events_with(request: Request, value: str, signer: Caller | None = Depends(caller)):
        return answer_query(request, signer, [(parameter, value)])

    events_with.__doc__ = f"Events as ``GET /events?{parameter}=<value>``, one page at a time."
    return events_with


for resource, in_use, fixed, text in VOCABULARIES:
    router.add_api_route(resource, values_route(in_use, text), methods=["GET"], responses=LIST_RESPONSE,
                         response_class=LdJsonResponse, name=f"{resource[1:]}_in_use")
    router.add_api_route(f"{resource}/{{value}}/events", fixed_query_route(fixed), methods=["GET"], responses=LD_RESPONSE,
                         response_class=LdJsonResponse, name=f"events_by_{resource[1:]}")
# An EPC anywhere in an event (epcList, childEPCs, parentID, input/output lists); a URI has slashes, hence ``:path``.
router.add_api_route("/epcs/{value:path}/events", fixed_query_route("MATCH_anyEPC"), methods=["GET"], responses=LD_RESPONSE,
                     response_class=LdJsonResponse, name="events_by_epc")


# Identifiers in use: (list, the parameter its /{value}/events fixes, who may list it, summary).
IDENTIFIER_LISTS = (
    ("bizLocations", "EQ_bizLocation", "signed", "The business locations this repository's events name."),
    ("readPoints", "EQ_readPoint", "signed", "The read points this repository's events name."),
    ("epcs", None, "regulator", "The EPCs (labels, containers) this repository's events name: regulators only."),
)


def as_uri(key: str, host: str) -> str:
    """An identifier key (``/party/acme``) as the URI the events carry."""
    return f"https://{host}{key}" if key.startswith("/") else key


def identifiers_route(name: str, who: str, summary: str):
    def identifiers_in_use(request: Request, perPage: int = Query(100, ge=1, le=1000), nextPageToken: str | None = Query(None, max_length=400),
                           signer: Caller | None = Depends(caller)):
        caller_ = auth.require(signer)
        if who == "regulator" and caller_.role != "regulator":
            raise Refused("forbidden", f"/epcis/{name} lists every identifier of the ledger: regulators only", field="authorization")
        after = decode_value_token(nextPageToken, name) if nextPageToken is not None else ""
        with sync_pool(request.app.state).connection() as conn:
            epcis_index.catch_up(conn)
            keys = epcis_index.values_in_use(conn, name, after, perPage + 1)
        host = request.app.state.settings.resolver_host
        token = encode_value_token(keys[perPage - 1], name) if len(keys) > perPage else None
        return LdJsonResponse([as_uri(k, host) for k in keys[:perPage]], headers=EPCIS_HEADERS | next_link(request, token))

    identifiers_in_use.__doc__ = summary
    return identifiers_in_use


for resource, fixed, who, text in IDENTIFIER_LISTS:
    router.add_api_route(f"/{resource}", identifiers_route(resource, who, text), methods=["GET"], responses=LIST_RESPONSE,
                         response_class=LdJsonResponse, name=f"{resource}_in_use")
    if fixed is not None:
        router.add_api_route(f"/{resource}/{{value:path}}/events", fixed_query_route(fixed), methods=["GET"], responses=LD_RESPONSE,
                             response_class=LdJsonResponse, name=f"events_by_{resource}")
