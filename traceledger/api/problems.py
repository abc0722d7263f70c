"""Every error answer of the API: RFC 9457 problem+json, built in one place.

A problem names its kind twice: ``type`` (a URI, here
``https://traceledger.example/problems/<code>``) and ``code`` (the same
short word, for clients that switch on it); ``field`` says which input was
wrong. EPCIS answers keep the EPCIS 2.0 exception as their ``type``
(``epcisException:ValidationException``...), as that standard requires.
An unknown serial is not a problem: it is a normal ``unknown`` verdict.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ledger import epcis
from ledger.errors import Refused

PROBLEM = "application/problem+json"
TYPE_BASE = "https://traceledger.example/problems/"


class Problem(BaseModel):
    """An RFC 9457 problem: how every error is answered."""

    type: str
    title: str
    status: int
    detail: str
    code: str | None = None
    field: str | None = None


# Documented on every operation (OpenAPI), so clients and schema checkers know the
# error shape; it replaces FastAPI's default 422 body, which this API never sends.
PROBLEM_RESPONSES = {
    status: {"description": text, "content": {PROBLEM: {"schema": Problem.model_json_schema()}}}
    for status, text in [(400, "input refused"), (401, "not authenticated"), (403, "forbidden"), (404, "not found"),
                         (413, "request too large"), (422, "invalid request"), (429, "too many attempts"),
                         (503, "database unavailable or out of space")]
}


def problem(status: int, title: str, detail: str, *, code: str | None = None, field: str | None = None,
            type: str | None = None, headers: dict | None = None, extra: dict[str, Any] | None = None) -> JSONResponse:
    """A problem+json answer; ``type`` defaults to the URI of ``code``, ``extra`` adds members."""
    body: dict[str, Any] = {"type": type or f"{TYPE_BASE}{code or 'error'}", "title": title, "status": status, "detail": detail}
    if code:
        body["code"] = code
    if field:
        body["field"] = field
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def refused(status: int, exc: Refused, title: str = "input refused", headers: dict | None = None) -> JSONResponse:
    """A :class:`Refused` (code, detail, field) answered with ``status``."""
    return problem(status, title, exc.detail, code=exc.code, field=exc.field, headers=headers)


def not_found(detail: str, code: str, field: str | None = None) -> JSONResponse:
    """404: the thing named in the path does not exist."""
    return problem(404, "not found", detail, code=code, field=field)


def epcis_problem(error: epcis.EpcisError, status: int = 400, **extra: Any) -> JSONResponse:
    """An EPCIS refusal: ``type`` is the EPCIS 2.0 exception, ``title`` its name, plus ``eventIndex`` if known."""
    members = error.as_dict()
    body_type, title, detail = members.pop("type"), members.pop("title"), members.pop("detail")
    return problem(status, title, detail, type=body_type, extra=members | extra)
