"""EPCIS named queries and subscriptions over HTTP (REST binding, ``/epcis/queries``), for registered actors.

- ``POST /epcis/queries`` ``{"name": ..., "query": {"EQ_bizStep": "shipping", ...}}`` saves a
  named query (the standard parameters of ``GET /epcis/events``, checked now; values may be
  lists); ``GET /epcis/queries`` lists the caller's (a regulator's: all), ``GET`` / ``DELETE
  /epcis/queries/{name}`` show or delete one (its owner or a regulator), and
  ``GET /epcis/queries/{name}/events`` runs it, one page at a time like ``/epcis/events``.
- ``POST /epcis/queries/{name}/subscriptions`` ``{"from": "now" | "start"}`` subscribes; then
  ``GET /epcis/queries/{name}/subscriptions/{id}/events?ack=TOKEN&wait=SECONDS`` first moves the
  subscription's cursor to ``ack`` (the ``ackToken`` of an answer the subscriber has
  processed), then answers the matching events after the cursor, waiting up to ``wait``
  seconds (at most 30) for one to arrive. The answer carries ``ackToken``; until it is sent
  back, the same events are answered again. ``DELETE .../subscriptions/{id}`` ends it.

A subscription is pulled (above) or, with ``{"dest": "https://..."}``, pushed: a *webhook*
(:mod:`traceledger.api.epcis_webhooks` delivers, at least once, with bounded retries). Pull
needs no public address and the server calls nothing; a webhook makes this server connect
to a URL the subscriber chose, so the URL is checked when subscribing and again before
every delivery (:mod:`ledger.epcis_webhooks`: https only, no loopback/private/link-local
address unless the operator allow-lists it, no redirects), and every delivery is signed by
a per-subscription secret, answered ONCE here (``secret``, base64url) and never
shown again. Either way the cursor lives in PostgreSQL
(:mod:`ledger.epcis_subscriptions`): nothing is lost when the API restarts, a subscriber
that crashes gets its unacknowledged events again (at least once; eventIDs make duplicates
recognisable), and a slow subscriber costs one row, not a queue.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
import uuid

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ledger import epcis, epcis_subscriptions
from ledger.epcis_query import Page, decode_token, encode_token, parse_query
from ledger.epcis_webhooks import check_target
from ledger.errors import Refused
from ledger.logging_setup import get_logger
from projections import epcis_index
from traceledger import auth
from traceledger.api import access
from traceledger.api.dependencies import caller, sync_pool
from traceledger.api.epcis_query import EPCIS_HEADERS, LD_RESPONSE, LdJsonResponse, answer_query, check_versions, query_document, query_page

log = get_logger("epcis")

router = APIRouter(prefix="/epcis/queries", tags=["epcis"], dependencies=[Depends(check_versions)])

MAX_WAIT_SECONDS = 30
POLL_SECONDS = 0.5
ACK_DIGEST = "subscription"  # what an ackToken belongs to (a token of another query's page is refused)


class NamedQuery(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    query: dict[str, str | list[str]] = Field(description="standard query parameters of GET /epcis/events", max_length=40)


class NewSubscription(BaseModel):
    from_: str = Field("now", alias="from", pattern="^(now|start)$", description="deliver events after now, or from the start")
    dest: str | None = Field(None, max_length=2000, description="a webhook: POST new matching events to this https URL (signed)")


def params_of(query: dict[str, str | list[str]]) -> list[tuple[str, str]]:
    return [(name, v) for name, value in query.items() for v in ([value] if isinstance(value, str) else value)]


def owned(state, name: str, who: auth.Caller) -> dict:
    """The named query, if the caller owns it or is a regulator; 404 / 403 otherwise."""
    with sync_pool(state).connection() as conn:
        found = epcis_subscriptions.query(conn, name)
    if found is None:
        raise epcis.EpcisError("NoSuchResourceException", f"no named query {name[:64]!r}")
    if who.role != "regulator" and who.actor_id != found["owner"]:
        raise Refused("forbidden", "a named query is its owner's (and regulators')", field="authorization")
    return found


@router.post("", status_code=201)
def create(request: Request, body: NamedQuery, signer: auth.Caller | None = Depends(caller)):
    """Save a named query of standard parameters (checked now, refused if unknown or malformed)."""
    who = auth.require(signer)
    with sync_pool(request.app.state).connection() as conn:
        epcis_subscriptions.create_query(conn, body.name, who.actor_id, params_of(body.query))
        saved = epcis_subscriptions.query(conn, body.name)
    log.info("epcis_query_saved", name=body.name, owner=who.actor_id)
    return saved


@router.get("")
def list_queries(request: Request, signer: auth.Caller | None = Depends(caller)):
    """The caller's named queries (a regulator's: all)."""
    who = auth.require(signer)
    with sync_pool(request.app.state).connection() as conn:
        return epcis_subscriptions.queries(conn, None if who.role == "regulator" else who.actor_id)


@router.get("/{name}")
def show(request: Request, name: str, signer: auth.Caller | None = Depends(caller)):
    """One named query, with its subscriptions."""
    found = owned(request.app.state, name, auth.require(signer))
    with sync_pool(request.app.state).connection() as conn:
        return found | {"subscriptions": epcis_subscriptions.subscriptions(conn, name)}


@router.delete("/{name}", status_code=204)
def delete(request: Request, name: str, signer: auth.Caller | None = Depends(caller)):
    """Delete a named query and its subscriptions."""
    owned(request.app.state, name, auth.require(signer))
    with sync_pool(request.app.state).connection() as conn:
        epcis_subscriptions.delete_query(conn, name)
    log.info("epcis_query_deleted", name=name)
    return Response(status_code=204)


@router.get("/{name}/events", responses=LD_RESPONSE, response_class=LdJsonResponse)
def run(request: Request, name: str, signer: auth.Caller | None = Depends(caller)):
    """The named query's events, one page at a time (``perPage``, ``nextPageToken``)."""
    owned(request.app.state, name, auth.require(signer))
    with sync_pool(request.app.state).connection() as conn:
        found = epcis_subscriptions.query(conn, name)
    return answer_query(request, signer, [tuple(p) for p in found["query"]])


@router.post("/{name}/subscriptions", status_code=201)
def subscribe(request: Request, name: str, body: NewSubscription | None = None, signer: auth.Caller | None = Depends(caller)):
    """Subscribe to a named query: a durable cursor from now (default) or from the start of the log."""
    who = auth.require(signer)
    owned(request.app.state, name, who)
    asked = body or NewSubscription()
    settings = request.app.state.settings
    secret = None
    if asked.dest is not None:
        check_target(asked.dest, allow=settings.epcis_webhook_allow, http=settings.epcis_webhook_http)  # refused: nothing stored
        secret = secrets.token_bytes(32)
    with sync_pool(request.app.state).connection() as conn:
        epcis_index.catch_up(conn)
        after = epcis_index.last_index(conn) if asked.from_ == "now" else -1
        subscription_id = epcis_subscriptions.subscribe(conn, name, who.actor_id, after, asked.dest, secret)
        shown = epcis_subscriptions.subscription(conn, name, subscription_id)
    log.info("epcis_subscribed", name=name, subscription_id=subscription_id, after=after, webhook=asked.dest is not None)
    if secret is not None:
        shown["secret"] = base64.urlsafe_b64encode(secret).decode("ascii")  # shown this once: it signs every delivery
    return shown


def subscribed(state, name: str, subscription_id: str, who: auth.Caller) -> dict:
    owned(state, name, who)
    try:
        uuid.UUID(subscription_id)
    except ValueError:
        raise Refused("invalid_field", "a subscription id is a UUID", field="subscription_id") from None
    with sync_pool(state).connection() as conn:
        found = epcis_subscriptions.subscription(conn, name, subscription_id)
    if found is None:
        raise epcis.EpcisError("NoSuchResourceException", f"no subscription {subscription_id} to {name[:64]!r}")
    return found


def next_delivery(state, found: dict, ack: str | None, per_page: int, reader: access.Reader):
    """Acknowledge, then the page after the cursor, of what ``reader`` may read (blocking work)."""
    with sync_pool(state).connection() as conn:
        cursor = found["ackedThrough"]
        if ack is not None:
            cursor = epcis_subscriptions.acknowledge(conn, found["subscriptionID"], decode_token(ack, ACK_DIGEST))
        named = epcis_subscriptions.query(conn, found["queryName"])
    query, _ = parse_query([tuple(p) for p in named["query"]])
    return cursor, query_page(state, query, Page(after=cursor, size=per_page), reader=reader)


@router.get("/{name}/subscriptions/{subscription_id}/events", responses=LD_RESPONSE, response_class=LdJsonResponse)
async def deliver(request: Request, name: str, subscription_id: str, ack: str | None = Query(None, max_length=200),
                  wait: float = Query(0, ge=0, le=MAX_WAIT_SECONDS), perPage: int = Query(100, ge=1, le=1000),
                  signer: auth.Caller | None = Depends(caller)):
    """The subscription's next events after its cursor (``ack`` moves the cursor first), waiting up to ``wait`` s."""
    state = request.app.state
    found = await run_in_threadpool(subscribed, state, name, subscription_id, auth.require(signer))
    reader = access.reader(signer, state.ledger)  # what the caller may read: events it may not are skipped, never shown
    deadline = time.monotonic() + wait
    cursor, results = await run_in_threadpool(next_delivery, state, found, ack, perPage, reader)
    while results.last_index is None and time.monotonic() < deadline:
        await asyncio.sleep(POLL_SECONDS)  # a waiting subscriber holds no worker thread
        cursor, results = await run_in_threadpool(next_delivery, state, found | {"ackedThrough": cursor}, None, perPage, reader)
    doc = query_document(results.events)
    doc["epcisBody"]["queryResults"]["queryName"] = name
    doc["epcisBody"]["queryResults"]["subscriptionID"] = subscription_id
    last = cursor if results.last_index is None else results.last_index  # past events the caller may not read, too
    token = encode_token(last, ACK_DIGEST)
    doc["ackToken"] = token
    return LdJsonResponse(doc, headers=EPCIS_HEADERS | {"GS1-EPCIS-Ack-Token": token, "GS1-EPCIS-More": str(results.next_token is not None).lower()})


@router.delete("/{name}/subscriptions/{subscription_id}", status_code=204)
def unsubscribe(request: Request, name: str, subscription_id: str, signer: auth.Caller | None = Depends(caller)):
    """End a subscription."""
    found = subscribed(request.app.state, name, subscription_id, auth.require(signer))
    with sync_pool(request.app.state).connection() as conn:
        epcis_subscriptions.unsubscribe(conn, found["subscriptionID"])
    return Response(status_code=204)
