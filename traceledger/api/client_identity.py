"""Who an anonymous request comes from: the one place that decides a shopper's client identity.

The client is the connecting address, unless the connecting peer is a trusted
proxy (``Settings.trusted_proxies``; loopback by default, so the local stack,
tests and load generators can stand in for many clients): then it is the
address that proxy put in ``X-Forwarded-For``. The header is read from the
right: each trusted proxy appends the address it saw, so the right-most
address that is not a trusted proxy is the first one no trusted party vouches
past. Everything to its left was written by the client itself and could be
anything, which is why the left-most entry is never believed. An untrusted peer's
``X-Forwarded-For`` is ignored entirely.

Identities are keyed pseudonyms (:func:`ledger.channel_state.client_key`): an
address (``ip:``), an SMS sender (``sms:``: the number together with the
gateway's own client, so one gateway's numbers never collide with
another's), a caller (``tel:``, likewise).

Each identity also carries the place the server stands behind for it
(:class:`ledger.places.Placed`): the region of the address, or of the number's
prefix for SMS senders and callers (the SMS gateway's own address says where
the provider's servers are, not the phone), from the configured table
(``TRACELEDGER_REGION_TABLE``). Scans accepted for the client record that place.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from starlette.requests import HTTPConnection

from ledger import channel_state, places

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def trusted_networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def is_trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False  # not an address (junk in a header): never a trusted proxy
    return any(ip in net for net in networks)


def client_address(peer: str | None, forwarded_for: str | None, networks: tuple[Network, ...]) -> str:
    """The client's address: ``peer``, or the right-most untrusted ``X-Forwarded-For`` hop behind trusted proxies."""
    address = peer or "-"
    if not forwarded_for or not is_trusted(address, networks):
        return address
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    while hops and is_trusted(address, networks):
        address = hops.pop()[:64]
    return address


def address_of(conn: HTTPConnection) -> str:
    """The client address of a request (see the module docstring)."""
    networks = trusted_networks(conn.app.state.settings.trusted_proxies)
    peer = conn.client.host if conn.client else None
    return client_address(peer, conn.headers.get("x-forwarded-for"), networks)


def pseudonym(conn: HTTPConnection, kind: str, raw: str) -> str:
    """The keyed pseudonym (:func:`ledger.channel_state.client_key`) of an address, number or session."""
    return channel_state.client_key(conn.app.state.channel_secret, kind, raw)


def region_table(conn: HTTPConnection) -> places.Table:
    return places.load(conn.app.state.settings.region_table)


def client_of(conn: HTTPConnection) -> places.Placed:
    """The client a request comes from, as a pseudonym: what limits and public counts are kept per; placed by its address."""
    address = address_of(conn)
    return places.Placed(pseudonym(conn, "ip", address), region_table(conn).of_address(address), places.FROM_ADDRESS)


def sender_of(conn: HTTPConnection, kind: str, number: str) -> places.Placed:
    """An SMS sender (``kind`` ``sms``) or caller (``tel``): the number as sent by the gateway that is the client; placed by the number."""
    return places.Placed(pseudonym(conn, kind, f"{address_of(conn)}|{number}"), region_table(conn).of_number(number), places.FROM_NUMBER)
