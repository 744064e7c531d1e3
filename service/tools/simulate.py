"""A generator of our own: realistic leads for an imported district and, over simulated time, what
happens to them (calls, visits, callbacks, cases), seeded and reproducible.

Two ways to use it:
- `simulate_live.run_live`: drive a running server through the HTTP API only (the demo): push leads
  and cases, post call results and callbacks at simulated time, `speed` times faster than the wall clock.
- `simulate_bulk.bulk_load`: write millions of placed, tiered, worked leads straight into PostgreSQL
  with COPY (the benchmark). No lead_event rows: the audit trail is for real work, not for fixtures.

Proportions follow domain.md and public practice: sources, fraud types, risk and residency mixes,
all three coordinate systems, ~3% duplicates, ~3% defects, ~6% repeat warnings of a person,
about 40% of calls refused or unanswered, a few post-warning cases (预警后发案)."""
from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
import shapely
from shapely.geometry import Point, shape

from dispatch.enums import FraudType
from geo.crs import from_wgs84
from service.core.clock import CENTER_TZ, iso

W = dict[str, float]
SOURCES: W = {"national_platform": 35, "provincial_center": 20, "bank_fund_monitor": 15, "hotline_96110": 20,
              "alarm_110": 10}
SOURCE_PREFIX = {"national_platform": "NP", "provincial_center": "PC", "bank_fund_monitor": "BF",
                 "hotline_96110": "HL", "alarm_110": "AL"}
WARNING_TYPES: dict[str, W] = {
    "national_platform": {"fraud_call": 40, "fraud_sms": 20, "fraud_app": 25, "fraud_url": 15},
    "provincial_center": {"fraud_call": 35, "fraud_sms": 20, "fraud_app": 25, "fraud_url": 20},
    "bank_fund_monitor": {"fund_transfer": 100},
    "hotline_96110": {"fraud_call": 60, "citizen_report": 40},
    "alarm_110": {"citizen_report": 70, "fraud_call": 30},
}
FRAUD_TYPES: W = {"order_brushing": 20, "fake_investment": 14, "impersonate_customer_service": 12, "fake_loan": 10,
                  "impersonate_acquaintance": 8, "online_shopping": 8, "impersonate_authority": 8,
                  "online_dating": 6, "game_trading": 5, "fake_credit_repair": 3, "ticket_refund": 3, "other": 3}
RESIDENCY: W = {"resident": 55, "worker": 15, "transient": 8, "nonlocal": 15, "unknown": 7}
CRS: W = {"wgs84": 35, "gcj02": 50, "bd09": 15}
KINDS: W = {"gps": 60, "cell": 30, "address": 10}
# A failed call: about 40% of warning calls are refused or unanswered (domain.md).
CALL_FAILURES: W = {"no_answer": 45, "rejected": 30, "busy": 10, "powered_off": 10, "invalid_number": 5}
CLOSE_OUTCOMES: W = {"dissuaded": 80, "refused": 4, "not_reached": 5, "already_defrauded": 3, "false_alarm": 6,
                     "duplicate": 2}
MOBILE_PREFIXES = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155",
                   "156", "157", "158", "159", "166", "175", "176", "177", "178", "180", "181", "182", "185",
                   "186", "187", "188", "189", "191", "198", "199")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红鹏飞建国志强文辉立新海燕凤宇浩然子轩梓涵欣怡"
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def pick(rng: random.Random, weights: W) -> str:
    return rng.choices(list(weights), list(weights.values()))[0]


# ---------------------------------------------------------------- the district
def _geometry(doc: dict):
    """A GeoJSON geometry, Feature or FeatureCollection as one shapely geometry."""
    kind = doc.get("type")
    if kind == "FeatureCollection":
        return shapely.unary_union([_geometry(f) for f in doc["features"]])
    if kind == "Feature":
        return shape(doc["geometry"])
    return shape(doc)


@dataclass
class Area:
    """What the generator needs of an imported district: beats (code, street, polygon, squad)."""
    region: str
    beats: list[tuple[str, str, object, str | None]]  # code, street_code, shapely geometry, team code
    outline: object
    weights: list[float] = field(default_factory=list)

    @classmethod
    def from_rows(cls, district_code: str, district_geometry: dict, beats: list[tuple[str, str, dict]],
                  teams: dict[str, str]) -> Area:
        geoms = [(code, street, shape(g), teams.get(code)) for code, street, g in beats]
        for _c, _s, g, _t in geoms:
            shapely.prepare(g)  # fast contains() when sampling points
        return cls(district_code, geoms, _geometry(district_geometry), [g.area for _c, _s, g, _t in geoms])

    @classmethod
    def from_beats_geojson(cls, fc: dict) -> Area:
        """From GET /api/v1/geo/beats (live mode needs nothing but the HTTP API). The outline is the
        union of the beats; the region code is the leading digits of the street codes."""
        beats = [(f["properties"]["code"], f["properties"]["street_code"], f["geometry"]) for f in fc["features"]]
        if not beats:
            raise LookupError("the server has no beats: import a district first")
        outline = shapely.unary_union([shape(g) for _c, _s, g in beats])
        region = "".join(itertools.takewhile(str.isdigit, beats[0][1]))[:6] or "000000"
        return cls.from_rows(region, shapely.geometry.mapping(outline), beats, {})

    @classmethod
    def load(cls, session) -> Area:
        from sqlalchemy import text
        d = session.execute(text("SELECT code, geometry FROM district ORDER BY imported_at DESC LIMIT 1")).first()
        if d is None:
            raise LookupError("no district imported: run `quanzu import-district DIR`")
        beats = [tuple(r) for r in session.execute(text("SELECT code, street_code, geometry FROM beat ORDER BY code"))]
        teams = dict(session.execute(text("SELECT beat_code, code FROM team WHERE beat_code IS NOT NULL")).all())
        return cls.from_rows(d.code, d.geometry, beats, teams)


@dataclass
class Person:
    phone: str
    name: str
    id_number: str | None
    residency: str
    home: int  # beat index


@dataclass
class SimLead:
    """One generated push and what really is the case (for the outcomes that follow)."""
    wire: dict
    at: datetime
    person: Person
    beat: int | None  # index into Area.beats; None outside the district
    lon: float  # WGS-84 truth
    lat: float
    kind: str  # ok | duplicate | defect


class Generator:
    """Seeded: the same seed, area and start give the same leads and outcomes."""

    def __init__(self, area: Area, seed: int = 7, start: datetime | None = None, per_day: float = 80.0,
                 first_seq: int = 1):
        self.area, self.rng = area, random.Random(seed)
        self.start = start or datetime(2026, 10, 1, tzinfo=CENTER_TZ)
        self.per_day = per_day
        self.people: list[Person] = []
        self.phones: set[str] = set()
        self.seq = itertools.count(first_seq)  # source and case ids; a later run starts higher
        minx, miny, maxx, maxy = area.outline.bounds
        self._box = (minx, miny, maxx, maxy)

    # -- people
    def _phone(self) -> str:
        while True:
            p = self.rng.choice(MOBILE_PREFIXES) + f"{self.rng.randrange(10**8):08d}"
            if p not in self.phones:
                self.phones.add(p)
                return p

    def _id_number(self) -> str:
        r = self.rng
        born = datetime(1940, 1, 1) + timedelta(days=r.randrange(365 * 66))
        body = f"{self.area.region[:6]:0<6}{born:%Y%m%d}{r.randrange(1000):03d}"
        total = sum(int(c) * w for c, w in zip(body, _ID_WEIGHTS))
        return body + "10X98765432"[total % 11]

    def person(self) -> Person:
        r = self.rng
        if self.people and r.random() < 0.06:  # warned again: a repeat target
            return r.choice(self.people)
        p = Person(self._phone(), r.choice(SURNAMES) + "".join(r.choices(GIVEN, k=r.choice((1, 2)))),
                   self._id_number() if r.random() < 0.7 else None, pick(r, RESIDENCY),
                   r.choices(range(len(self.area.beats)), self.area.weights)[0])
        self.people.append(p)
        return p

    # -- places
    def point_in(self, beat: int, exact: bool = True) -> tuple[float, float]:
        g = self.area.beats[beat][2]
        minx, miny, maxx, maxy = g.bounds
        for _ in range(50):
            x, y = self.rng.uniform(minx, maxx), self.rng.uniform(miny, maxy)
            if not exact or g.contains(Point(x, y)):
                return x, y
        p = g.representative_point()
        return p.x, p.y

    def outside(self) -> tuple[float, float]:
        minx, miny, maxx, maxy = self._box
        w, h = maxx - minx, maxy - miny
        ang = self.rng.random() * 6.283
        return (minx + maxx) / 2 + w * (1.2 + self.rng.random()) * math.cos(ang), \
            (miny + maxy) / 2 + h * (1.2 + self.rng.random()) * math.sin(ang)

    # -- leads
    def lead(self, at: datetime, exact: bool = True) -> SimLead:
        r = self.rng
        n = next(self.seq)
        src = pick(r, SOURCES)
        wtype = pick(r, WARNING_TYPES[src])
        person = self.person()
        out = r.random() < 0.05
        beat = None if out else (person.home if r.random() < 0.6 else
                                 r.choices(range(len(self.area.beats)), self.area.weights)[0])
        lon, lat = self.outside() if beat is None else self.point_in(beat, exact)
        crs = pick(r, CRS)
        rlon, rlat = from_wgs84(lon, lat, crs)
        fund = wtype == "fund_transfer"
        risk = 1 if fund or (wtype == "fraud_call" and r.random() < 0.35) else (2 if r.random() < 0.55 else 3)
        wire = {
            "source": src, "source_id": f"{SOURCE_PREFIX[src]}{at.astimezone(CENTER_TZ):%Y%m%d}{n:07d}",
            "pushed_at": iso(at, "seconds"), "warning_type": wtype,
            "fraud_type": pick(r, FRAUD_TYPES), "risk_level": risk,
            "subject": {"phone": person.phone, "name": person.name, "id_number": person.id_number,
                        "residency": person.residency},
            "counterpart": {"account": f"62{r.randrange(10**16):016d}"} if fund else
            {"phone": f"+855{r.randrange(10**8):08d}"},
            "amount_cny": round(r.lognormvariate(8.5, 1.2), 2) if fund or r.random() < 0.1 else None,
            "location": {"lon": round(rlon, 7), "lat": round(rlat, 7), "crs": crs,
                         "accuracy_m": r.choice((5, 10, 15, 30, 50, 200, 500)), "kind": pick(r, KINDS)},
            "ongoing": wtype == "fraud_call" and r.random() < 0.1,
        }
        kind = "ok"
        if r.random() < 0.03:
            wire["location"] = None  # placed by residence, or left to the center
        x = r.random()
        if x < 0.02:  # hard defects: the push is refused
            kind = "defect"
            k = r.randrange(4)
            if k == 0:
                wire["subject"]["phone"] = wire["subject"]["phone"][:7]
            elif k == 1:
                wire["risk_level"] = 7
            elif k == 2:
                wire["source_id"] = ""
            elif wire["location"]:
                wire["location"]["crs"] = "epsg:3857"
            else:
                wire["pushed_at"] = "yesterday"
        elif x < 0.03:  # soft defects: accepted and flagged
            if person.id_number and r.random() < 0.5:
                wire["subject"]["id_number"] = person.id_number[:-1] + ("0" if person.id_number[-1] != "0" else "1")
            else:
                wire["fraud_type"] = "刷单返利"
        return SimLead(wire, at, person, beat, lon, lat, kind)

    def leads(self, n: int) -> Iterator[SimLead]:
        """n pushes spread over time at `per_day`, with ~3% pushed twice (duplicates)."""
        at = self.start
        mean_gap = 86400.0 / self.per_day
        made = 0
        while made < n:
            at += timedelta(seconds=self.rng.expovariate(1 / mean_gap))
            lead = self.lead(at)
            yield lead
            made += 1
            if made < n and self.rng.random() < 0.03:
                yield SimLead(orjson.loads(orjson.dumps(lead.wire)), at + timedelta(seconds=self.rng.randint(1, 600)),
                              lead.person, lead.beat, lead.lon, lead.lat, "duplicate")
                made += 1

    # -- what happens next
    def calls(self, lead: SimLead, tier_response: list[str]) -> list[tuple[float, str]]:
        """(seconds after received, result) of the center's calls: until connected, at most 3."""
        if "call" not in tier_response:
            return []
        out, t = [], self.rng.uniform(30, 600)
        for _ in range(3):
            if self.rng.random() < 0.6:
                out.append((t, "connected"))
                break
            out.append((t, pick(self.rng, CALL_FAILURES)))
            if out[-1][1] == "invalid_number":
                break
            t += self.rng.uniform(60, 300)
        return out

    def case_for(self, lead: SimLead) -> dict | None:
        """Some warned people are defrauded anyway (预警后发案): a case 2 h to 25 days later."""
        if self.rng.random() >= 0.015:
            return None
        at = lead.at + timedelta(hours=self.rng.uniform(2, 24 * 25))
        by_id = lead.person.id_number is not None and self.rng.random() < 0.3
        return {"case_id": f"C{self.area.region}{at.astimezone(CENTER_TZ):%Y%m%d}{next(self.seq):07d}",
                "reported_at": iso(at, "seconds"),
                "victim": {"phone": None if by_id else lead.person.phone,
                           "id_number": lead.person.id_number if by_id else None},
                "fraud_type": lead.wire["fraud_type"] if lead.wire["fraud_type"] in FraudType.__members__ else "other",
                "loss_cny": round(self.rng.lognormvariate(9, 1.3), 2),
                "beat_code": self.area.beats[lead.beat][0] if lead.beat is not None else None}

    def unwarned_case(self, at: datetime) -> dict:
        return {"case_id": f"C{self.area.region}{at.astimezone(CENTER_TZ):%Y%m%d}9{next(self.seq):07d}",
                "reported_at": iso(at, "seconds"),
                "victim": {"phone": self._phone(), "id_number": None}, "fraud_type": pick(self.rng, FRAUD_TYPES),
                "loss_cny": round(self.rng.lognormvariate(9, 1.3), 2),
                "beat_code": self.rng.choice(self.area.beats)[0]}
