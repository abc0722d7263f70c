"""GB/T 2260 region codes: normalization, coverage, places and distances (pure)."""

from __future__ import annotations

import pytest

from ledger import regions


@pytest.mark.parametrize("code, expected", [
    ("440000", "44"), ("440300", "4403"), ("440305", "440305"), ("44", "44"), ("4403", "4403"),
    ("440305001", "440305001"), (None, None), ("x1", None), ("4", None),
])
def test_normalize_strips_zero_padding(code, expected):
    assert regions.normalize(code) == expected


@pytest.mark.parametrize("territory, region, expected", [
    ("44", "440305", True),       # Shenzhen Nanshan is in Guangdong
    ("440000", "440305", True),   # padded province form
    ("4403", "440300", True),
    ("4403", "440100", False),    # Guangzhou is not Shenzhen
    ("44", "310101", False),      # Shanghai is not Guangdong
    ("4403", "44", None),         # only "somewhere in Guangdong": cannot tell
    ("44", None, None),
    (None, "440305", None),
])
def test_covers_is_a_prefix_test_with_an_undecidable_case(territory, region, expected):
    assert regions.covers(territory, region) is expected


def test_province_and_city():
    assert regions.province("440305") == "44" and regions.city("440305") == "4403"
    assert regions.city("44") == "44"


def test_centroid_falls_back_to_the_most_specific_known_level():
    nanshan = regions.centroid("440305")  # district not in the table: Shenzhen's centroid
    assert nanshan.region == "4403" and nanshan.radius_km == regions.CITY_RADIUS_KM
    gd = regions.centroid("449900")       # unknown city: the province, with a wide radius
    assert gd.region == "44" and gd.radius_km == regions.PROVINCE_RADIUS_KM
    assert regions.centroid("99") is None and regions.centroid(None) is None
    assert regions.name("440305") == "Shenzhen"


def test_place_prefers_coordinates():
    p = regions.place_of("440305", 22.54, 113.93)
    assert (p.lat, p.lon, p.radius_km) == (22.54, 113.93, regions.POINT_RADIUS_KM)
    assert regions.place_of("440305", None, None).region == "4403"
    assert regions.place_of(None, None, None) is None


def test_haversine_known_distances():
    # Shanghai - Beijing ~1070 km, Shenzhen - Guangzhou ~105 km, Shenzhen - Urumqi ~3300 km
    sh, bj = regions.centroid("3101"), regions.centroid("1101")
    assert 1040 < regions.distance_km(sh, bj) < 1100
    assert 90 < regions.distance_km(regions.centroid("4403"), regions.centroid("4401")) < 120
    assert 3200 < regions.distance_km(regions.centroid("4403"), regions.centroid("6501")) < 3400
    assert regions.haversine_km(10, 20, 10, 20) == 0


def test_min_distance_subtracts_both_uncertainties():
    sz, gz = regions.centroid("4403"), regions.centroid("4401")
    assert regions.min_distance_km(sz, gz) == pytest.approx(max(0, regions.distance_km(sz, gz) - 120))
    assert regions.min_distance_km(regions.centroid("65"), regions.centroid("6501")) == 0
