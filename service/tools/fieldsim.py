"""`quanzu field-sim`: a reference field client. It proves the contract works for a client, drives
the demo and the benchmarks. Each simulated squad logs in as one of its members, says it is on
duty, reports its position, acks every message, accepts or declines offers with the given
probabilities, travels to the person at the given speed, arrives and completes with an outcome.
It resumes with `hello` + `last_seq` when its socket drops, as a phone would."""
from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from math import ceil

import httpx
import orjson
from sqlalchemy import select, update
from sqlmodel import Session
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from dispatch.models import Team, TeamMember
from geo.distance import haversine_m
from service.core.auth import hash_password
from service.core.logging import log
from service.core.models import User

OUTCOMES = {"dissuaded": 0.8, "not_reached": 0.1, "refused": 0.05, "already_defrauded": 0.05}
COMPLETION = {"outcome": "dissuaded", "met_in_person": True, "note": "field-sim", "saved_cny": 0, "loss_cny": 0,
              "checklist": {"look": {"call_sms_logs": True, "fraud_apps": True}, "ask": {"who_asked": True},
                            "protect": {}}}


def member_username(team_code: str, role: str) -> str:
    return f"{team_code}-{role}".lower()


def ensure_member_users(session: Session, codes: list[str] | None, password: str) -> list[tuple[str, str]]:
    """A login for every roster member of the given squads (all when None), linked to the roster
    (team_member.username). → [(team_code, username)]. The caller commits."""
    hashed = hash_password(password)  # one hash for all: argon2 is slow on purpose
    q = select(TeamMember).order_by(TeamMember.team_code, TeamMember.id)
    if codes is not None:
        q = q.where(TeamMember.team_code.in_(codes))
    made = []
    existing = {u.username: u for u in session.execute(select(User)).scalars()}
    for m in session.execute(q).scalars():
        name = member_username(m.team_code, m.role)
        u = existing.get(name)
        if u is None:
            u = User(username=name, password_hash=hashed, role=m.role, team_code=m.team_code)
            session.add(u)
        u.password_hash, u.role, u.team_code, u.active = hashed, m.role, m.team_code, True
        session.execute(update(TeamMember).where(TeamMember.id == m.id).values(username=name))
        made.append((m.team_code, name))
    return made


@dataclass
class SimConfig:
    base_url: str = "http://127.0.0.1:8000"
    password: str = "field-sim"
    accept_p: float = 0.9
    decline_p: float = 0.1  # of offers: accept, decline, or (the rest) let it expire
    speed_kmh: float = 30.0
    visit_seconds: float = 20.0
    location_every_s: float = 15.0
    seed: int | None = None

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://").replace("https://", "wss://") + "/api/v1/ws"


@dataclass
class SquadClient:
    """One squad's phone (its police officer's account by default)."""
    team_code: str
    username: str
    cfg: SimConfig
    lon: float | None = None
    lat: float | None = None
    last_seq: int = 0
    token: str | None = None
    stats: dict = field(default_factory=lambda: {"offers": 0, "accepted": 0, "declined": 0, "ignored": 0,
                                                 "completed": 0, "lost": 0, "reconnects": 0})
    _ws = None
    _replies: dict = field(default_factory=dict)
    _ids: int = 0
    _tasks: set = field(default_factory=set)

    async def login(self, http: httpx.AsyncClient) -> None:
        r = await http.post("/api/v1/auth/token", data={"username": self.username, "password": self.cfg.password})
        r.raise_for_status()
        self.token = r.json()["access_token"]

    async def finish_open(self, http: httpx.AsyncClient) -> None:
        """A phone that restarts finishes what its squad had taken (an earlier run's accepted or
        arrived visits), so that they do not hold the squad's workload limit forever."""
        auth = {"Authorization": f"Bearer {self.token}"}
        for status in ("accepted", "arrived"):
            r = await http.get("/api/v1/assignments", params={"status": status, "limit": 50}, headers=auth)
            for a in r.json().get("items", []) if r.status_code == 200 else []:
                if status == "accepted":
                    await http.post(f"/api/v1/assignments/{a['id']}/arrive", headers=auth)
                r = await http.post(f"/api/v1/assignments/{a['id']}/complete", headers=auth, json=COMPLETION)
                self.stats["completed"] += r.status_code == 200

    async def run(self, rng: random.Random, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with connect(self.cfg.ws_url, compression=None, open_timeout=30) as ws:
                    self._ws = ws
                    await ws.send(orjson.dumps({"type": "hello", "token": self.token,
                                                "last_seq": self.last_seq}).decode())
                    reader = asyncio.create_task(self._read(ws, rng, stop))  # results come back through it
                    beat = asyncio.create_task(self._beacon(stop))
                    try:
                        await self._command("status", status="on_duty")
                        if self.lon is not None:
                            await self._command("location", lon=self.lon, lat=self.lat, crs="wgs84", accuracy_m=10)
                        await reader
                    finally:
                        beat.cancel()
                        reader.cancel()
            except (ConnectionClosed, OSError, InvalidStatus, TimeoutError) as exc:
                self.stats["reconnects"] += 1
                log.info("field_sim_reconnect", team=self.team_code, error=str(exc))
                await asyncio.sleep(1 + rng.random())

    async def _read(self, ws, rng: random.Random, stop: asyncio.Event) -> None:
        async for text in ws:
            if stop.is_set():
                return
            msg = orjson.loads(text)
            if msg["type"] == "result":
                fut = self._replies.pop(msg.get("id"), None)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
                continue
            if msg.get("seq"):
                self.last_seq = msg["seq"]
                await ws.send(orjson.dumps({"type": "ack", "seq": msg["seq"]}).decode())
            if msg["type"] == "offer":
                self.stats["offers"] += 1
                task = asyncio.create_task(self._answer(msg["data"], rng))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _send(self, **msg) -> None:
        await self._ws.send(orjson.dumps(msg).decode())

    async def _command(self, kind: str, **data) -> dict:
        self._ids += 1
        cid = f"{self.team_code}:{self._ids}"
        fut = asyncio.get_running_loop().create_future()
        self._replies[cid] = fut
        await self._send(type=kind, id=cid, **data)
        try:
            return await asyncio.wait_for(fut, 30)
        except TimeoutError:
            self._replies.pop(cid, None)
            return {"ok": False, "error": "timeout"}

    async def _beacon(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.cfg.location_every_s)
            if self.lon is not None:
                await self._command("location", lon=self.lon, lat=self.lat, crs="wgs84", accuracy_m=10)

    async def _answer(self, offer: dict, rng: random.Random) -> None:
        aid = offer["assignment_id"]
        await asyncio.sleep(rng.uniform(0.5, 3.0))  # a person reads the offer
        roll = rng.random()
        if roll >= self.cfg.accept_p + self.cfg.decline_p:
            self.stats["ignored"] += 1
            return
        if roll >= self.cfg.accept_p:
            await self._command("decline", assignment_id=aid, reason="field-sim: busy")
            self.stats["declined"] += 1
            return
        r = await self._command("accept", assignment_id=aid)
        if not r.get("ok"):
            self.stats["lost"] += 1
            return
        self.stats["accepted"] += 1
        lead = offer.get("lead") or {}
        await self._travel(lead.get("lon"), lead.get("lat"))
        await self._command("arrive", assignment_id=aid)
        await asyncio.sleep(self.cfg.visit_seconds)
        outcome = rng.choices(list(OUTCOMES), weights=list(OUTCOMES.values()))[0]
        r = await self._command("complete", assignment_id=aid, **{**COMPLETION, "outcome": outcome,
                                                                  "met_in_person": outcome != "not_reached"})
        if r.get("ok"):
            self.stats["completed"] += 1

    async def _travel(self, lon: float | None, lat: float | None) -> None:
        if lon is None or self.lon is None:
            await asyncio.sleep(5)
            return
        dist = haversine_m(self.lon, self.lat, lon, lat)
        seconds = dist / (self.cfg.speed_kmh / 3.6)
        steps = max(1, ceil(seconds / self.cfg.location_every_s))
        lon0, lat0 = self.lon, self.lat
        for i in range(1, steps + 1):
            await asyncio.sleep(seconds / steps)
            self.lon, self.lat = lon0 + (lon - lon0) * i / steps, lat0 + (lat - lat0) * i / steps
            await self._command("location", lon=self.lon, lat=self.lat, crs="wgs84", accuracy_m=10)


def squads_from(session: Session, codes: list[str] | None, limit: int | None) -> list[tuple[str, float, float]]:
    q = select(Team.code, Team.home_lon, Team.home_lat).order_by(Team.code)
    if codes:
        q = q.where(Team.code.in_(codes))
    rows = [tuple(r) for r in session.execute(q).all()]
    return rows[:limit] if limit else rows


async def run_sim(cfg: SimConfig, squads: list[tuple[str, float, float]], duration_s: float | None = None,
                  role: str = "police") -> list[SquadClient]:
    rng = random.Random(cfg.seed)
    clients = [SquadClient(code, member_username(code, role), cfg, lon, lat) for code, lon, lat in squads]
    async with httpx.AsyncClient(base_url=cfg.base_url, timeout=30) as http:
        async def ready(c: SquadClient) -> None:
            await c.login(http)
            await c.finish_open(http)
        await asyncio.gather(*(ready(c) for c in clients))  # together: on duty sooner after a restart
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c.run(random.Random(rng.random()), stop)) for c in clients]
    try:
        if duration_s:
            await asyncio.sleep(duration_s)
        else:
            await asyncio.Event().wait()
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return clients
