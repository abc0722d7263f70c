"""``GET /v1/actors/{actor_id}``: a registered actor's role, name, current key and GTIN prefixes."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ledger import shopper_records
from ledger.events import validate_actor_id
from ledger.service import Ledger
from traceledger.api.dependencies import ledger_of
from traceledger.api.problems import not_found

router = APIRouter()


@router.get("/v1/actors/{actor_id}")
def get_actor(actor_id: str, ledger: Ledger = Depends(ledger_of)):
    validate_actor_id(actor_id, "actor_id")
    actor = ledger.actor(actor_id)
    if actor is None:
        return not_found(f"actor {actor_id} is not registered", "unknown_actor", "actor_id")
    return {
        "actor_id": actor.actor_id, "role": actor.role, "name": actor.name, "key_id": actor.key_id,
        "public_key": actor.public_key.hex(), "gtin_prefixes": list(actor.gtin_prefixes), "revoked": actor.revoked,
        "hotline": (shopper_records.actor_profile(ledger.app, actor_id) or {}).get("hotline"),  # its signed profile (issue 17: printed sheets)
    }
