"""The error type the write side uses to refuse input, and the one a projection uses to wait.

Every refusal names the field (or rule) at fault and carries a stable machine
code, so the HTTP API can answer RFC 9457 problem+json and the CLI can print a
one-line reason and exit 2.
"""

from __future__ import annotations


class Refused(Exception):
    """Input refused: nothing was written.

    ``code`` is a stable, machine-readable reason (``bad_signature``,
    ``stale_head``, ``not_authorized``, ``invalid_field``...); ``field`` names
    the offending field when there is one.
    """

    def __init__(self, code: str, detail: str, *, field: str | None = None):
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.field = field

    def as_dict(self) -> dict:
        out = {"code": self.code, "detail": self.detail}
        if self.field:
            out["field"] = self.field
        return out

    def __str__(self) -> str:  # one line, field first: what the CLI prints
        return f"{self.field}: {self.detail}" if self.field else self.detail


class Waiting(Exception):
    """A record a projection cannot apply *yet*: raised before any effect.

    Not a refusal: the record checked out as far as it could, but what it builds on
    (``subject``'s earlier event, e.g. the batch event that issued a label, relayed on
    another partition) is not in the read model yet. The consumer parks it and applies
    it once ``subject`` moves on (:mod:`consumers.exactly_once`).
    """

    def __init__(self, subject: str, detail: str):
        super().__init__(detail)
        self.subject = subject
        self.detail = detail
