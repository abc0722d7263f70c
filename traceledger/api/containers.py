"""HTTP routes for containers and lot graphs: ``/v1/containers/{sscc}``, ``/v1/lots/{gtin}/{lot}/impact``.

A container's custody and shipment come from the write model (what the ledger
checks the next event against); what is inside comes from the read model's
memberships, which may trail the ledger by the projector's lag, so both counts
are returned. A lot's recall impact walks the read model's lot graph.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from ledger import gs1
from ledger.errors import Refused
from ledger.lifecycle import ContainerState
from projections import container_queries
from projections import lots as lot_graph
from projections.verification import DEFAULT_SCHEMA
from traceledger.api.dependencies import sync_pool
from traceledger.api.problems import not_found

router = APIRouter()


@router.get("/v1/containers/{sscc}")
def get_container(request: Request, sscc: str):
    """A case's or pallet's state: level, custodian, shipment, recalled, and the children inside now."""
    gs1.validate_sscc(sscc)
    chain = request.app.state.ledger.app.load_chain("container", sscc)
    if chain is None or not isinstance(chain.state, ContainerState):
        return not_found(f"container {sscc} does not exist", "unknown_subject", "sscc")
    c = chain.state
    with sync_pool(request.app.state).connection() as conn:
        children = container_queries.children_inside(conn, sscc)
    return {
        "sscc": c.sscc, "level": c.level, "producer": c.producer, "status": c.status, "custodian": c.custodian,
        "consignee": c.consignee, "territory": c.territory, "channel": c.channel, "recalled": c.recalled,
        "container": c.container, "contents": c.contents, "children": children, "seq": c.seq, "head": c.head.hex(),
    }


@router.get("/v1/lots/{gtin}/{lot}/impact")
def get_lot_impact(request: Request, gtin: str, lot: str):
    """Everything a recall of this lot reaches: the lots made from it (transitively) and their units."""
    key = gs1.lot_key(gtin, lot)
    with sync_pool(request.app.state).connection() as conn:
        found = container_queries.lot_known(conn, *key.split("/", 1))
        out = lot_graph.impact(conn, DEFAULT_SCHEMA, key)
    if not found and out["units"] == 0 and len(out["affected_lots"]) <= 1:
        raise Refused("unknown_lot", f"lot {key} is not known to the ledger (no lot events, no labels)", field="lot")
    return out
