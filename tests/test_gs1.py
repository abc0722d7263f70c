import re

import pytest

from ledger import gs1
from ledger.errors import Refused


@pytest.mark.parametrize("valid", ["4006381333931", "96385074", "036000291452", "10614141000415", "6901234567892"])
def test_known_gtins_validate(valid):
    assert gs1.normalize_gtin(valid) == valid.zfill(14)


@pytest.mark.parametrize("bad", ["4006381333932", "123", "40063813339310000", "40063813339a1", "", "６９０１２３４５６７８９２"])
def test_bad_gtins_are_refused_naming_the_field(bad):
    with pytest.raises(Refused) as err:
        gs1.normalize_gtin(bad)
    assert err.value.field == "gtin"


def test_serials_are_20_crockford_chars_from_100_random_bits():
    serials = {gs1.new_serial() for _ in range(20000)}
    assert len(serials) == 20000
    assert all(re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{20}", s) for s in serials)
    # Every position takes many values: nothing sequential or fixed.
    for pos in range(20):
        assert len({s[pos] for s in serials}) >= (8 if pos == 0 else 30)


def test_serial_fits_ai21():
    gs1.validate_serial(gs1.new_serial())
    for bad in ["", "A" * 21, "has space", "emoji🙂", "nul\x00"]:
        with pytest.raises(Refused):
            gs1.validate_serial(bad)


def test_digital_link_uri():
    assert gs1.digital_link_uri("4006381333931", "ABC123", "id.example") == "https://id.example/01/04006381333931/21/ABC123"
    assert gs1.digital_link_uri("4006381333931", "A/B", "id.example").endswith("/21/A%2FB")


def test_lot_key_round_trip():
    key = gs1.lot_key("4006381333931", "L-1")
    assert key == "04006381333931/L-1"
    assert gs1.split_lot_key(key) == ("04006381333931", "L-1")
