"""Choosing a squad for a visit (派单): pure functions on plain data, no database.

Order (domain.md "Choosing a squad"): the lead's own beat's squad when it is on duty, under its
workload limit and its location is fresh; else the squads of adjacent beats (nearest first);
else the nearest available squad by haversine. Off-duty and busy squads never get offers.
Every choice says why, and which squads come next, so the screen can show them."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from geo.distance import haversine_m
from geo.nearest import PointIndex


@dataclass(frozen=True, slots=True)
class Position:
    lon: float | None
    lat: float | None
    source: str  # live | home | station | none
    age_s: float | None  # age of the live fix (also when it is stale and not used)
    fresh: bool


def squad_position(last: tuple[float, float] | None, last_at: datetime | None, home: tuple[float, float] | None,
                   station: tuple[float, float] | None, now: datetime, stale_after_s: float) -> Position:
    """The live fix when it is fresh; else the squad's home, else its beat's station — and say so."""
    age = (now - last_at).total_seconds() if last is not None and last_at is not None else None
    if last is not None and age is not None and age <= stale_after_s:
        return Position(last[0], last[1], "live", age, True)
    for where, source in ((home, "home"), (station, "station")):
        if where is not None and where[0] is not None:
            return Position(where[0], where[1], source, age, False)
    return Position(None, None, "none", age, False)


@dataclass(frozen=True, slots=True)
class Squad:
    code: str
    beat_code: str | None
    status: str  # on_duty | off_duty | busy
    open_assignments: int
    position: Position
    district_code: str | None = None  # the district of the city the squad serves


def of_district(squads: list[Squad], district_code: str | None) -> list[Squad]:
    """The squads that may be sent to a lead of `district_code`: its own district's (a lead of the
    city center, no district, may have any)."""
    if district_code is None:
        return squads
    return [q for q in squads if q.district_code in (None, district_code)]


@dataclass(frozen=True, slots=True)
class Candidate:
    team_code: str
    reason: str  # own_beat | adjacent_beat | nearest
    available: bool
    why_not: str | None  # off_duty | busy | workload | tried | None
    distance_m: float | None
    on_duty: bool
    open_assignments: int
    position: str
    location_age_s: float | None

    def as_json(self) -> dict:
        d = asdict(self)
        if d["distance_m"] is not None:
            d["distance_m"] = round(d["distance_m"], 1)
        if d["location_age_s"] is not None:
            d["location_age_s"] = round(d["location_age_s"], 1)
        return d


@dataclass(frozen=True, slots=True)
class Choice:
    team_code: str | None
    reason: str  # own_beat | adjacent_beat | nearest | none_available
    chosen: Candidate | None
    next: tuple[Candidate, ...]

    def as_json(self) -> dict:
        return {"team_code": self.team_code, "reason": self.reason,
                "chosen": self.chosen.as_json() if self.chosen else None,
                "next": [c.as_json() for c in self.next]}


def _why_not(s: Squad, limit: int, tried: frozenset[str]) -> str | None:
    if s.code in tried:
        return "tried"
    if s.status == "off_duty":
        return "off_duty"
    if s.status != "on_duty":
        return "busy"
    if s.open_assignments >= limit:
        return "workload"
    return None


def _candidate(s: Squad, reason: str, why_not: str | None, lon: float | None, lat: float | None) -> Candidate:
    p = s.position
    d = haversine_m(lon, lat, p.lon, p.lat) if lon is not None and p.lon is not None else None
    return Candidate(s.code, reason, why_not is None, why_not, d, s.status == "on_duty", s.open_assignments,
                     p.source, p.age_s)


def rank_squads(beat_code: str | None, lon: float | None, lat: float | None, squads: Sequence[Squad],
                adjacency: Mapping[str, Sequence[str]], *, limit: int = 3, tried: frozenset[str] = frozenset(),
                k: int = 4, index: PointIndex | None = None, with_unavailable: bool = False) -> list[Candidate]:
    """The best `k` available squads, best first (and, with `with_unavailable`, the own-beat and
    adjacent squads that cannot take it, with why). `index` (a PointIndex over `squads`' positions,
    same order) makes the nearest search sub-linear at city scale."""
    out: list[Candidate] = []
    taken: set[str] = set()
    unavailable: list[Candidate] = []

    def consider(s: Squad, reason: str, fresh_required: bool) -> None:
        why = _why_not(s, limit, tried)
        if why is None and fresh_required and not s.position.fresh:
            why = "stale_location"
        c = _candidate(s, reason, why, lon, lat)
        taken.add(s.code)
        (out if why is None else unavailable).append(c)

    own = [s for s in squads if beat_code is not None and s.beat_code == beat_code]
    for s in own:
        consider(s, "own_beat", True)
    neighbours = set(adjacency.get(beat_code, ())) if beat_code else set()
    adjacent = [_candidate(s, "adjacent_beat", None, lon, lat) for s in squads if s.beat_code in neighbours]
    order = {c.team_code: (c.distance_m if c.distance_m is not None else float("inf"), c.team_code)
             for c in adjacent}
    for s in sorted((s for s in squads if s.beat_code in neighbours), key=lambda s: order[s.code]):
        consider(s, "adjacent_beat", False)
    # An own-beat squad that is only stale is still a candidate: after the neighbours, by distance.
    stale_own = [c for c in unavailable if c.why_not == "stale_location"]
    need = k - len(out)
    if need > 0:
        free = [i for i, s in enumerate(squads) if s.code not in taken and _why_not(s, limit, tried) is None]
        if lon is None:
            nearest = [(None, i) for i in sorted(free, key=lambda i: squads[i].code)[:need]]
        elif index is not None:
            ok = set(free)
            nearest = index.nearest(lon, lat, k=need, accept=ok.__contains__)
        else:
            nearest = sorted((haversine_m(lon, lat, squads[i].position.lon, squads[i].position.lat), i)
                             for i in free if squads[i].position.lon is not None)[:need]
            if len(nearest) < need:  # squads with no position at all come last
                nearest += [(None, i) for i in free if squads[i].position.lon is None][:need - len(nearest)]
        near = [_candidate(squads[i], "nearest", None, lon, lat) for _d, i in nearest]
        for c in stale_own:  # merge: by distance, the stale own squad among the nearest
            c2 = Candidate(**{**asdict(c), "available": True, "why_not": None, "reason": "own_beat_stale"})
            near.append(c2)
        near.sort(key=lambda c: (c.distance_m if c.distance_m is not None else float("inf"), c.team_code))
        out.extend(near)
    out = out[:k]
    if with_unavailable:
        out.extend(c for c in unavailable if c.why_not != "stale_location" or c.team_code not in
                   {x.team_code for x in out})
    return out


def choose_squad(beat_code: str | None, lon: float | None, lat: float | None, squads: Sequence[Squad],
                 adjacency: Mapping[str, Sequence[str]], *, limit: int = 3, tried: frozenset[str] = frozenset(),
                 next_n: int = 3, index: PointIndex | None = None) -> Choice:
    """The squad to offer a visit to, why, and the next candidates (for the screen and the next offer)."""
    ranked = rank_squads(beat_code, lon, lat, squads, adjacency, limit=limit, tried=tried, k=next_n + 1,
                         index=index)
    if not ranked:
        return Choice(None, "none_available", None, ())
    return Choice(ranked[0].team_code, ranked[0].reason, ranked[0], tuple(ranked[1:]))
