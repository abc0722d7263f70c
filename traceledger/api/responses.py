"""JSON answers serialised with orjson.

FastAPI deprecated its ``ORJSONResponse`` in favour of response models; the
read endpoints return plain dicts built by the projections, so this small
response class hands them straight to orjson and keeps the hot path without
the deprecated import.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


def json_bytes(content: Any) -> bytes:
    """``content`` as JSON bytes, the way every JSON answer of the API is rendered."""
    return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class OrjsonResponse(Response):
    """``application/json`` rendered by orjson, with the options FastAPI's class used (less numpy)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json_bytes(content)
