"""The center and the case feed never wait on the workers: while real `quanzu worker` processes place
and tier a burst of leads, cases about those very people, signs and calls on those very leads are
answered at once — never 503 because a worker held the lead's row (LOCK_TIMEOUT_MS), never any 5xx.

Black box: the HTTP API (the in-process app, as the other worker tests use), real worker processes
(`python -m service.cli worker`), and reads of rows."""
from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter, defaultdict

import pytest
from sqlalchemy import select

from dispatch.models import Lead
from tests.data import shared_file
from tests.factories import make_lead
from tests.procs import WorkerProcess

pytestmark = pytest.mark.usefixtures("district", "clean")

UNAVAILABLE = "storage is unavailable"
WORKER_ENV = {"RECONCILE_EVERY_SECONDS": "1", "RECONCILE_AFTER_SECONDS": "2"}


class Answers:
    """Every answer of every kind of request: status counts, and the bodies that say the storage was away."""

    def __init__(self):
        self.status: dict[str, Counter] = defaultdict(Counter)
        self.unavailable: Counter = Counter()
        self.samples: dict[str, list[str]] = defaultdict(list)

    def record(self, kind: str, r) -> None:
        self.status[kind][r.status_code] += 1
        if UNAVAILABLE in r.text:
            self.unavailable[kind] += 1
        if r.status_code >= 500 and len(self.samples[kind]) < 2:
            self.samples[kind].append(f"{r.status_code} {r.text[:160]}")

    def bad(self, allowed: dict[str, set[int]]) -> dict[str, dict[int, int]]:
        return {k: {s: n for s, n in c.items() if s not in allowed.get(k, ())} for k, c in self.status.items()
                if any(s not in allowed.get(k, ()) for s in c)}

    def report(self) -> str:
        return "; ".join(f"{k}: {dict(sorted(c.items()))}" for k, c in sorted(self.status.items()))


def start_workers(n: int, tmp_path, **env) -> list[WorkerProcess]:
    return [WorkerProcess(tmp_path / f"worker-{i}.log", **{**WORKER_ENV, **env}).start() for i in range(n)]


def statuses(sync_engine, ids: list[int]) -> dict[int, str]:
    with sync_engine.connect() as conn:
        return dict(conn.execute(select(Lead.id, Lead.status).where(Lead.id.in_(ids))).all())


async def wait_tiered(sync_engine, ids: list[int], seconds: float, workers: list[WorkerProcess]) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        now = await asyncio.to_thread(statuses, sync_engine, ids)
        if len(now) == len(ids) and all(s != "received" for s in now.values()):
            return
        assert all(w.alive for w in workers), "a worker process died:\n" + "\n".join(w.tail() for w in workers)
        await asyncio.sleep(0.1)
    raise AssertionError(f"leads {ids} not tiered within {seconds} s: {now}\n" + "\n".join(w.tail() for w in workers))


def mixed_leads(n: int, rng: random.Random) -> list[dict]:
    """Leads of every tier: residents get a district visit (dispatched by the worker after its commit),
    nonlocal people a call or an SMS. Distinct phones, no ID number: each case matches one lead."""
    out = []
    for _ in range(n):
        risk = rng.choice((1, 2, 2, 3))
        warning = "fund_transfer" if rng.random() < 0.1 else rng.choice(("fraud_call", "fraud_sms"))
        out.append(make_lead(risk_level=risk, warning_type=warning,
                             fraud_type=rng.choice(("fake_investment", "online_shopping", "order_brushing")),
                             subject={"id_number": None,
                                      "residency": rng.choice(("resident", "worker", "transient", "nonlocal"))}))
    return out


async def test_center_actions_and_cases_never_wait_on_workers(client, source_headers, make_user, sync_engine,
                                                              tmp_path):
    """~2,000 leads pushed in batches of 500 by 4 pushers while 2 workers tier them; meanwhile cases
    about those people (their match is the fresh lead: the case row's foreign key needs FOR KEY SHARE
    on it), signs on leads still `received` (the oldest first: the ones a worker is on), and a
    no-answer call on each lead as soon as it is tiered (the freshest first). Every answer is
    collected: no 503, no 5xx at all; a call may be 409 for a lead in the wrong state."""
    n_leads, batch, pushers, per_kind = 2000, 500, 4, 250
    rng = random.Random(7)
    operator = make_user("operator")
    workers = start_workers(2, tmp_path)
    answers = Answers()
    background: list[asyncio.Task] = []
    try:
        # Both workers up (a lead each, single pushes) before the burst.
        warm = []
        for _ in range(2):
            r = await client.post("/api/v1/leads", json=make_lead(subject={"id_number": None}), headers=source_headers)
            assert r.status_code == 202, r.text
            warm.append(r.json()["id"])
        await wait_tiered(sync_engine, warm, 60, workers)

        leads = mixed_leads(n_leads, rng)
        chunks = [leads[i:i + batch] for i in range(0, n_leads, batch)]
        phone: dict[int, str] = {}  # lead id → its subject's phone
        received: list[int] = []  # as last read: leads still `received`, oldest first
        fresh: list[int] = []  # leads seen tiered and not called yet, in the order seen (the last the freshest)
        used: dict[str, set[int]] = {"case": set(), "sign": set()}
        pushing_done, tiering_done = asyncio.Event(), asyncio.Event()
        tried: Counter = Counter()
        wrong_match: list[tuple] = []

        async def pusher(mine: list[list[dict]]) -> None:
            for chunk in mine:
                r = await client.post("/api/v1/leads/batch", json={"leads": chunk}, headers=source_headers)
                answers.record("push", r)
                assert r.status_code == 200, r.text[:500]
                ids = [x.get("id") for x in r.json()["results"]]
                assert all(x["status"] == "accepted" for x in r.json()["results"]), r.text[:500]
                for lead, lead_id in zip(chunk, ids):
                    phone[lead_id] = lead["subject"]["phone"]
                received.extend(ids)
                received.sort()

        def next_received(kind: str) -> int | None:
            for lead_id in received:
                if lead_id not in used[kind]:
                    used[kind].add(lead_id)
                    return lead_id
            return None

        async def acting(kind: str, act) -> None:
            while not tiering_done.is_set() and tried[kind] < per_kind:
                lead_id = next_received(kind)
                if lead_id is None:
                    await asyncio.sleep(0.02)  # nothing received right now: look again after the next read
                    continue
                tried[kind] += 1
                await act(lead_id)

        async def send_case(lead_id: int) -> None:
            # reported the day after the warning: its post-warning match is this very lead
            body = {"case_id": f"LOCK-{lead_id}", "reported_at": "2026-11-02T10:00:00+08:00",
                    "victim": {"phone": phone[lead_id], "id_number": None}, "fraud_type": "fake_investment",
                    "loss_cny": 1000.0, "beat_code": None}
            r = await client.post("/api/v1/cases", json=body, headers=source_headers)
            answers.record("case", r)
            if r.status_code in (200, 201) and (r.json().get("post_warning_of") or {}).get("id") != lead_id:
                wrong_match.append((lead_id, r.json().get("post_warning_of")))

        async def sign(lead_id: int) -> None:
            answers.record("sign", await client.post(f"/api/v1/leads/{lead_id}/sign", headers=operator))

        async def caller() -> None:
            while not tiering_done.is_set() and tried["call"] < per_kind:
                if not fresh:
                    await asyncio.sleep(0.02)  # none tiered yet: look again after the next read
                    continue
                lead_id = fresh.pop()
                tried["call"] += 1
                r = await client.post(f"/api/v1/leads/{lead_id}/calls", json={"result": "no_answer"},
                                      headers=operator)
                answers.record("call", r)

        async def watcher() -> None:
            """Reads the leads' statuses every 0.1 s: which are still `received` (for cases and signs),
            which were just tiered (for calls); ends when no pushed lead is `received` any more."""
            end = time.monotonic() + 80
            seen_tiered: set[int] = set()
            while time.monotonic() < end:
                await asyncio.sleep(0.1)
                if not phone:
                    continue
                now = await asyncio.to_thread(statuses, sync_engine, list(phone))
                received[:] = sorted(i for i in phone if now.get(i) == "received")
                just = sorted(i for i, s in now.items() if s in ("tiered", "working") and i not in seen_tiered)
                seen_tiered.update(just)
                fresh.extend(just)
                if pushing_done.is_set() and not received:
                    break
                assert all(w.alive for w in workers), "a worker process died:\n" + "\n".join(w.tail() for w in workers)
            tiering_done.set()

        started = time.monotonic()
        watch = asyncio.create_task(watcher())
        actors = [asyncio.create_task(t) for t in (
            acting("case", send_case), acting("case", send_case), acting("case", send_case),
            acting("sign", sign), acting("sign", sign), acting("sign", sign), caller(), caller())]
        background = [watch, *actors]
        await asyncio.gather(*(pusher(chunks[i::pushers]) for i in range(pushers)))
        pushing_done.set()
        await watch
        await asyncio.gather(*actors)
        elapsed = time.monotonic() - started
        left = await asyncio.to_thread(statuses, sync_engine, list(phone))
    finally:
        for t in background:  # a failed step leaves nothing running in the session's event loop
            t.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        for w in workers:
            w.stop()

    still_received = sum(s == "received" for s in left.values())
    said = (f"{len(left)} leads tiered by 2 workers in {elapsed:.1f} s ({still_received} still received); "
            f"answers: {answers.report()}; 'storage is unavailable' bodies: {dict(answers.unavailable)}; "
            f"tried: {dict(tried)}; samples: {dict(answers.samples)}")
    print(said)
    bad = answers.bad({"push": {200}, "case": {200, 201}, "sign": {200}, "call": {201, 409}})
    assert not bad and not answers.unavailable, f"unexpected answers {bad} — {said}"
    assert not wrong_match, f"cases matched to other leads than the victim's fresh warning: {wrong_match[:5]} — {said}"
    assert still_received == 0, said
    # Not vacuous: each kind of request ran while the workers were at it.
    assert min(tried["case"], tried["sign"], tried["call"]) >= 20, said


def _sample_feed() -> tuple[list[dict], list[dict]]:
    with shared_file("leads.jsonl").open(encoding="utf-8") as f:
        leads = [json.loads(line) for line in f]
    with shared_file("cases.jsonl").open(encoding="utf-8") as f:
        cases = [json.loads(line) for line in f]
    return leads, cases


def count_received(sync_engine) -> int:
    with sync_engine.connect() as conn:
        return len(conn.execute(select(Lead.id).where(Lead.status == "received")).all())


async def test_sample_district_leads_then_cases_back_to_back(client, source_headers, sync_engine, tmp_path):
    """The sample feed (data we did not write): its 5,152 pushes in batches of 500, then at once every
    case of cases.jsonl, one request each (4 at a time, in the file's order), while 2 real workers
    tier the leads. The cases whose victim was warned match a lead a worker may be holding right now:
    no case may answer 503 (or any 5xx) for that. The tiering is not waited for."""
    leads, cases = _sample_feed()
    answers = Answers()
    workers = start_workers(2, tmp_path)
    try:
        r = await client.post("/api/v1/leads", json=make_lead(subject={"id_number": None, "residency": "nonlocal"}),
                              headers=source_headers)
        assert r.status_code == 202, r.text
        await wait_tiered(sync_engine, [r.json()["id"]], 60, workers)  # the workers are up

        started = time.monotonic()
        verdicts: Counter = Counter()
        for i in range(0, len(leads), 500):
            r = await client.post("/api/v1/leads/batch", json={"leads": leads[i:i + 500]}, headers=source_headers)
            answers.record("push", r)
            assert r.status_code == 200, r.text[:500]
            verdicts.update(x["status"] for x in r.json()["results"])
        pushed_in = time.monotonic() - started
        received_before = await asyncio.to_thread(count_received, sync_engine)

        todo = list(cases)
        matched = 0

        async def case_pusher() -> None:
            nonlocal matched
            while todo:
                case = todo.pop(0)
                r = await client.post("/api/v1/cases", json=case, headers=source_headers)
                answers.record("case", r)
                if r.status_code in (200, 201) and r.json().get("post_warning_of"):
                    matched += 1

        cases_started = time.monotonic()
        await asyncio.gather(*(case_pusher() for _ in range(4)))
        cases_took = time.monotonic() - cases_started
        received_after = await asyncio.to_thread(count_received, sync_engine)
        assert all(w.alive for w in workers), "a worker process died:\n" + "\n".join(w.tail() for w in workers)
    finally:
        for w in workers:
            w.stop()

    said = (f"{len(leads)} leads pushed in {pushed_in:.1f} s ({dict(verdicts)}); {len(cases)} cases pushed in "
            f"{cases_took:.1f} s while {received_before} → {received_after} leads were still `received`; "
            f"answers: {answers.report()}; 'storage is unavailable' bodies: {dict(answers.unavailable)}; "
            f"cases matched to a warning: {matched}; samples: {dict(answers.samples)}")
    print(said)
    bad = answers.bad({"push": {200}, "case": {200, 201}})
    assert not bad and not answers.unavailable, f"unexpected answers {bad} — {said}"
    assert received_before > 0 and matched > 0, f"the cases did not meet the workers at work — {said}"
