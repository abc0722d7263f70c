"""HTTP routes for containers and lot graphs: ``/v1/containers/{sscc}``, ``/v1/lots/{gtin}/{lot}/impact``.

A container's custody and shipment come from the write model (what the ledger
checks the next event against); what is inside comes from the read model's
memberships, which may trail the ledger by the projector's lag, so both counts
are returned. A lot's recall impact walks the read model's lot graph.

Both are confidential (:mod:`traceledger.api.access`): a signed request by a
regulator or the subject's producer; a container also answers its current
custodian and consignee (what they hold or are about to receive; a pack or
unpack needs it). Anonymous: 401; any other actor: 403.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from ledger import gs1
from ledger.errors import Refused
from ledger.lifecycle import ContainerState
from projections import container_queries
from projections import lots as lot_graph
from projections.verification import DEFAULT_SCHEMA
from traceledger.api import access
from traceledger.api.dependencies import caller, sync_pool
from traceledger.api.problems import not_found
from traceledger.auth import Caller

router = APIRouter()


@router.get("/v1/containers/{sscc}")
def get_container(request: Request, sscc: str, signer: Caller | None = Depends(caller)):
    """A case's or pallet's state: level, custodian, shipment, recalled, and the children inside now (signed)."""
    gs1.validate_sscc(sscc)
    who = access.reader(signer, request.app.state.ledger)
    chain = request.app.state.ledger.app.load_chain("container", sscc)
    if chain is None or not isinstance(chain.state, ContainerState):
        return not_found(f"container {sscc} does not exist", "unknown_subject", "sscc")
    c = chain.state
    if not (who.sees_everything or who.caller.actor_id in (c.producer, c.custodian, c.consignee)):
        raise Refused("forbidden", "only a regulator, the container's producer, custodian or consignee may read it", field="authorization")
    with sync_pool(request.app.state).connection() as conn:
        children = container_queries.children_inside(conn, sscc)
    return {
        "sscc": c.sscc, "level": c.level, "producer": c.producer, "status": c.status, "custodian": c.custodian,
        "consignee": c.consignee, "territory": c.territory, "channel": c.channel, "recalled": c.recalled,
        "container": c.container, "contents": c.contents, "children": children, "seq": c.seq, "head": c.head.hex(),
    }


@router.get("/v1/lots/{gtin}/{lot}/impact")
def get_lot_impact(request: Request, gtin: str, lot: str, signer: Caller | None = Depends(caller)):
    """Everything a recall of this lot reaches: the lots made from it (transitively) and their units (signed)."""
    key = gs1.lot_key(gtin, lot)
    access.reader(signer, request.app.state.ledger).require_subject("lot", key, f"lot {key}'s impact")
    with sync_pool(request.app.state).connection() as conn:
        found = container_queries.lot_known(conn, *key.split("/", 1))
        out = lot_graph.impact(conn, DEFAULT_SCHEMA, key)
    if not found and out["units"] == 0 and len(out["affected_lots"]) <= 1:
        raise Refused("unknown_lot", f"lot {key} is not known to the ledger (no lot events, no labels)", field="lot")
    return out
