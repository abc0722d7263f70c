"""HTTP routes for containers and lot graphs: ``/v1/containers/{sscc}``, ``/v1/lots/{gtin}/{lot}/impact``.

A container's custody and shipment come from the write model (what the ledger
checks the next event against); what is inside comes from the read model's
memberships, which may trail the ledger by the projector's lag, so both counts
are returned. A lot's recall impact walks the read model's lot graph.
"""

from __future__ import annotations

import psycopg
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ledger import gs1
from ledger.errors import Refused
from ledger.lifecycle import ContainerState
from projections import lots as lot_graph
from projections.verification import DEFAULT_SCHEMA
from ledger.config import Settings


def router(settings: Settings, state: dict) -> APIRouter:
    """Routes reading ``state["ledger"]`` (write model) and the verification read model."""
    api = APIRouter()

    @api.get("/v1/containers/{sscc}")
    def get_container(sscc: str):
        """A case's or pallet's state: level, custodian, shipment, recalled, and the children inside now."""
        gs1.validate_sscc(sscc)
        chain = state["ledger"].app.load_chain("container", sscc)
        if chain is None or not isinstance(chain.state, ContainerState):
            return JSONResponse(
                {"type": "https://traceledger.example/problems/unknown_subject", "title": "not found", "status": 404,
                 "detail": f"container {sscc} does not exist", "code": "unknown_subject", "field": "sscc"},
                status_code=404, media_type="application/problem+json",
            )
        c = chain.state
        with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
            children = [row[0] for row in conn.execute(
                f"SELECT child FROM {DEFAULT_SCHEMA}.memberships WHERE container = %s AND unpacked_seq IS NULL ORDER BY packed_index, child",
                (sscc,),
            ).fetchall()]
        return {
            "sscc": c.sscc, "level": c.level, "producer": c.producer, "status": c.status, "custodian": c.custodian,
            "consignee": c.consignee, "territory": c.territory, "channel": c.channel, "recalled": c.recalled,
            "container": c.container, "contents": c.contents, "children": children, "seq": c.seq, "head": c.head.hex(),
        }

    @api.get("/v1/lots/{gtin}/{lot}/impact")
    def get_lot_impact(gtin: str, lot: str):
        """Everything a recall of this lot reaches: the lots made from it (transitively) and their units."""
        key = gs1.lot_key(gtin, lot)
        with psycopg.connect(settings.pg_conninfo, autocommit=True) as conn:
            found = conn.execute(f"SELECT 1 FROM {DEFAULT_SCHEMA}.lots WHERE gtin = %s AND lot = %s", key.split("/", 1)).fetchone()
            out = lot_graph.impact(conn, DEFAULT_SCHEMA, key)
        if found is None and out["units"] == 0 and len(out["affected_lots"]) <= 1:
            raise Refused("unknown_lot", f"lot {key} is not known to the ledger (no lot events, no labels)", field="lot")
        return out

    return api
