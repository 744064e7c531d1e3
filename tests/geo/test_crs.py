import math
import random

import pytest

from geo.crs import CRS, from_wgs84, to_wgs84
from geo.distance import haversine_m

# Published fixtures of wandergis/coordtransform (test/app.js), reproduced by many ports.
TIANANMEN = (116.404, 39.915)
TIANANMEN_WGS_TO_GCJ = (116.41024449916938, 39.91640428150164)
TIANANMEN_GCJ_TO_BD = (116.41036949371029, 39.92133699351021)


def test_crs_values_are_the_wire_names():
    assert [c.value for c in CRS] == ["wgs84", "gcj02", "bd09"]
    assert CRS("gcj02") is CRS.gcj02
    with pytest.raises(ValueError):
        CRS("cgcs2000")


def test_wgs84_to_gcj02_matches_published_pair():
    lon, lat = from_wgs84(*TIANANMEN, CRS.gcj02)
    assert lon == pytest.approx(TIANANMEN_WGS_TO_GCJ[0], abs=1e-9)
    assert lat == pytest.approx(TIANANMEN_WGS_TO_GCJ[1], abs=1e-9)
    # and the precise inverse lands back on the WGS-84 point
    back = to_wgs84(*TIANANMEN_WGS_TO_GCJ, "gcj02")
    assert back == pytest.approx(TIANANMEN, abs=1e-7)


def test_bd09_matches_published_gcj02_pair():
    # BD-09 (116.41037, 39.92134) is GCJ-02 (116.404, 39.915): both must give the same WGS-84.
    via_bd = to_wgs84(*TIANANMEN_GCJ_TO_BD, CRS.bd09)
    via_gcj = to_wgs84(*TIANANMEN, CRS.gcj02)
    assert via_bd == pytest.approx(via_gcj, abs=1e-7)
    assert from_wgs84(*via_gcj, "bd09") == pytest.approx(TIANANMEN_GCJ_TO_BD, abs=1e-7)


def test_offset_near_qingdao_is_hundreds_of_metres():
    # why this module exists: the GCJ-02 offset is bigger than a beat
    glon, glat = from_wgs84(120.38, 36.07, "gcj02")
    assert 300 < haversine_m(120.38, 36.07, glon, glat) < 700


@pytest.mark.parametrize("crs", [CRS.gcj02, CRS.bd09])
def test_round_trip_is_precise_across_the_district(crs):
    rnd = random.Random(7)
    worst = 0.0
    for _ in range(2000):  # ±0.45 deg: the 40 km benchmark district around 120.38E 36.07N
        lon, lat = 120.38 + rnd.uniform(-0.45, 0.45), 36.07 + rnd.uniform(-0.45, 0.45)
        back = to_wgs84(*from_wgs84(lon, lat, crs), crs)
        worst = max(worst, abs(back[0] - lon), abs(back[1] - lat))
    assert worst < 1e-7, f"worst round-trip error {worst:.2e} deg"


def test_wgs84_is_identity():
    assert to_wgs84(120.3483933, 36.0472158, "wgs84") == (120.3483933, 36.0472158)
    assert from_wgs84(120.3483933, 36.0472158, CRS.wgs84) == (120.3483933, 36.0472158)


def test_outside_china_gcj02_is_left_as_is_but_bd09_offset_still_applies():
    paris = (2.3522, 48.8566)
    assert to_wgs84(*paris, "gcj02") == paris
    assert from_wgs84(*paris, "gcj02") == paris
    bd = from_wgs84(*paris, "bd09")
    assert haversine_m(*paris, *bd) > 100
    assert to_wgs84(*bd, "bd09") == pytest.approx(paris, abs=1e-7)


def test_haversine_known_distances():
    assert haversine_m(120.38, 36.07, 120.38, 36.07) == 0.0
    # one degree of latitude on the mean sphere: 2πR/360
    assert haversine_m(120.0, 36.0, 120.0, 37.0) == pytest.approx(111_195.08, abs=0.01)
    # along a parallel the great circle is the chord formula 2R·asin(cos φ · sin(Δλ/2))
    along = 2 * 6_371_008.8 * math.asin(math.cos(math.radians(36)) * math.sin(math.radians(0.5)))
    assert haversine_m(120.0, 36.0, 121.0, 36.0) == pytest.approx(along, abs=1e-6)
    assert haversine_m(0.0, 0.0, 180.0, 0.0) == pytest.approx(math.pi * 6_371_008.8, abs=1e-6)
    assert haversine_m(1.0, 2.0, 3.0, 4.0) == haversine_m(3.0, 4.0, 1.0, 2.0)
