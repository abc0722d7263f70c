"""Regions: China's GB/T 2260 administrative division codes, and where they are.

Pure, no I/O. A code is hierarchical: 2 digits name a province (``44``
Guangdong), 4 a prefecture-level city (``4403`` Shenzhen), 6 a district
(``440305`` Nanshan). The official 6-digit form pads with zeros (``440000`` is
the province, ``440300`` the city); :func:`normalize` strips that padding so
that "a territory covers a region" is a plain prefix test.

The centroid table is deliberately small and approximate (a province's or
city's main urban centre, to ~0.05°): enough to turn a region code into a
place for the impossible-travel rule and the simulator, each with an
uncertainty radius so that a province-level place is never mistaken for a
precise one.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_CODE = re.compile(r"[0-9]{2,12}")
# A territory: one region code or several, comma-separated (``44,45``: Guangdong and Guangxi).
MAX_TERRITORY_CODES = 16
TERRITORY = re.compile(rf"[0-9]{{2,12}}(,[0-9]{{2,12}}){{0,{MAX_TERRITORY_CODES - 1}}}")
EARTH_RADIUS_KM = 6371.0088

# Uncertainty of a place, km: coarse client coordinates (2 decimals ≈ 1.1 km
# plus the phone's own error), a city centroid, a province centroid.
POINT_RADIUS_KM = 5.0
CITY_RADIUS_KM = 60.0
PROVINCE_RADIUS_KM = 400.0

# code -> (name, lat, lon, radius km or None for the level's default)
CENTROIDS: dict[str, tuple[str, float, float, float | None]] = {
    # provinces, municipalities, autonomous regions, SARs
    "11": ("Beijing", 39.90, 116.40, 80.0),
    "12": ("Tianjin", 39.13, 117.20, 80.0),
    "13": ("Hebei", 38.04, 114.51, None),
    "14": ("Shanxi", 37.87, 112.55, None),
    "15": ("Inner Mongolia", 40.84, 111.75, 1100.0),
    "21": ("Liaoning", 41.80, 123.43, None),
    "22": ("Jilin", 43.82, 125.32, None),
    "23": ("Heilongjiang", 45.80, 126.53, 600.0),
    "31": ("Shanghai", 31.23, 121.47, 60.0),
    "32": ("Jiangsu", 32.06, 118.80, None),
    "33": ("Zhejiang", 30.27, 120.15, None),
    "34": ("Anhui", 31.82, 117.23, None),
    "35": ("Fujian", 26.07, 119.30, None),
    "36": ("Jiangxi", 28.68, 115.86, None),
    "37": ("Shandong", 36.65, 117.12, None),
    "41": ("Henan", 34.75, 113.63, None),
    "42": ("Hubei", 30.59, 114.31, None),
    "43": ("Hunan", 28.23, 112.94, None),
    "44": ("Guangdong", 23.13, 113.26, None),
    "45": ("Guangxi", 22.82, 108.37, None),
    "46": ("Hainan", 20.04, 110.34, 250.0),
    "50": ("Chongqing", 29.56, 106.55, 250.0),
    "51": ("Sichuan", 30.57, 104.07, 550.0),
    "52": ("Guizhou", 26.65, 106.63, None),
    "53": ("Yunnan", 25.04, 102.71, 500.0),
    "54": ("Tibet", 29.65, 91.13, 900.0),
    "61": ("Shaanxi", 34.34, 108.94, None),
    "62": ("Gansu", 36.06, 103.83, 700.0),
    "63": ("Qinghai", 36.62, 101.78, 600.0),
    "64": ("Ningxia", 38.49, 106.23, 250.0),
    "65": ("Xinjiang", 43.83, 87.62, 1200.0),
    "71": ("Taiwan", 25.03, 121.56, 250.0),
    "81": ("Hong Kong", 22.32, 114.17, 30.0),
    "82": ("Macao", 22.20, 113.55, 10.0),
    # prefecture-level cities (the municipalities' urban districts as xx01)
    "1101": ("Beijing", 39.90, 116.40, 80.0),
    "1201": ("Tianjin", 39.13, 117.20, 80.0),
    "1301": ("Shijiazhuang", 38.04, 114.51, None),
    "1401": ("Taiyuan", 37.87, 112.55, None),
    "1501": ("Hohhot", 40.84, 111.75, None),
    "2101": ("Shenyang", 41.80, 123.43, None),
    "2102": ("Dalian", 38.91, 121.61, None),
    "2201": ("Changchun", 43.82, 125.32, None),
    "2301": ("Harbin", 45.80, 126.53, None),
    "3101": ("Shanghai", 31.23, 121.47, 60.0),
    "3201": ("Nanjing", 32.06, 118.80, None),
    "3202": ("Wuxi", 31.49, 120.31, None),
    "3205": ("Suzhou", 31.30, 120.58, None),
    "3301": ("Hangzhou", 30.27, 120.15, None),
    "3302": ("Ningbo", 29.87, 121.55, None),
    "3303": ("Wenzhou", 28.00, 120.70, None),
    "3401": ("Hefei", 31.82, 117.23, None),
    "3501": ("Fuzhou", 26.07, 119.30, None),
    "3502": ("Xiamen", 24.48, 118.09, None),
    "3601": ("Nanchang", 28.68, 115.86, None),
    "3701": ("Jinan", 36.65, 117.12, None),
    "3702": ("Qingdao", 36.07, 120.38, None),
    "4101": ("Zhengzhou", 34.75, 113.63, None),
    "4201": ("Wuhan", 30.59, 114.31, None),
    "4301": ("Changsha", 28.23, 112.94, None),
    "4401": ("Guangzhou", 23.13, 113.26, None),
    "4403": ("Shenzhen", 22.54, 114.06, None),
    "4404": ("Zhuhai", 22.27, 113.58, None),
    "4406": ("Foshan", 23.02, 113.12, None),
    "4413": ("Huizhou", 23.11, 114.42, None),
    "4419": ("Dongguan", 23.02, 113.75, None),
    "4501": ("Nanning", 22.82, 108.37, None),
    "4601": ("Haikou", 20.04, 110.34, None),
    "4602": ("Sanya", 18.25, 109.51, None),
    "5001": ("Chongqing", 29.56, 106.55, 200.0),
    "5101": ("Chengdu", 30.57, 104.07, None),
    "5201": ("Guiyang", 26.65, 106.63, None),
    "5301": ("Kunming", 25.04, 102.71, None),
    "5401": ("Lhasa", 29.65, 91.13, None),
    "6101": ("Xi'an", 34.34, 108.94, None),
    "6201": ("Lanzhou", 36.06, 103.83, None),
    "6301": ("Xining", 36.62, 101.78, None),
    "6401": ("Yinchuan", 38.49, 106.23, None),
    "6501": ("Urumqi", 43.83, 87.62, None),
    "6502": ("Karamay", 45.58, 84.89, None),
}


@dataclass(frozen=True)
class Place:
    """A point with an uncertainty radius (km) and the region code it came from."""

    lat: float
    lon: float
    radius_km: float
    region: str | None = None


def is_code(value: object) -> bool:
    """True if ``value`` looks like a GB/T 2260 code or prefix (2-12 digits)."""
    return isinstance(value, str) and bool(_CODE.fullmatch(value))


def normalize(code: str | None) -> str | None:
    """The shortest form of a code: ``440000`` -> ``44``, ``440300`` -> ``4403``.

    Codes longer than 6 digits (township ``…xxx``, village) keep their
    length; ``None`` and anything that is not a code give ``None``.
    """
    if not is_code(code):
        return None
    if len(code) > 6:
        return code
    if len(code) % 2:  # odd lengths are not GB/T 2260 levels: keep the even prefix
        code = code[:-1]
    while len(code) > 2 and code.endswith("00"):
        code = code[:-2]
    return code


def province(code: str | None) -> str | None:
    """The 2-digit province of a code (``440305`` -> ``44``)."""
    n = normalize(code)
    return n[:2] if n else None


def city(code: str | None) -> str | None:
    """The 4-digit city of a code, or the province if the code is province-level."""
    n = normalize(code)
    return n[:4] if n else None


def territory_codes(territory: str | None) -> list[str]:
    """The normalized codes of a territory (``"44,450000"`` -> ``["44", "45"]``); [] if it is none."""
    if not isinstance(territory, str) or not TERRITORY.fullmatch(territory):
        return []
    return [c for c in (normalize(part) for part in territory.split(",")) if c]


def covers(territory: str | None, region: str | None) -> bool | None:
    """Does ``territory`` (one code or several, comma-separated) include ``region``?

    True if the region lies inside it, False if outside, None when it cannot
    be told: no territory or region, or a region coarser than the territory
    that overlaps it (a scan known only as "Guangdong" for a Shenzhen
    territory). Callers alert only on False.
    """
    r = normalize(region)
    codes = territory_codes(territory)
    if not codes or r is None:
        return None
    if any(r.startswith(t) for t in codes):
        return True
    if any(t.startswith(r) for t in codes):
        return None
    return False


def territory_name(territory: str | None) -> str | None:
    """A readable name of a territory: its codes' names, comma-separated."""
    names = [name(c) or c for c in territory_codes(territory)]
    return ", ".join(names) if names else None


def name(code: str | None) -> str | None:
    """A readable name for the most specific known level of ``code``."""
    n = normalize(code)
    while n:
        if n in CENTROIDS:
            return CENTROIDS[n][0]
        n = n[:-2] if len(n) > 2 else ""
    return None


def centroid(code: str | None) -> Place | None:
    """The place of the most specific known level of ``code`` (None if unknown)."""
    n = normalize(code)
    while n:
        if len(n) <= 6 and n in CENTROIDS:
            _, lat, lon, radius = CENTROIDS[n]
            default = PROVINCE_RADIUS_KM if len(n) == 2 else CITY_RADIUS_KM
            return Place(lat, lon, radius or default, n)
        n = n[:-2] if len(n) > 2 else ""
    return None


def place_of(region: str | None, lat: float | None, lon: float | None) -> Place | None:
    """Where a scan happened: its coordinates if given, else its region's centroid."""
    if lat is not None and lon is not None:
        return Place(float(lat), float(lon), POINT_RADIUS_KM, normalize(region))
    return centroid(region)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def distance_km(a: Place, b: Place) -> float:
    """Centre-to-centre distance of two places."""
    return haversine_km(a.lat, a.lon, b.lat, b.lon)


def min_distance_km(a: Place, b: Place) -> float:
    """The least distance consistent with both places' uncertainty (never negative)."""
    return max(0.0, distance_km(a, b) - a.radius_km - b.radius_km)
