"""A generator of our own: realistic leads for an imported district and, over simulated time, what
happens to them (calls, visits, callbacks, cases), seeded and reproducible.

Two ways to use it:
- `run_live`: drive a running server through the HTTP API only (the demo): push leads and cases,
  post call results and callbacks at simulated time, `speed` times faster than the wall clock.
- `bulk_load`: write millions of placed, tiered, worked leads straight into PostgreSQL with COPY
  (the benchmark). No lead_event rows: the audit trail is for real work, not for fixtures.

Proportions follow domain.md and public practice: sources, fraud types, risk and residency mixes,
all three coordinate systems, ~3% duplicates, ~3% defects, ~6% repeat warnings of a person,
about 40% of calls refused or unanswered, a few post-warning cases (预警后发案)."""
from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import orjson
import shapely
from shapely.geometry import Point, shape

from dispatch.enums import FraudType
from dispatch.outcomes.cases import MATCH_UNMATCHED
from dispatch.policy import LeadFacts, Policy, load_policy
from dispatch.triage.tiering import age_on, tier_lead
from geo.crs import from_wgs84
from service.core.clock import CENTER_TZ

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
            "pushed_at": at.astimezone(CENTER_TZ).isoformat(timespec="seconds"), "warning_type": wtype,
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
                "reported_at": at.astimezone(CENTER_TZ).isoformat(timespec="seconds"),
                "victim": {"phone": None if by_id else lead.person.phone,
                           "id_number": lead.person.id_number if by_id else None},
                "fraud_type": lead.wire["fraud_type"] if lead.wire["fraud_type"] in FraudType.__members__ else "other",
                "loss_cny": round(self.rng.lognormvariate(9, 1.3), 2),
                "beat_code": self.area.beats[lead.beat][0] if lead.beat is not None else None}

    def unwarned_case(self, at: datetime) -> dict:
        return {"case_id": f"C{self.area.region}{at.astimezone(CENTER_TZ):%Y%m%d}9{next(self.seq):07d}",
                "reported_at": at.astimezone(CENTER_TZ).isoformat(timespec="seconds"),
                "victim": {"phone": self._phone(), "id_number": None}, "fraud_type": pick(self.rng, FRAUD_TYPES),
                "loss_cny": round(self.rng.lognormvariate(9, 1.3), 2),
                "beat_code": self.rng.choice(self.area.beats)[0]}


# ---------------------------------------------------------------- live: drive a server over HTTP
@dataclass
class LiveReport:
    leads: int = 0
    cases: int = 0
    signed: int = 0
    calls: int = 0
    callbacks: int = 0
    answers: Counter = field(default_factory=Counter)  # "POST /leads 202" → n


def _default_tier_response(wire: dict) -> list[str]:
    """The simulator's guess of whether a lead gets a call (the server decides; this only drives the
    simulated operators): everything but low risk."""
    return ["call"] if wire.get("risk_level") in (1, 2) else []


async def run_live(client, gen: Generator, *, leads: int, speed: float = 60.0, api_key: str,
                   token: str | None = None, now=None, sleep=asyncio.sleep) -> LiveReport:
    """Push `leads` leads at simulated time and, as it passes, the operator's sign-off, their call
    results, callbacks and cases. `client` is an httpx.AsyncClient for the server's base URL;
    `api_key` pushes leads and cases, `token` (an operator's) signs and posts calls and callbacks. The simulated clock starts at the
    first lead and runs `speed` times the wall clock; pushed times are the simulated ones."""
    report = LiveReport()
    source = {"X-API-Key": api_key}
    operator = {"Authorization": f"Bearer {token}"} if token else source
    queue: list[tuple[datetime, int, str, object]] = []
    tie = itertools.count()
    pushes = gen.leads(leads)  # made one at a time, as they come due: a long run starts at once

    def next_lead() -> None:
        lead = next(pushes, None)
        if lead is None:
            return
        heapq.heappush(queue, (lead.at, next(tie), "lead", lead))
        if gen.rng.random() < 0.05:
            heapq.heappush(queue, (lead.at + timedelta(hours=gen.rng.uniform(1, 48)), next(tie), "case",
                                   gen.unwarned_case(lead.at)))

    next_lead()
    wall0, sim0 = time.monotonic(), queue[0][0] if queue else gen.start
    ids: dict[int, int] = {}
    while queue:
        at, _, what, item = heapq.heappop(queue)
        wait = (at - sim0).total_seconds() / speed - (time.monotonic() - wall0)
        if wait > 0:
            await sleep(wait)
        if what == "lead":
            next_lead()
            r = await client.post("/api/v1/leads", json=item.wire, headers=source)
            report.answers[f"POST /leads {r.status_code}"] += 1
            if r.status_code != 202:
                continue
            report.leads += 1
            lead_id = r.json()["id"]
            ids[id(item)] = lead_id
            # the operator signs (签收) it within a few simulated minutes
            heapq.heappush(queue, (at + timedelta(seconds=gen.rng.uniform(20, 240)), next(tie), "sign", lead_id))
            for t, result in gen.calls(item, _default_tier_response(item.wire)):
                heapq.heappush(queue, (at + timedelta(seconds=t), next(tie), "call", (lead_id, result)))
            if gen.rng.random() < 0.5:
                heapq.heappush(queue, (at + timedelta(days=3), next(tie), "callback", lead_id))
            case = gen.case_for(item)
            if case:
                heapq.heappush(queue, (datetime.fromisoformat(case["reported_at"]), next(tie), "case", case))
        elif what == "sign":
            r = await client.post(f"/api/v1/leads/{item}/sign", headers=operator)
            report.answers[f"POST /leads/{{id}}/sign {r.status_code}"] += 1
            report.signed += r.status_code < 300
        elif what == "call":
            lead_id, result = item
            body = {"result": result, **({"outcome": "dissuaded"} if result == "connected" else {})}
            r = await client.post(f"/api/v1/leads/{lead_id}/calls", json=body, headers=operator)
            report.answers[f"POST /leads/{{id}}/calls {r.status_code}"] += 1
            report.calls += r.status_code < 300
        elif what == "callback":
            body = {"result": "safe" if gen.rng.random() < 0.95 else "defrauded"}
            if body["result"] == "defrauded":
                body["loss_cny"] = round(gen.rng.lognormvariate(8, 1), 2)
            r = await client.post(f"/api/v1/leads/{item}/callbacks", json=body, headers=operator)
            report.answers[f"POST /leads/{{id}}/callbacks {r.status_code}"] += 1
            report.callbacks += r.status_code < 300
        else:
            r = await client.post("/api/v1/cases", json=item, headers=source)
            report.answers[f"POST /cases {r.status_code}"] += 1
            report.cases += r.status_code < 300
    return report


# ---------------------------------------------------------------- bulk: COPY into PostgreSQL
LEAD_COPY = ("id", "source", "source_id", "pushed_at", "received_at", "warning_type", "fraud_type", "fraud_type_raw",
             "risk_level",
             "ongoing", "phone", "name", "id_number", "residency", "counterpart", "amount_cny", "loc_lon", "loc_lat",
             "loc_crs", "loc_accuracy_m", "loc_kind", "lon", "lat", "beat_code", "street_code", "in_jurisdiction",
             "placed_by", "flags", "status", "tier", "tier_detail", "assigned_team", "signed_at", "signed_by",
             "outcome", "closed_at", "loss_cny", "saved_cny", "attempts", "updated_at")


@dataclass
class BulkReport:
    leads: int = 0
    rows: Counter = field(default_factory=Counter)
    seconds: float = 0.0


def bulk_load(conn, area: Area, n: int, *, seed: int = 7, start: datetime | None = None,
              per_day: float | None = None, policy: Policy | None = None, progress=None) -> BulkReport:
    """Write `n` placed, tiered and worked leads (and their calls, SMS, visits, assignments,
    callbacks, sign deadlines and cases) with COPY on a psycopg connection; the caller commits.
    Only accepted, distinct leads are written: a bulk load has no pushes to refuse."""
    t0 = time.perf_counter()
    policy = policy or load_policy()
    days = 30.0
    gen = Generator(area, seed, start, per_day or n / days)
    rng = gen.rng
    first = (conn.execute("SELECT coalesce(max(id), 0) FROM lead").fetchone()[0]) + 1
    rep = BulkReport()
    jdump = orjson.dumps
    buffers: dict[str, list[tuple]] = {t: [] for t in ("call_attempt", "sms_message", "visit", "assignment",
                                                       "callback", "lead_deadline", "case_report")}
    columns = {
        "call_attempt": ("lead_id", "at", "actor", "result", "outcome"),
        "sms_message": ("lead_id", "purpose", "to_phone", "body", "idempotency_key", "status", "attempts",
                        "created_at", "sent_at"),
        "visit": ("id", "lead_id", "reason", "requested_by", "requested_at", "status", "team_code", "done_at",
                  "met_in_person", "outcome"),
        "assignment": ("visit_id", "lead_id", "team_code", "attempt", "status", "offered_at", "expires_at",
                       "accepted_at", "arrived_at", "completed_at", "met_in_person", "outcome"),
        "callback": ("lead_id", "due_at", "done_at", "actor", "result"),
        "lead_deadline": ("lead_id", "name", "due_at", "state", "met_at"),
        "case_report": ("case_id", "reported_at", "victim_phone", "victim_id_number", "fraud_type", "loss_cny",
                        "beat_code", "post_warning_lead_id"),
    }
    visit_id = (conn.execute("SELECT coalesce(max(id), 0) FROM visit").fetchone()[0]) + 1

    def flush_children() -> None:
        for table, rows in buffers.items():
            if rows:
                with conn.cursor().copy(f"COPY {table} ({', '.join(columns[table])}) FROM STDIN") as cp:
                    for row in rows:
                        cp.write_row(row)
                rep.rows[table] += len(rows)
                rows.clear()

    lead_id = first
    batch: list[tuple] = []

    def flush_leads() -> None:
        with conn.cursor().copy(f"COPY lead ({', '.join(LEAD_COPY)}) FROM STDIN") as cp:
            for row in batch:
                cp.write_row(row)
        batch.clear()
        flush_children()

    seen: set[tuple[str, str]] = set()
    for sim in gen.leads(n * 2):
        if rep.leads >= n:
            break
        w = sim.wire
        if sim.kind != "ok" or (w["source"], w["source_id"]) in seen:
            continue
        seen.add((w["source"], w["source_id"]))
        s, loc = w["subject"], w["location"]
        received = sim.at + timedelta(seconds=rng.uniform(0.05, 2))
        beat = area.beats[sim.beat] if sim.beat is not None else None
        inside = beat is not None
        fraud = w["fraud_type"] if w["fraud_type"] in FraudType.__members__ else "other"
        facts = LeadFacts(w["warning_type"], fraud, w["risk_level"], s["residency"], inside,
                          age_on(s["id_number"], received.date()), w["ongoing"])
        decision = tier_lead(facts, policy, received.astimezone(CENTER_TZ))
        response = [x.value for x in decision.response]
        status, outcome, closed = ("tiered" if inside else "transferred"), None, None
        signed = received + timedelta(seconds=rng.lognormvariate(4, 1)) if inside and rng.random() < 0.95 else None
        team = beat[3] if beat else None
        lid = lead_id
        if inside:
            buffers["lead_deadline"].append((lid, "sign", decision.deadlines.get("sign", received + timedelta(
                minutes=10)), "met" if signed else "pending", signed))
            for t, result in gen.calls(sim, response):
                buffers["call_attempt"].append((lid, received + timedelta(seconds=t), "sim", result,
                                                "dissuaded" if result == "connected" else None))
            if "sms" in response:
                buffers["sms_message"].append((lid, "warning", s["phone"], "warning", f"sim-{lid}", "delivered", 1,
                                               received, received + timedelta(seconds=5)))
            if "visit" in response and team:
                arrived = received + timedelta(seconds=rng.lognormvariate(7, 0.6))
                met = rng.random() < 0.92
                buffers["visit"].append((visit_id, lid, "policy", "sim", received, "done", team,
                                         arrived + timedelta(minutes=20), met, "dissuaded" if met else "not_reached"))
                buffers["assignment"].append((visit_id, lid, team, 1, "completed", received,
                                              received + timedelta(seconds=60), received + timedelta(seconds=20),
                                              arrived, arrived + timedelta(minutes=20), met, None))
                visit_id += 1
            if rng.random() < 0.85:
                status, outcome = "closed", pick(rng, CLOSE_OUTCOMES)
                closed = received + timedelta(hours=rng.uniform(0.5, 30))
                if rng.random() < 0.8:
                    due = closed + timedelta(days=3)
                    done = due + timedelta(hours=rng.uniform(0, 20)) if rng.random() < 0.85 else None
                    buffers["callback"].append((lid, due, done, "sim" if done else None, "safe" if done else None))
            case = gen.case_for(sim)
            if case:
                v = case["victim"]
                buffers["case_report"].append((case["case_id"], case["reported_at"], v["phone"], v["id_number"],
                                               case["fraud_type"], Decimal(str(case["loss_cny"])), case["beat_code"],
                                               None))
        batch.append((
            lid, w["source"], w["source_id"], sim.at, received, w["warning_type"], fraud,
            w["fraud_type"] if fraud != w["fraud_type"] else None, w["risk_level"], w["ongoing"], s["phone"],
            s["name"], s["id_number"], s["residency"], jdump(w["counterpart"]).decode(),
            None if w["amount_cny"] is None else Decimal(str(w["amount_cny"])),
            loc["lon"] if loc else None, loc["lat"] if loc else None, loc["crs"] if loc else None,
            loc["accuracy_m"] if loc else None, loc["kind"] if loc else None,
            sim.lon, sim.lat, beat[0] if beat else None, beat[1] if beat else None, inside,
            "location" if loc else "none", "[]", status, decision.tier.value, jdump(decision.as_json()).decode(),
            team if inside and "visit" in response else None, signed, "sim" if signed else None,
            outcome, closed, None, None, 1, received))
        lead_id += 1
        rep.leads += 1
        if len(batch) >= 20_000:
            flush_leads()
            if progress:
                progress(rep.leads)
    if batch:
        flush_leads()
    conn.execute("SELECT setval(pg_get_serial_sequence('lead', 'id'), (SELECT max(id) FROM lead))")
    # the cases are matched as the API matches them (dispatch.outcomes.cases), not assumed
    conn.execute(MATCH_UNMATCHED)
    conn.execute("SELECT setval(pg_get_serial_sequence('visit', 'id'), greatest((SELECT max(id) FROM visit), 1))")
    rep.rows["lead"] = rep.leads
    rep.seconds = time.perf_counter() - t0
    return rep

