"""A label's public view: ``GET /v1/labels/{serial}`` and consumer scans, ``POST /v1/labels/{serial}/scans``.

Both answer what anyone may see (:func:`traceledger.api.shopper.service.public_view`),
never "genuine" when the ledger's stored chain no longer matches what it
published. The GET is the hottest route: :mod:`traceledger.api.fast_path`
answers it with :func:`label_json` ahead of routing; the FastAPI route stays
declared for OpenAPI and ``HEAD``. The full trail is ``GET /v1/labels/{serial}/trail``,
signed by its producer or a regulator.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from ledger import gs1
from ledger.errors import Refused
from ledger.events import validate_channel, validate_region
from ledger.logging_setup import get_logger
from traceledger.api.client_identity import client_of
from traceledger.api.responses import OrjsonResponse, json_bytes
from traceledger.api.shopper.service import limit_of, public_view, with_uri

log = get_logger("api")

router = APIRouter()


class ScanIn(BaseModel):
    channel: str = "web"
    region: str | None = None
    lat: float | None = None
    lon: float | None = None
    session: str | None = Field(default=None, max_length=128)


async def label_json(state, serial: str) -> bytes:
    """The public view of ``serial`` as JSON bytes (``state``: the app's)."""
    gs1.validate_serial(serial)
    # Read with the worker's other waiting lookups in one statement (traceledger/api/view_batch.py);
    # never "genuine" for a label the integrity sweep flagged.
    out = with_uri(await state.views.view(serial), serial, state.settings.resolver_host)
    return json_bytes(await public_view(state, out))


# Read endpoints are async on an async pool: no thread hop per request.
@router.get("/v1/labels/{serial}")
async def get_label(request: Request, serial: str):
    """The public verification view of a label: what a consumer needs, nothing private
    (the full trail is ``GET /v1/labels/{serial}/trail``, signed by its producer or a regulator)."""
    return Response(await label_json(request.app.state, serial), media_type="application/json")


def coarse_position(scan: ScanIn) -> tuple[float | None, float | None]:
    """The scan's position rounded to about a kilometre; refuses one off the globe."""
    lat = round(scan.lat, 2) if scan.lat is not None else None
    lon = round(scan.lon, 2) if scan.lon is not None else None
    if (lat is not None and abs(lat) > 90) or (lon is not None and abs(lon) > 180):
        raise Refused("invalid_field", "lat/lon out of range", field="lat")
    return lat, lon


@router.post("/v1/labels/{serial}/scans")
async def post_scan(request: Request, serial: str, scan: ScanIn | None = None):
    """A consumer's scan: answered now, recorded on the ledger by the gateway worker.

    Limited per client (429 with ``Retry-After`` over it); the label's public
    ``scan_count`` moves by at most one per client per window."""
    gs1.validate_serial(serial)
    scan = scan or ScanIn()
    validate_channel(scan.channel)
    validate_region(scan.region, required=False)
    lat, lon = coarse_position(scan)
    state = request.app.state
    client = client_of(request)
    # The limit's hit and the inbox row in one group-committed statement (ledger/inbox_group.py):
    # over the limit 429 and nothing accepted; answered only once the row is durable.
    accepted = await state.inbox.accept(serial, channel=scan.channel, region=scan.region, lat=lat, lon=lon, session=scan.session,
                                        client=client, scope="scan", limit=limit_of(state, "scan"),
                                        count_window=state.settings.client_window_seconds)
    # Read after the commit (so it counts this scan), with the worker's other waiting scans in one statement.
    out = with_uri(await state.scan_views.view(serial), serial, state.settings.resolver_host)
    if out["verdict"] != "unknown":
        out["scan_count"] += out["unprojected"]
        out["first_scanned_at"] = out["first_scanned_at"] or accepted.occurred_at.isoformat()
    log.info("scan_accepted", serial=serial, event_id=accepted.event_id, verdict=out["verdict"], channel=scan.channel)
    return OrjsonResponse(await public_view(state, out) | {"scan_id": accepted.event_id})
