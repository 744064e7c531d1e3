"""Squad choice, pure (no database): own beat, then adjacent beats, then the nearest; never off duty."""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from dispatch.field.matching import Position, Squad, choose_squad, rank_squads, squad_position
from geo.adjacency import beat_adjacency
from geo.nearest import PointIndex

NOW = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _sq(code, beat, lon, lat, status="on_duty", open_=0, fresh=True):
    return Squad(code, beat, status, open_, Position(lon, lat, "live" if fresh else "home", 5.0, fresh))


ADJ = {"A": ("B",), "B": ("A", "C"), "C": ("B",), "D": ()}


def test_own_beat_first_when_on_duty_fresh_and_under_the_limit():
    squads = [_sq("TA", "A", 120.0, 36.0), _sq("TB", "B", 120.001, 36.0), _sq("TC", "C", 120.0001, 36.0)]
    c = choose_squad("A", 120.0, 36.0, squads, ADJ)
    assert (c.team_code, c.reason) == ("TA", "own_beat")
    assert [n.team_code for n in c.next] == ["TB", "TC"] and c.next[0].reason == "adjacent_beat"
    assert c.as_json()["chosen"]["distance_m"] == 0.0


def test_then_adjacent_then_nearest_and_never_off_duty():
    squads = [_sq("TA", "A", 120.0, 36.0, status="off_duty"), _sq("TB", "B", 120.02, 36.0, open_=3),
              _sq("TC", "C", 120.05, 36.0), _sq("TD", "D", 120.01, 36.0), _sq("TE", "E", 120.001, 36.0,
                                                                             status="busy")]
    c = choose_squad("A", 120.0, 36.0, squads, ADJ, limit=3)
    assert (c.team_code, c.reason) == ("TD", "nearest")  # B is adjacent but full; A off duty; E busy
    assert "TA" not in [n.team_code for n in c.next] and "TE" not in [n.team_code for n in c.next]
    ranked = rank_squads("A", 120.0, 36.0, squads, ADJ, with_unavailable=True)
    why = {r.team_code: r.why_not for r in ranked}
    assert why["TA"] == "off_duty" and why["TB"] == "workload"
    # Tried squads are skipped; with nobody left, the center gets it back.
    assert choose_squad("A", 120.0, 36.0, squads, ADJ, tried=frozenset({"TD", "TC"})).team_code is None


def test_a_stale_own_squad_comes_after_the_neighbours():
    squads = [_sq("TA", "A", 120.0, 36.0, fresh=False), _sq("TB", "B", 120.03, 36.0)]
    c = choose_squad("A", 120.0, 36.0, squads, ADJ)
    assert c.team_code == "TB" and c.next[0].team_code == "TA" and c.next[0].reason == "own_beat_stale"


def test_position_falls_back_to_home_then_station_and_says_so():
    fresh = squad_position((1.0, 2.0), NOW - timedelta(minutes=5), (3.0, 4.0), (5.0, 6.0), NOW, 600)
    assert (fresh.source, fresh.fresh, fresh.lon) == ("live", True, 1.0)
    stale = squad_position((1.0, 2.0), NOW - timedelta(minutes=11), (3.0, 4.0), (5.0, 6.0), NOW, 600)
    assert (stale.source, stale.fresh, stale.lon, round(stale.age_s)) == ("home", False, 3.0, 660)
    assert squad_position(None, None, None, (5.0, 6.0), NOW, 600).source == "station"
    assert squad_position(None, None, None, None, NOW, 600).source == "none"


def test_adjacency_from_polygons_includes_islands():
    def box(x0, y0, x1, y1):
        return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}
    adj = beat_adjacency([("A", box(0, 0, 1, 1)), ("B", box(1, 0, 2, 1)), ("C", box(2, 0, 3, 1)),
                          ("I", box(10, 10, 10.5, 10.5))])
    assert adj["A"] == ("B",) and adj["B"] == ("A", "C")
    assert adj["I"] and set(adj["I"]) <= {"A", "B", "C"}  # an island still has neighbours


def test_the_index_finds_what_a_scan_finds():
    rng = random.Random(7)
    pts = [(120 + rng.random() * 0.5, 36 + rng.random() * 0.4) for _ in range(3000)]
    index = PointIndex(pts)
    squads = [_sq(f"T{i}", f"B{i}", lo, la, status="on_duty" if i % 3 else "off_duty") for i, (lo, la) in
              enumerate(pts)]
    for _ in range(50):
        lon, lat = 120 + rng.random() * 0.5, 36 + rng.random() * 0.4
        fast = rank_squads(None, lon, lat, squads, {}, k=3, index=index)
        slow = rank_squads(None, lon, lat, squads, {}, k=3)
        assert [c.team_code for c in fast] == [c.team_code for c in slow]
