"""The API's exception handlers: every failure becomes problem+json (:mod:`traceledger.api.problems`).

A :class:`ledger.errors.Refused` is the caller's fault (400, or 401 / 403 for
``unauthenticated`` or ``replayed_request`` / ``forbidden``, 429 with
``Retry-After`` for a client over its limit); a :class:`ledger.epcis.EpcisError` keeps its
EPCIS exception type (404 for ``NoSuchResourceException``); an unreachable or full database is 503
with nothing written.
"""

from __future__ import annotations

import asyncio

import psycopg
from eventsourcing import persistence as es_persistence
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger import epcis
from ledger.client_limits import OverLimit
from ledger.errors import Refused
from ledger.logging_setup import get_logger
from traceledger import auth
from traceledger.api.problems import epcis_problem, problem, refused

log = get_logger("api")


async def refused_handler(request: Request, exc: Refused):
    if isinstance(exc, OverLimit):
        return refused(429, exc, "too many requests", headers={"Retry-After": str(exc.retry_after)})
    if exc.code in auth.UNAUTHENTICATED_CODES:
        return refused(401, exc, "not authenticated", headers={"WWW-Authenticate": auth.SCHEME})
    if exc.code == "forbidden":
        return refused(403, exc, "forbidden")
    return refused(400, exc)


# EPCIS exceptions that are not the caller's malformed input.
EPCIS_STATUS = {"NoSuchResourceException": 404, "CaptureLimitExceededException": 413, "QueryTooLargeException": 413,
                "NotAcceptableException": 406}


async def epcis_handler(request: Request, exc: epcis.EpcisError):
    return epcis_problem(exc, EPCIS_STATUS.get(exc.exception, 400))


async def validation_handler(request: Request, exc: RequestValidationError):
    first = exc.errors()[0] if exc.errors() else {}
    field = ".".join(str(x) for x in first.get("loc", ()) if x != "body") or None
    return problem(422, "invalid request", first.get("msg", "invalid request"), code="invalid_request", field=field)


async def http_handler(request: Request, exc: StarletteHTTPException):
    return problem(exc.status_code, "error", str(exc.detail), code="http_error")


def purge_broken_connections(request: Request) -> None:
    """Have the pool test its idle connections in the background, replacing the dead ones.

    After a database restart every pooled connection is dead, and each would fail one
    request before the pool noticed; checking them all on the first failure (rather than
    on every checkout, a round trip on the hot path) makes that one request.
    """
    pool = getattr(request.app.state, "pool", None)
    if pool is not None:
        task = asyncio.get_running_loop().create_task(pool.check())
        _checks.add(task)
        task.add_done_callback(_checks.discard)


_checks: set[asyncio.Task] = set()  # held until done (the loop keeps only weak references)


async def db_down_handler(request: Request, exc: Exception):
    # The event store wraps psycopg's error: look at the cause for the real one.
    if isinstance(exc, psycopg.errors.DiskFull) or isinstance(exc.__cause__, psycopg.errors.DiskFull):
        log.error("database_disk_full", error=str(exc))
        return problem(503, "database out of space", "the ledger database has no disk space left; nothing was written", code="disk_full")
    log.error("database_unavailable", error=str(exc))
    purge_broken_connections(request)
    return problem(503, "database unavailable", "the ledger database cannot be reached; nothing was written", code="unavailable")


def install(app: FastAPI) -> None:
    """Register every handler on ``app``."""
    app.add_exception_handler(Refused, refused_handler)
    app.add_exception_handler(epcis.EpcisError, epcis_handler)
    app.add_exception_handler(RequestValidationError, validation_handler)
    app.add_exception_handler(StarletteHTTPException, http_handler)
    # The event store (eventsourcing) re-raises psycopg's connection errors as its own.
    for db_error in (psycopg.OperationalError, es_persistence.OperationalError, es_persistence.InterfaceError):
        app.add_exception_handler(db_error, db_down_handler)
