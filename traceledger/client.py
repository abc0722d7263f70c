"""Synchronous HTTP client of the traceledger API (what the CLI and the demo talk to).

Errors come in two kinds, so callers can map them to exit codes:

* :class:`ledger.errors.Refused` -- the API answered 4xx (problem+json): the
  input was refused and nothing was written.
* :class:`ApiUnavailable` -- no usable answer (connection refused, timeout,
  5xx, not JSON): an internal failure, the input may be fine.
"""

from __future__ import annotations

import base64
import re
from typing import Any, Iterable, Sequence
from urllib.parse import quote, unquote, urlencode

import httpx
import orjson

from ledger.config import Settings
from ledger.errors import Refused
from ledger.events import SignedEvent
from ledger.keys import KeyPair
from traceledger.auth import authorization_header

EVENTS_PER_REQUEST = 2000  # the API takes up to 5000; smaller requests keep latency and memory flat
HEADS_PER_REQUEST = 2000
DEFAULT_TIMEOUT = httpx.Timeout(120.0, connect=5.0)

# Failures mid-request (the server may or may not have acted): worth one resend
# of an idempotent request. A refused connection is reported at once instead.
_RETRYABLE = (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError)


EPCIS_PAGE = 1000  # EPCIS events per page when the CLI exports the whole log (the server's maximum)


class ApiUnavailable(Exception):
    """The API could not be reached or failed internally (5xx)."""

    def __init__(self, url: str, detail: str):
        super().__init__(f"API unavailable at {url}: {detail}")
        self.url = url
        self.detail = detail


def encode_signed(event: SignedEvent) -> dict[str, str]:
    """The wire form of one signed event: base64 body and signature."""
    return {
        "body": base64.b64encode(event.body).decode("ascii"),
        "signature": base64.b64encode(event.signature).decode("ascii"),
    }


def _chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "refused"


def problem_to_refused(status: int, body: Any) -> Refused:
    """Turn a 4xx answer (RFC 9457 problem, or FastAPI's validation shape) into Refused."""
    if not isinstance(body, dict):
        return Refused(f"http_{status}", f"HTTP {status}")
    detail = body.get("detail")
    field = body.get("field")
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        # FastAPI's default 422 body: {"detail": [{"loc": [...], "msg": ...}]}
        first = detail[0]
        loc = [str(p) for p in first.get("loc", []) if p not in ("body", "query", "path")]
        field = field or (loc[-1] if loc else None)
        detail = first.get("msg", "invalid request")
    code = body.get("code")
    if not code:
        type_uri = body.get("type") or ""
        tail = type_uri.rstrip("/").rsplit("/", 1)[-1] if type_uri not in ("", "about:blank") else ""
        code = _slug(tail or body.get("title") or f"http_{status}")
    text = str(detail or body.get("title") or f"HTTP {status}")
    return Refused(code, text, field=field)


class Client:
    """One ``httpx.Client`` against the API at ``base_url`` (default: Settings.api_url)."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        settings: Settings | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    ):
        settings = settings or Settings.from_env()
        self.base_url = (base_url or settings.api_url).rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, headers={"accept": "application/json"})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ plumbing

    def _request(self, method: str, path: str, body: Any = None, *, retry: bool = True, missing_ok: bool = False,
                 signer: KeyPair | None = None, headers: dict[str, str] | None = None) -> Any:
        """Send one request and return its decoded JSON.

        ``retry`` resends once after a transport failure mid-request; only for
        idempotent requests (a resent event batch comes back as ``duplicate``).
        ``missing_ok`` turns a 404 into ``None``. ``signer`` signs the request
        (``Authorization``, see :mod:`traceledger.auth`) with that actor's key; ``headers`` are sent as well.
        """
        url, response = self._send(method, path, body, retry=retry, signer=signer, headers=headers)
        return self._decode(url, response, missing_ok)

    def _send(self, method: str, path: str, body: Any = None, *, retry: bool = True,
              signer: KeyPair | None = None, headers: dict[str, str] | None = None) -> tuple[str, httpx.Response]:
        """Send one request (see :meth:`_request`); the URL and the undecoded response."""
        url = f"{self.base_url}{path}"
        kwargs: dict[str, Any] = {"headers": dict(headers or {})}
        if body is not None:
            kwargs = {"content": orjson.dumps(body), "headers": {**kwargs["headers"], "content-type": "application/json"}}
        if signer is not None:
            # The server checks the signature over the path as it decodes it and
            # the query string as sent (still percent-encoded).
            route, _, query = path.partition("?")
            target = unquote(route) + (f"?{query}" if query else "")
            kwargs["headers"]["authorization"] = authorization_header(signer, method, target)
        for attempt in (0, 1):
            try:
                return url, self._http.request(method, path, **kwargs)
            except _RETRYABLE as exc:
                if not retry or attempt:
                    raise ApiUnavailable(url, _describe(exc)) from None
            except httpx.HTTPError as exc:
                raise ApiUnavailable(url, _describe(exc)) from None
        raise AssertionError("unreachable: the second attempt returns or raises")

    @staticmethod
    def _decode(url: str, response: httpx.Response, missing_ok: bool) -> Any:
        try:
            body = response.json()
        except ValueError:
            body = None
        status = response.status_code
        if status == 404 and missing_ok:
            return None
        if 400 <= status < 500:
            raise problem_to_refused(status, body)
        if status >= 500 or body is None:
            detail = body.get("detail") if isinstance(body, dict) else response.text[:200]
            raise ApiUnavailable(url, f"HTTP {status}: {detail or 'no JSON answer'}")
        return body

    # ------------------------------------------------------------ API

    def post_events(self, signed_events: Sequence[SignedEvent]) -> list[dict]:
        """Submit signed events; one result dict per event, ``index`` into ``signed_events``."""
        results: list[dict] = []
        offset = 0
        for chunk in _chunks(signed_events, EVENTS_PER_REQUEST):
            answer = self._request("POST", "/v1/events", {"events": [encode_signed(e) for e in chunk]})
            for result in answer["results"]:
                results.append({**result, "index": result["index"] + offset})
            offset += len(chunk)
        return results

    def post_batch_event(self, signed: SignedEvent, manifest: bytes, opening: dict | None = None) -> dict:
        """Submit one signed batch event (event.v3) with its manifest (and a movement's opening,
        ``Opening.as_json()``); its result dict."""
        body = {**encode_signed(signed), "manifest": base64.b64encode(manifest).decode("ascii")}
        if opening is not None:
            body["opening"] = opening
        return self._request("POST", "/v1/batches", body)["result"]

    def heads(self, subject_type: str, subjects: Sequence[str]) -> dict[str, dict | None]:
        """Current chain head (``seq``, ``hash`` hex, ``broken``) of each subject, None if absent."""
        out: dict[str, dict | None] = {}
        for chunk in _chunks(list(dict.fromkeys(subjects)), HEADS_PER_REQUEST):
            wanted = [{"type": subject_type, "subject": s} for s in chunk]
            out.update(self._request("POST", "/v1/heads", {"subjects": wanted})["heads"])
        return out

    def actor(self, actor_id: str) -> dict | None:
        """The registered actor (role, key id, public key, revoked...), None if unknown."""
        return self._request("GET", f"/v1/actors/{_segment(actor_id)}", missing_ok=True)

    def log_entries(self, start: int, end: int, key: KeyPair | None = None) -> list[dict]:
        """Log entries ``start..end-1`` (at most 1000): index and leaf hash; with ``key``, the bodies it may read."""
        return self._request("GET", f"/v1/log/entries?start={start}&end={end}", signer=key)["entries"]

    def label_proof(self, serial: str, key: KeyPair | None = None) -> dict:
        """A label's proof bundle: the full one for its producer or a regulator (``key``), else the public one."""
        return self._request("GET", f"/v1/labels/{_segment(serial)}/proof", signer=key)

    def label(self, serial: str) -> dict:
        """The verification view of a label (an unknown serial is an ``unknown`` verdict)."""
        return self._request("GET", f"/v1/labels/{_segment(serial)}")

    def label_trail(self, serial: str, key: KeyPair) -> dict:
        """A label's full trail (actors, event ids, details, consumer reports), signed by ``key``:
        the label's producer or a regulator."""
        return self._request("GET", f"/v1/labels/{_segment(serial)}/trail", signer=key)

    def scan(self, serial: str, *, forwarded_for: str | None = None, **fields: Any) -> dict:
        """Record a consumer scan through the gateway; answers the view with the scan counted.

        ``forwarded_for``: the consumer's address, sent as ``X-Forwarded-For`` (believed only
        from a proxy the API trusts, such as loopback: how a simulation stands in for many consumers).
        """
        body = {"channel": "web", "region": None, "lat": None, "lon": None, "session": None, **fields}
        headers = {"x-forwarded-for": forwarded_for} if forwarded_for else None
        # Not retried: a resent scan would be counted twice.
        return self._request("POST", f"/v1/labels/{_segment(serial)}/scans", body, retry=False, headers=headers)

    def health(self) -> dict:
        """``{"ok": true}`` when the API is up."""
        return self._request("GET", "/healthz")

    # ------------------------------------------------------------ containers, lots, EPCIS

    def post_batch(self, signed_events: Sequence[SignedEvent], *, atomic: bool = True) -> list[dict]:
        """Submit events as ONE request; ``atomic``: the ledger writes all of them or none."""
        if len(signed_events) > EVENTS_PER_REQUEST:
            raise Refused("too_many_events", f"an all-or-nothing batch holds at most {EVENTS_PER_REQUEST} events", field="events")
        body = {"events": [encode_signed(e) for e in signed_events], "atomic": atomic}
        return self._request("POST", "/v1/events", body)["results"]

    def container(self, sscc: str, key: KeyPair | None = None) -> dict | None:
        """A container's state (custodian, shipment, what is inside), None if it does not exist;
        signed by ``key`` (a regulator, or the container's producer, custodian or consignee)."""
        return self._request("GET", f"/v1/containers/{_segment(sscc)}", missing_ok=True, signer=key)

    def lot_impact(self, lot_key: str, key: KeyPair | None = None) -> dict:
        """What recalling a lot reaches: every lot made from it, transitively, and their units;
        signed by ``key`` (a regulator or the lot's producer)."""
        gtin, lot = lot_key.split("/", 1)
        return self._request("GET", f"/v1/lots/{gtin}/{_segment(lot)}/impact", signer=key)

    def epcis_events(self, key: KeyPair | None = None, **query: Any) -> dict:
        """An EPCIS 2.0 document of the selected history (``serial``, ``lot``, ``container``, ``since``, ``until``),
        signed by ``key`` (a history: a regulator or the subject's producer; the whole log: what ``key`` may read).

        Without a subject the server pages the whole log; the pages (followed by
        their ``Link: rel="next"``) are joined into one document.
        """
        if all(query.get(k) is None for k in ("serial", "lot", "container")):
            query = query | {"perPage": EPCIS_PAGE}
        params = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in query.items() if v is not None)
        path: str | None = "/v1/epcis/events" + (f"?{params}" if params else "")
        document: dict | None = None
        while path is not None:
            url, response = self._send("GET", path, signer=key)
            page = self._decode(url, response, False)
            if document is None:
                document = page
            else:
                document["epcisBody"]["eventList"] += page["epcisBody"]["eventList"]
            path = response.links.get("next", {}).get("url")
        return document

    def epcis_capture(self, document: dict) -> dict:
        """Submit an EPCIS 2.0 document of signed events; answers the capture job (poll :meth:`capture_job`)."""
        return self._request("POST", "/v1/epcis/capture", document, retry=False)

    def capture_job(self, capture_id: str, key: KeyPair | None = None) -> dict:
        """A capture job's state: ``running``, ``success``, ``errors`` (a standard capture's: signed by its actor or a regulator)."""
        return self._request("GET", f"/v1/epcis/capture/{_segment(capture_id)}", signer=key)

    def epcis_capture_signed(self, body: dict, key: KeyPair) -> dict:
        """Submit a standard document's events as this actor signed them (``POST /v1/epcis/capture/signed``); the job."""
        return self._request("POST", "/v1/epcis/capture/signed", body, retry=False, signer=key)

    def epcis_captured(self, event_ids: Sequence[str], key: KeyPair) -> dict[str, list[str]]:
        """Partner eventIDs this actor captured before -> the ledger event ids each became (``POST /v1/epcis/capture/events``)."""
        return self._request("POST", "/v1/epcis/capture/events", {"eventIDs": list(event_ids)}, signer=key)["events"]

    def capture_jobs(self, key: KeyPair, per_page: int = 30) -> list[dict]:
        """The newest capture jobs the signing actor may see (its own; a regulator's: all)."""
        return self._request("GET", f"/v1/epcis/capture?perPage={per_page}", signer=key)

    # ------------------------------------------------------------ alerts (requests signed by a regulator or a producer)

    def alerts(self, key: KeyPair, **query: Any) -> dict:
        """One page of the alerts ``key``'s actor may see (filters, ``limit``, ``cursor``):
        ``{"alerts": [...], "next_cursor": ...}``."""
        return self._request("GET", f"/v1/alerts?{_query(query)}", signer=key)

    def alert(self, alert_id: str, key: KeyPair) -> dict:
        """One alert with its evidence events and its signed transitions."""
        return self._request("GET", f"/v1/alerts/{_segment(alert_id)}", signer=key)

    def alerts_summary(self, key: KeyPair, **query: Any) -> dict:
        """Alert counts by state, kind and region, and over time (``since``, ``until``, ``bucket``, ``level``)."""
        return self._request("GET", f"/v1/alerts/summary?{_query(query)}", signer=key)

    def alerts_summary_svg(self, key: KeyPair, **query: Any) -> bytes:
        """The summary chart as SVG bytes (same filters as :meth:`alerts_summary`)."""
        url, response = self._send("GET", f"/v1/alerts/summary.svg?{_query(query)}", retry=False, signer=key)
        if response.status_code >= 400:
            self._decode(url, response, False)  # raises Refused or ApiUnavailable
        return response.content

    def post_alert_transition(self, alert_id: str, signed_event: SignedEvent) -> dict:
        """Submit an alert's signed ``AlertAcknowledged``/``AlertResolved`` event; answers ``{"result": ...}``."""
        return self._request("POST", f"/v1/alerts/{_segment(alert_id)}/transitions", encode_signed(signed_event))


def _query(params: dict[str, Any]) -> str:
    """A query string of the parameters that are set, in the order given."""
    return urlencode({k: v for k, v in params.items() if v is not None})


def _segment(value: str) -> str:
    # Serials may hold '/', '?', '#', '%' (GS1 CSET 82): escape everything.
    return quote(value, safe="")


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect ({exc})"
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"
