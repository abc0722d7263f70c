"""Where an EPCIS webhook may deliver, and how a delivery is signed: the guard against server-side request forgery.

A webhook subscription makes this server connect to a URL its subscriber chose. Unguarded,
that turns the API into a tool for reaching what only the server can reach (the database's
port, a cloud metadata address, an admin interface on localhost). So :func:`check_target`:

- accepts ``https`` only, or ``http`` when the operator allows it
  (``TRACELEDGER_EPCIS_WEBHOOK_HTTP=1``; tests and closed networks), no user:password part,
  a host name or address, a port of 1-65535, at most :data:`MAX_URL` characters;
- resolves the host and refuses it unless EVERY address it resolves to is a public unicast
  address (not loopback, private, link-local, shared, multicast, reserved or unspecified,
  IPv4-mapped IPv6 unwrapped first), except addresses inside the operator's allow-list
  (``TRACELEDGER_EPCIS_WEBHOOK_ALLOW``, CIDRs);
- returns the checked addresses, and the deliverer connects to one of THOSE (the Host header
  and TLS name stay the URL's), so a name that resolves differently a moment later (DNS
  rebinding) cannot steer a delivery elsewhere. It checks again before every delivery.

Redirects are never followed (a 3xx is a failed attempt): a redirect would lead around
the check. Each delivery is signed (:func:`signature`) with the subscription's own secret:
``TraceLedger-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``, so
the receiver can authenticate it and refuse an old one replayed (:func:`verify`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from ledger.errors import Refused

MAX_URL = 2000
SIGNATURE_HEADER = "TraceLedger-Signature"
MAX_SIGNATURE_AGE = 300  # seconds a receiver should accept a delivery's timestamp (verify's default)


@dataclass(frozen=True)
class Target:
    """A checked webhook URL: where to connect (a checked address) and what to name (host, port, path)."""

    url: str
    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


def refused(detail: str) -> Refused:
    return Refused("forbidden_destination", detail, field="dest")


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (A and AAAA)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise refused(f"{host[:100]} does not resolve ({exc})") from None
    return sorted({info[4][0] for info in infos})


def public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A global unicast address: nothing only this server (or its network) can reach."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_unspecified)


def allowed(address: str, allow: tuple[str, ...]) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return public(ip) or any(ip in ipaddress.ip_network(net, strict=False) for net in allow)


def check_target(url: str, *, allow: tuple[str, ...] = (), http: bool = False, resolver=resolve) -> Target:
    """``url`` as a :class:`Target` this server may deliver to; :class:`Refused` (``forbidden_destination``) otherwise."""
    if not isinstance(url, str) or len(url) > MAX_URL or any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise refused(f"dest must be a URL of at most {MAX_URL} characters without spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise refused("dest is not a URL") from None
    if parts.scheme not in (("https", "http") if http else ("https",)):
        raise refused("dest must be an https URL" + (" (or http)" if http else ""))
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise refused("dest must not carry a user name or password")
    host = parts.hostname
    if not host:
        raise refused("dest names no host")
    port = port or (443 if parts.scheme == "https" else 80)
    addresses = resolver(host, port)
    if not addresses:
        raise refused(f"{host[:100]} does not resolve")
    blocked = [a for a in addresses if not allowed(a, allow)]
    if blocked:
        raise refused(f"{host[:100]} resolves to {blocked[0]}, a loopback, private, link-local or reserved address: "
                      "webhooks deliver to public addresses only (an operator may allow networks)")
    return Target(url, parts.scheme, host, port, tuple(addresses))


def signature(secret: bytes, body: bytes, at: int | None = None) -> str:
    """The ``TraceLedger-Signature`` value of a delivery of ``body`` at unix time ``at`` (now)."""
    t = int(time.time()) if at is None else at
    mac = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: bytes, body: bytes, header: str, *, now: int | None = None, max_age: int = MAX_SIGNATURE_AGE) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``max_age`` seconds (what a receiver checks)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        t = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs((int(time.time()) if now is None else now) - t) > max_age:
        return False
    expected = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields.get("v1", ""))
