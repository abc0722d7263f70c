"""EPCIS webhook delivery: the API pushes new matching events to a subscription's ``dest``, at least once.

Started by the API's lifespan (:func:`start`), one loop per worker process. Every
:data:`TICK_SECONDS` it leases due webhook subscriptions in PostgreSQL
(:func:`ledger.epcis_subscriptions.claim_due`: ``SKIP LOCKED``, so workers never deliver
the same subscription at once) and, for each, answers its named query after the cursor
exactly as a pull subscription would (at most :data:`PER_DELIVERY` events, only those
the subscription's owner may read, :mod:`traceledger.api.access`), then POSTs that
``EPCISQueryDocument`` to ``dest``:

- the target is checked again right before (:func:`ledger.epcis_webhooks.check_target`:
  https only unless the operator allows http, no loopback/private/link-local address
  unless allow-listed) and the connection goes to the address that was checked, with the
  URL's host name as Host and TLS name: no DNS-rebinding detour, no redirects followed;
- the body is signed: ``TraceLedger-Signature: t=...,v1=HMAC-SHA256(secret, "t." + body)``
  with the subscription's own secret (given once, when subscribing);
  ``TraceLedger-Delivery: <subscription>/<cursor>`` is the same for every retry of one
  delivery, so a receiver can recognise a repeat (eventIDs do too);
- a 2xx answer moves the cursor (:func:`ledger.epcis_subscriptions.delivered`); anything
  else (an error status, a redirect, a timeout, a refused target) is a failed attempt,
  retried after 1, 2, 4 ... s (capped at 10 min) and given up (``state: failed``,
  ``lastError`` shown to the owner) after :data:`ledger.epcis_subscriptions.MAX_ATTEMPTS`.

At least once across restarts: the cursor moves only after the receiver's 2xx is in
hand, so a crash between sending and recording means the same delivery again once the
lease (:data:`LEASE_SECONDS`) runs out. A revoked owner's subscriptions fail rather than
deliver. Log events: ``epcis_webhook_delivered`` / ``epcis_webhook_failed``.
"""

from __future__ import annotations

import asyncio
import ipaddress

import httpx
import orjson
from starlette.concurrency import run_in_threadpool

from ledger import epcis_subscriptions
from ledger.epcis_query import Page, parse_query
from ledger.epcis_webhooks import SIGNATURE_HEADER, Target, check_target, signature
from ledger.errors import Refused
from ledger.logging_setup import get_logger
from traceledger.api import access
from traceledger.api.dependencies import sync_pool
from traceledger.api.epcis_query import EPCIS_HEADERS, LD_JSON, query_document, query_page
from traceledger.auth import Caller

log = get_logger("epcis")

TICK_SECONDS = 0.5
IDLE_SECONDS = 1.0  # a subscription with nothing new is looked at again after this
LEASE_SECONDS = 10.0  # longer than one delivery can take (timeout below plus the query); a dead worker's lease waits this long
TIMEOUT_SECONDS = 5.0
PER_DELIVERY = 100


def connect_url(target: Target, url_path: str) -> str:
    """The URL to connect to: the checked address in place of the host name."""
    address = target.addresses[0]
    host = f"[{address}]" if isinstance(ipaddress.ip_address(address.split("%")[0]), ipaddress.IPv6Address) else address
    return f"{target.scheme}://{host}:{target.port}{url_path}"


def post(target: Target, body: bytes, headers: dict[str, str]) -> int:
    """POST ``body`` to the checked target, pinned to its checked address; the status (redirects not followed)."""
    parts = httpx.URL(target.url)
    url_path = parts.raw_path.decode("ascii")
    host_header = target.host if parts.port is None else f"{target.host}:{target.port}"
    extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
    with httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False, trust_env=False) as client:
        request = client.build_request("POST", connect_url(target, url_path), content=body,
                                       headers=headers | {"Host": host_header}, extensions=extensions)
        response = client.send(request, stream=True)  # the answer's body is never read: only its status counts
        response.close()
        return response.status_code


class Deliverer:
    """The delivery loop of one API worker."""

    def __init__(self, state):
        self.state = state

    def tick(self) -> int:
        """Deliver every due subscription once (blocking work); how many deliveries succeeded."""
        with sync_pool(self.state).connection() as conn:
            due = epcis_subscriptions.claim_due(conn, LEASE_SECONDS)
        return sum(self.deliver(sub) for sub in due)

    def reader(self, owner: str) -> access.Reader | None:
        actor = self.state.ledger.actor(owner)
        if actor is None or not actor.active:
            return None
        return access.reader(Caller(owner, actor.role), self.state.ledger)

    def deliver(self, sub: dict) -> bool:
        """One delivery attempt for a leased subscription; whether the receiver took it."""
        sid = sub["subscriptionID"]
        with sync_pool(self.state).connection() as conn:
            named = epcis_subscriptions.query(conn, sub["queryName"])
            reader = self.reader(sub["owner"])
            if named is None:
                return False  # deleted meanwhile (its subscriptions with it)
            if reader is None:
                self.failed(conn, sid, sub, "the subscription's owner is no longer an active registered actor")
                return False
        query, _ = parse_query([tuple(p) for p in named["query"]])
        results = query_page(self.state, query, Page(after=sub["ackedThrough"], size=PER_DELIVERY), reader=reader)
        if not results.events:
            with sync_pool(self.state).connection() as conn:  # nothing (readable) after the cursor: move past what was skipped
                epcis_subscriptions.idle(conn, sid, results.last_index if results.last_index is not None else sub["ackedThrough"],
                                         IDLE_SECONDS if results.last_index is None else 0)
            return False
        doc = query_document(results.events)
        doc["epcisBody"]["queryResults"] |= {"queryName": sub["queryName"], "subscriptionID": sid}
        body = orjson.dumps(doc)
        headers = EPCIS_HEADERS | {"Content-Type": LD_JSON, SIGNATURE_HEADER: signature(sub["secret"], body),
                                   "TraceLedger-Subscription": sid, "TraceLedger-Delivery": f"{sid}/{sub['ackedThrough']}",
                                   "User-Agent": "traceledger-epcis-webhook"}
        settings = self.state.settings
        try:
            target = check_target(sub["dest"], allow=settings.epcis_webhook_allow, http=settings.epcis_webhook_http)
            status = post(target, body, headers)
            error = None if 200 <= status < 300 else f"the receiver answered HTTP {status}"
        except Refused as exc:
            error = exc.detail
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {str(exc)[:200]}"
        with sync_pool(self.state).connection() as conn:
            if error is None:
                epcis_subscriptions.delivered(conn, sid, results.last_index)
                log.info("epcis_webhook_delivered", subscription_id=sid, events=len(results.events), through=results.last_index)
                return True
            self.failed(conn, sid, sub, error)
        return False

    @staticmethod
    def failed(conn, sid: str, sub: dict, error: str) -> None:
        after = epcis_subscriptions.failed_attempt(conn, sid, error)
        log.info("epcis_webhook_failed", subscription_id=sid, dest=sub["dest"][:200], error=error, **after)

    async def run(self) -> None:
        while True:
            try:
                await run_in_threadpool(self.tick)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the loop outlives a database blip; the lease makes it safe
                log.warning("epcis_webhook_tick_failed", error=repr(exc)[:300])
            await asyncio.sleep(TICK_SECONDS)


def start(state) -> asyncio.Task:
    """Start this worker's delivery loop (the lifespan cancels the task at shutdown)."""
    return asyncio.get_running_loop().create_task(Deliverer(state).run(), name="epcis-webhooks")
