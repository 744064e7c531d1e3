"""The simulator live: a running server driven through its HTTP API only (the demo), leads and cases
pushed and the operators' sign-offs, calls and callbacks posted at simulated time."""
from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from service.tools.simulate import Generator


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
    `api_key` pushes leads and cases, `token` (an operator's) signs and posts calls and callbacks.
    The simulated clock starts at the first lead and runs `speed` times the wall clock; pushed times
    are the simulated ones."""
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
