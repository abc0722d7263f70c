"""A client-signed ledger event as a JSON body: base64 of its canonical Avro bytes and of its signature."""

from __future__ import annotations

import base64
import binascii

from pydantic import BaseModel, Field

from ledger.errors import Refused
from ledger.events import SignedEvent, decode_signed


class EventIn(BaseModel):
    body: str = Field(description="base64 of the event's canonical Avro bytes")
    signature: str = Field(description="base64 of the Ed25519 signature of body")


def decode_event(item: EventIn) -> SignedEvent:
    """The signed event ``item`` carries; :class:`Refused` if it is not base64 or does not decode."""
    try:
        body = base64.b64decode(item.body, validate=True)
        signature = base64.b64decode(item.signature, validate=True)
    except (binascii.Error, ValueError):
        raise Refused("malformed_encoding", "body and signature must be base64", field="body") from None
    return decode_signed(body, signature)
