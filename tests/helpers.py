"""Test helpers: a small cast of actors and builders for their signed events."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from ledger import gs1
from ledger.events import GENESIS_HASH, SignedEvent, new_event
from ledger.keys import KeyPair
from ledger.lifecycle import ActorState

PREFIX = "6901234"


def gtin(item: str = "00001") -> str:
    body = "0" + PREFIX + item
    return body + str(gs1.gtin_check_digit(body))


def issued_payload(g: str | None = None, lot: str = "L1", product: str = "E-bike battery 48V", **extra) -> dict:
    return {"gtin": g or gtin(), "lot": lot, "expiry": extra.get("expiry"), "product": product, "region": extra.get("region"), "pin_hash": None}


def shipped_payload(consignee: str, territory: str = "44", channel: str = "offline_retail") -> dict:
    return {"consignee": consignee, "territory": territory, "channel": channel, "region": None}


def scanned_payload(channel: str = "web", region: str | None = "440305") -> dict:
    return {"channel": channel, "region": region, "lat": None, "lon": None, "session": None}


@dataclass
class Cast:
    """Keys of every role, and a chain-head tracker so tests can build next events."""

    keys: dict[str, KeyPair] = field(default_factory=dict)
    heads: dict[tuple[str, str], tuple[int, bytes]] = field(default_factory=dict)

    ROLES = {
        "registrar": ("registrar", []),
        "acme": ("producer", [PREFIX]),
        "other-producer": ("producer", ["6909876"]),
        "distributor": ("distributor", []),
        "retailer": ("retailer", []),
        "regulator": ("regulator", []),
        "gateway": ("gateway", []),
    }

    def __post_init__(self):
        for actor in self.ROLES:
            self.keys[actor] = KeyPair.generate(actor)

    def event(self, signer: str, subject_type: str, subject: str, kind: str, payload: dict, *, seq=None, prev=None, key: KeyPair | None = None, advance=True) -> SignedEvent:
        head_seq, head_hash = self.heads.get((subject_type, subject), (-1, GENESIS_HASH))
        key = key or self.keys[signer]
        e = new_event(
            subject_type=subject_type, subject=subject, kind=kind, payload=payload, actor=signer, key_id=key.key_id,
            seq=head_seq + 1 if seq is None else seq, prev_hash=head_hash if prev is None else prev,
        )
        signed = e.sign(key)
        if advance:
            self.heads[(subject_type, subject)] = (signed.event.seq, signed.hash)
        return signed

    def bootstrap(self) -> SignedEvent:
        k = self.keys["registrar"]
        return self.event("registrar", "actor", "registrar", "ActorRegistered",
                          {"role": "registrar", "name": "Industry association", "public_key": k.public_key, "gtin_prefixes": []})

    def register(self, actor: str) -> SignedEvent:
        role, prefixes = self.ROLES[actor]
        return self.event("registrar", "actor", actor, "ActorRegistered",
                          {"role": role, "name": actor.title(), "public_key": self.keys[actor].public_key, "gtin_prefixes": prefixes})

    def founding_events(self) -> list[SignedEvent]:
        return [self.bootstrap()] + [self.register(a) for a in self.ROLES if a != "registrar"]

    def issue(self, serial: str | None = None, producer: str = "acme", **payload) -> SignedEvent:
        return self.event(producer, "label", serial or gs1.new_serial(), "Issued", issued_payload(**payload))

    def actor_state(self, actor: str) -> ActorState:
        role, prefixes = self.ROLES[actor]
        return ActorState(actor_id=actor, role=role, name=actor, public_key=self.keys[actor].public_key, gtin_prefixes=tuple(prefixes))


def events_body(signed_events) -> dict:
    """The JSON body of ``POST /v1/events`` carrying ``signed_events``."""
    return {"events": [{"body": base64.b64encode(s.body).decode(), "signature": base64.b64encode(s.signature).decode()} for s in signed_events]}


def append_accepted(ledger, batch) -> list[str]:
    """``ledger.append(batch)``, failing unless every event was accepted; the event ids.

    A bare ``ledger.append`` in a test ignores its results: a refused set-up event
    would surface (if at all) as a puzzling failure much later.
    """
    results = ledger.append(batch)
    refused = [(r.index, r.error.code, r.error.detail) for r in results if r.status != "accepted"]
    assert not refused, f"set-up events not accepted: {refused[:3]}"
    return [r.event_id for r in results]


def signed_get(url: str, path: str, key: KeyPair | None, params=None, timeout: float = 120):
    """``GET url+path`` (``params`` as the query), signed by ``key`` (traceledger/auth.py) unless it is None."""
    import httpx

    from traceledger.auth import authorization_header

    request = httpx.Request("GET", f"{url}{path}", params=params)
    if key is not None:
        target = request.url.path + (f"?{request.url.query.decode()}" if request.url.query else "")
        request.headers["authorization"] = authorization_header(key, "GET", target)
    with httpx.Client(timeout=timeout) as client:
        return client.send(request)
