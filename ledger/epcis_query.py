"""The EPCIS 2.0 query language over the ledger's EPCIS events: parameters, identifiers, page tokens. Pure.

A query (``GET /events?EQ_bizStep=shipping&MATCH_epc=...``) is parsed by
:func:`parse_query` into an :class:`EventQuery`, which
:mod:`projections.epcis_index` turns into SQL over its index. Unknown or
malformed parameters are refused with the EPCIS ``QueryParameterException``
(an :class:`ledger.epcis.EpcisError`), never ignored.

Supported: ``eventType`` (also ``EQ_eventType``), ``EQ_action``,
``EQ_bizStep``, ``EQ_disposition``, ``EQ_readPoint``, ``EQ_bizLocation``,
``EQ_eventID``, ``GE_/LT_eventTime``, ``GE_/LT_recordTime``, ``MATCH_epc``,
``MATCH_parentID``, ``MATCH_inputEPC``, ``MATCH_outputEPC``,
``MATCH_anyEPC``, ``MATCH_epcClass``, ``MATCH_inputEPCClass``,
``MATCH_outputEPCClass``, ``MATCH_anyEPCClass``, ``EQ_source_<type>`` and
``EQ_destination_<type>`` (e.g. ``EQ_destination_owning_party``; the type as
the bare CBV word or its URI / URN), ``perPage`` and ``nextPageToken``;
``orderBy`` (``eventTime`` or ``recordTime``; without it: the log's order, which
is recordTime's) with ``orderDirection`` (``ASC`` default, ``DESC``), and
``eventCountLimit`` (at most that many events in all, across pages). A parameter may repeat, or list values separated by ``|``
or ``,``; values of one parameter are alternatives (OR), parameters combine
with AND, as the standard says.

Identifiers are compared as *keys*: a URI without scheme and host
(``/01/<gtin>/21/<serial>``, ``/00/<sscc>``, ``/01/<gtin>/10/<lot>``,
``/party/<actor>``), so a GS1 Digital Link on any resolver host matches, and
EPC URNs (``urn:epc:id:sgtin:``, ``urn:epc:id:sscc:``, ``urn:epc:class:lgtin:``)
are translated to the same keys. Patterns: ``urn:epc:idpat:sgtin:<prefix>.<item>.*``
and a Digital Link ending in ``*`` match every key that starts the same way.
bizStep and disposition accept the bare CBV word or its URI / URN forms.

The page token is opaque to clients: the log index (and, ordered by
eventTime, the eventTime) of the last EPCIS event returned, how many events
the query has shown so far (for ``eventCountLimit``), with a digest of the
query it belongs to (ordering included). It only says where to
continue; every page is filtered by the query's own parameters again, so a
token can never reveal an event the query would not return.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlsplit

from ledger import gs1
from ledger.epcis import EpcisError

DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 1000
EVENT_TYPES = ("ObjectEvent", "AggregationEvent", "TransformationEvent", "TransactionEvent", "AssociationEvent")
# MATCH_ parameter -> the roles of identifiers it looks at (projections.epcis_index keeps them per event).
EPC_MATCHES = {
    "MATCH_epc": ("epc",),
    "MATCH_parentID": ("parent",),
    "MATCH_inputEPC": ("input",),
    "MATCH_outputEPC": ("output",),
    "MATCH_anyEPC": ("epc", "parent", "input", "output"),
    "MATCH_epcClass": ("class",),
    "MATCH_inputEPCClass": ("input_class",),
    "MATCH_outputEPCClass": ("output_class",),
    "MATCH_anyEPCClass": ("class", "input_class", "output_class"),
}
# EQ_ parameter -> the EventQuery field it fills.
EQUALS = {"eventType": "event_types", "EQ_eventType": "event_types", "EQ_action": "actions", "EQ_bizStep": "biz_steps",
          "EQ_disposition": "dispositions", "EQ_readPoint": "read_points", "EQ_bizLocation": "biz_locations",
          "EQ_eventID": "event_ids"}
TIMES = {"GE_eventTime": "ge_event_time", "LT_eventTime": "lt_event_time",
         "GE_recordTime": "ge_record_time", "LT_recordTime": "lt_record_time"}
PAGING = ("perPage", "nextPageToken")
# How the results are shaped, not which events match: part of a page token's query, never of a named query.
SHAPING = ("orderBy", "orderDirection", "eventCountLimit")
ORDERS = {"eventTime": "event_time", "recordTime": "log", "log": "log"}
MAX_EVENT_COUNT_LIMIT = 1_000_000
PARTIES = ("EQ_source_", "EQ_destination_")  # + a source/destination type: identifiers of role "source:<type>"...
PARTY_TYPE_PREFIXES = ("https://ref.gs1.org/cbv/SDT-", "urn:epcglobal:cbv:sdt:")
VOCABULARY_PREFIXES = {
    "EQ_bizStep": ("https://ref.gs1.org/cbv/BizStep-", "urn:epcglobal:cbv:bizstep:"),
    "EQ_disposition": ("https://ref.gs1.org/cbv/Disp-", "urn:epcglobal:cbv:disp:"),
}


@dataclass(frozen=True)
class EpcMatch:
    """One MATCH_ parameter: identifiers in ``roles`` equal to one of ``exact`` or starting with one of ``prefixes``."""

    roles: tuple[str, ...]
    exact: tuple[str, ...]
    prefixes: tuple[str, ...]


@dataclass(frozen=True)
class EventQuery:
    """A parsed query: every non-empty field narrows the result."""

    event_types: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    biz_steps: tuple[str, ...] = ()
    dispositions: tuple[str, ...] = ()
    read_points: tuple[str, ...] = ()
    biz_locations: tuple[str, ...] = ()
    event_ids: tuple[str, ...] = ()
    ge_event_time: datetime | None = None
    lt_event_time: datetime | None = None
    ge_record_time: datetime | None = None
    lt_record_time: datetime | None = None
    epc_matches: tuple[EpcMatch, ...] = ()
    fingerprint: str = field(default="", compare=False)


@dataclass(frozen=True)
class Page:
    """Which page: after the EPCIS event at log index ``after`` (-1: from the start), at most ``size`` events.

    ``order`` is ``log`` (log index, which is recordTime order) or ``event_time`` (eventTime, then log index;
    ``after_time`` is the last shown event's time); ``limit`` caps the events of all pages together, of which
    ``shown`` were on earlier pages.
    """

    after: int
    size: int
    order: str = "log"
    descending: bool = False
    after_time: datetime | None = None
    limit: int | None = None
    shown: int = 0

    @property
    def first(self) -> bool:
        return self.after == -1


def query_error(detail: str) -> EpcisError:
    return EpcisError("QueryParameterException", detail)


# ---------------------------------------------------------------- identifiers


def uri_key(uri: str) -> str:
    """An identifier's key: a http(s) URI without scheme and host; anything else as it is."""
    if uri.startswith(("https://", "http://")):
        return urlsplit(uri).path or "/"
    return uri


def gs1_number(prefix: str, reference: str, urn: str) -> str:
    """A GTIN-14 or SSCC from an EPC URN's company prefix and reference (indicator / extension digit first)."""
    if not (prefix.isdigit() and reference.isdigit()):
        raise query_error(f"not a GS1 EPC URN: {urn[:80]}")
    digits = reference[0] + prefix + reference[1:]
    return digits + str(gs1.gtin_check_digit(digits))


def urn_key(urn: str) -> tuple[str, bool]:
    """(key, is_prefix) of an EPC URN: sgtin / sscc / lgtin ids and ``idpat:sgtin:<prefix>.<item>.*``."""
    scheme, _, value = urn.partition(":epc:")[2].partition(":")[2].partition(":")
    parts = value.split(".")
    if urn.startswith("urn:epc:id:sscc:") and len(parts) == 2:
        return "/00/" + gs1_number(parts[0], parts[1], urn), False
    if len(parts) == 3 and scheme in ("sgtin", "lgtin"):
        gtin = gs1_number(parts[0], parts[1], urn)
        if urn.startswith("urn:epc:idpat:sgtin:") and parts[2] == "*":
            return f"/01/{gtin}/21/", True
        if urn.startswith("urn:epc:id:sgtin:"):
            return f"/01/{gtin}/21/{parts[2]}", False
        if urn.startswith("urn:epc:class:lgtin:"):
            return f"/01/{gtin}/10/{parts[2]}", False
    raise query_error(f"unsupported EPC URN or pattern: {urn}")


def epc_key(value: str) -> tuple[str, bool]:
    """(key, is_prefix) of an identifier or pattern given in a MATCH_ parameter."""
    if value.startswith("urn:epc:"):
        return urn_key(value)
    if value.endswith("*"):
        return uri_key(value[:-1]), True
    return uri_key(value), False


# ---------------------------------------------------------------- parameters


def split_values(values: list[str]) -> tuple[str, ...]:
    """Every value of a repeated / ``|`` or ``,`` separated parameter, blanks dropped."""
    out = [v.strip() for raw in values for part in raw.split("|") for v in part.split(",")]
    return tuple(v for v in out if v)


def parse_time(name: str, value: str) -> datetime:
    """An ISO 8601 time (``Z`` or an offset; none means UTC)."""
    try:
        t = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        raise query_error(f"{name}: not an ISO 8601 time: {value[:60]!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def vocabulary_word(name: str, value: str) -> str:
    """A bizStep / disposition in the bare 2.0 form, from the bare word, its URI or its URN."""
    for prefix in VOCABULARY_PREFIXES.get(name, ()):
        if value.startswith(prefix):
            return value[len(prefix):]
    return value


def equal_values(name: str, values: tuple[str, ...]) -> tuple[str, ...]:
    if name in ("EQ_readPoint", "EQ_bizLocation"):
        return tuple(uri_key(v) for v in values)
    if name in ("eventType", "EQ_eventType"):
        unknown = [v for v in values if v not in EVENT_TYPES]
        if unknown:
            raise query_error(f"{name}: unknown event type {unknown[0][:60]!r}")
    return tuple(vocabulary_word(name, v) for v in values)


def party_match(name: str, values: tuple[str, ...]) -> EpcMatch:
    """``EQ_source_<type>`` / ``EQ_destination_<type>``: a source / destination of that type is one of ``values``."""
    side, _, kind = name[3:].partition("_")
    for prefix in PARTY_TYPE_PREFIXES:
        kind = kind.removeprefix(prefix)
    if not kind:
        raise query_error(f"{name}: name a source / destination type after {side}_")
    return EpcMatch((f"{side}:{kind}",), tuple(uri_key(v) for v in values), ())


def epc_match(name: str, values: tuple[str, ...]) -> EpcMatch:
    keys = [epc_key(v) for v in values]
    return EpcMatch(EPC_MATCHES[name], tuple(k for k, p in keys if not p), tuple(k for k, p in keys if p))


def grouped(params: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Parameters by name (repeats kept), refusing control characters."""
    out: dict[str, list[str]] = {}
    for name, value in params:
        if any(ord(c) < 32 or ord(c) == 127 for c in name + value):
            raise query_error(f"{name[:60]!r}: control characters are not allowed")
        out.setdefault(name, []).append(value)
    return out


def parse_query(params: list[tuple[str, str]]) -> tuple[EventQuery, Page]:
    """The query and the page asked for by request parameters; raises QueryParameterException."""
    by_name = grouped(params)
    fields: dict = {}
    matches: list[EpcMatch] = []
    for name, raw in by_name.items():
        values = split_values(raw)
        if name in PAGING or name in SHAPING:
            continue
        if not values:
            raise query_error(f"{name}: no value given")
        if name in EQUALS:
            fields[EQUALS[name]] = fields.get(EQUALS[name], ()) + equal_values(name, values)
        elif name in TIMES:
            if len(values) != 1:
                raise query_error(f"{name}: give one time")
            fields[TIMES[name]] = parse_time(name, values[0])
        elif name in EPC_MATCHES:
            matches.append(epc_match(name, values))
        elif name.startswith(PARTIES) and len(name) > len("EQ_source_"):
            matches.append(party_match(name, values))
        else:
            raise query_error(f"unknown or unsupported query parameter {name[:60]!r}")
    digest = fingerprint(by_name)
    query = EventQuery(**fields, epc_matches=tuple(matches), fingerprint=digest)
    return query, page_of(by_name, digest)


def fingerprint(by_name: dict[str, list[str]]) -> str:
    """A digest of the query's own parameters (not the paging ones): what a page token belongs to."""
    canonical = repr(sorted((k, sorted(v)) for k, v in by_name.items() if k not in PAGING))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def one_value(by_name: dict[str, list[str]], name: str, default: str | None) -> str | None:
    values = by_name.get(name, [] if default is None else [default])
    if len(values) > 1:
        raise query_error(f"{name}: give one value")
    return values[0].strip() if values else None


def whole_number(name: str, value: str | None, low: int, high: int) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or not low <= int(value) <= high:
        raise query_error(f"{name}: a whole number from {low} to {high}")
    return int(value)


def page_of(by_name: dict[str, list[str]], digest: str) -> Page:
    size = whole_number("perPage", one_value(by_name, "perPage", str(DEFAULT_PER_PAGE)), 1, MAX_PER_PAGE)
    order_by = one_value(by_name, "orderBy", "log")
    if order_by not in ORDERS:
        raise query_error("orderBy: eventTime or recordTime")
    direction = one_value(by_name, "orderDirection", "ASC")
    if direction not in ("ASC", "DESC"):
        raise query_error("orderDirection: ASC or DESC")
    limit = whole_number("eventCountLimit", one_value(by_name, "eventCountLimit", None), 1, MAX_EVENT_COUNT_LIMIT)
    token = one_value(by_name, "nextPageToken", None)
    after, shown, after_time = decode_page_token(token, digest) if token is not None else (-1, 0, None)
    order = ORDERS[order_by]
    if order == "event_time" and after != -1 and after_time is None:
        raise query_error("nextPageToken: not a token of this query")
    return Page(after=after, size=size, order=order, descending=direction == "DESC", after_time=after_time, limit=limit, shown=shown)


# ---------------------------------------------------------------- page tokens


def encode_token(after: int, digest: str, shown: int = 0, after_time: datetime | None = None) -> str:
    """The opaque token of the page after the EPCIS event at log index ``after`` (eventTime ``after_time`` when
    ordered by it), ``shown`` events into the query ``digest``."""
    text = f"{after}.{digest}.{shown}.{after_time.isoformat() if after_time else ''}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_page_token(token: str, digest: str) -> tuple[int, int, datetime | None]:
    """``(after, shown, after_time)`` of a token; refused if malformed or made for another query."""
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
        after, belongs_to, *rest = text.split(".", 3)
        position, shown = int(after), int(rest[0]) if rest else 0
        after_time = datetime.fromisoformat(rest[1]) if len(rest) > 1 and rest[1] else None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise query_error("nextPageToken: not a token this repository issued") from None
    if belongs_to != digest or position < -1 or shown < 0:
        raise query_error("nextPageToken: the token belongs to another query (repeat the query's parameters unchanged)")
    return position, shown, after_time


def decode_token(token: str, digest: str) -> int:
    """The log index a token continues after; refused if malformed or made for another query."""
    return decode_page_token(token, digest)[0]


# ---------------------------------------------------------------- lists of values in use (/epcs, /bizLocations...)


def encode_value_token(value: str, digest: str) -> str:
    """The opaque token of a list of values in use, continuing after ``value``."""
    return base64.urlsafe_b64encode(f"{digest}.{value}".encode()).decode().rstrip("=")


def decode_value_token(token: str, digest: str) -> str:
    """The value a list continues after; refused if malformed or made for another list."""
    try:
        belongs_to, _, value = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("utf-8").partition(".")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise query_error("nextPageToken: not a token this repository issued") from None
    if belongs_to != digest:
        raise query_error("nextPageToken: the token belongs to another list")
    return value
