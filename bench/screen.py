"""The commander's screen (指挥大屏) on a busy shift, against the same page on an (almost) empty
district, in the same run.

    python bench/screen.py [--leads 2000] [--rate 20] [--minutes 0.5] [--pool 40] [--redis-db 14]

One `quanzu serve` and one `quanzu worker` on a fresh database (dropped at the end) with the shared
district (148 squads; as many as it has); Chromium (Playwright on /usr/bin/chromium) shows `/` to a
commander. Two phases, the same page and the same load each time:

- **empty**: no squad on duty, `--pool` open P1 leads (the leads the events act on), nothing else.
- **busy**: every squad on duty (at home), `--leads` open leads (10 % P1, 1 % P0, the rest P3),
  pushed through `POST /api/v1/leads/batch` and tiered by the worker before the clock starts.

In each: (1) **drawn**: from `page.goto` until the queue shows every open lead and the pinned P0/P1
rows (performance.now() in the page); (2) **lag**: `--rate` real changes a second for `--minutes`
(a cycle of push a P1 lead · a failed call on an open P1 lead · another call · close one as
dissuaded: board events `lead.created` / `lead.updated`), each timed from just before its request
to when the page's DOM shows it (the row there, its `data-calls` the new count, the row gone),
seen by a MutationObserver in the page (one clock: same machine); (3) **heap**: the page's JS heap
(CDP Runtime.getHeapUsage after a forced GC) after loading and after the minutes of events.
Measured, never asserted: the exit code is 0.
"""
from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ingest  # noqa: E402  (Backing, Server: the same servers and database handling)

from service.core.settings import find_sample_district  # noqa: E402

DISTRICT = find_sample_district() or ROOT.parent / "shared" / "data" / "district"
CHROMIUM = os.environ.get("QUANZU_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "bench-pw-123456"
OPERATORS = 4  # desk operators taking (POST /calls/next) and giving back (DELETE /leads/{id}/claim) leads
_n = itertools.count(1)

# In the page: expectations the bench registers before each request, met by the DOM.
WATCH_JS = """() => {
  const w = window.__bench = {want: new Map(), met: {}};
  const check = () => {
    for (const [key, e] of w.want) {
      const row = document.querySelector(`#queue tr[data-lead="${e.lead}"]`);
      const ok = e.kind === 'present' ? !!row : e.kind === 'absent' ? !row
               : !!row && row.getAttribute('data-' + e.kind) === String(e.value);
      if (ok) { w.met[key] = Date.now(); w.want.delete(key); }
    }
  };
  w.check = check;
  new MutationObserver(check).observe(document.getElementById('queue'),
                                      {subtree: true, childList: true, attributes: true});
}"""


# Before the page's own scripts: when each board event naming a lead arrived, and how long the
# page's GET /queue requests took (where the lag goes: the socket, or the page's reads and drawing).
TAP_JS = """(() => {
  const t = window.__tap = {ws: {}, reads: []};
  const WS = window.WebSocket;
  window.WebSocket = class extends WS {
    constructor(...a) {
      super(...a);
      this.addEventListener('message', ev => {
        let m; try { m = JSON.parse(ev.data); } catch { return; }
        const d = m.data || {};
        for (const id of d.lead_ids || [d.lead_id]) if (id != null) (t.ws[id] ||= []).push([Date.now(), m.type]);
      });
    }
  };
  const f = window.fetch;
  window.fetch = async (...a) => {
    const t0 = performance.now();
    const r = await f(...a);
    if (String(a[0]).startsWith('/api/v1/queue')) t.reads.push([performance.now() - t0, String(a[0]).includes('lead=')]);
    return r;
  };
})();"""


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))] if xs else float("nan")


def lead(tier: str, place: dict) -> dict:
    """A valid lead of this run's own (a fresh phone each: no repeat-warning rule fires)."""
    n = next(_n)
    body = {"source": "national_platform", "source_id": f"SCREEN-{n}-{time.time_ns()}",
            "pushed_at": "2026-11-01T09:30:00+08:00", "warning_type": "fraud_sms", "fraud_type": "fake_investment",
            "risk_level": 3, "subject": {"phone": f"137{n:08d}", "name": "压测", "residency": "nonlocal"},
            "location": {"lon": place["lon"], "lat": place["lat"], "crs": "wgs84", "accuracy_m": 10, "kind": "gps"}}
    if tier == "P1":
        body["risk_level"] = 1
    elif tier == "P0":
        body |= {"warning_type": "fund_transfer", "risk_level": 1}
    return body


def places() -> list[dict]:
    out = []
    with (DISTRICT / "leads_truth.jsonl").open(encoding="utf-8") as f:
        for line in f:
            t = json.loads(line)
            if t["verdict"] == "accept" and t["in_jurisdiction"] and t.get("beat_code"):
                out.append({"lon": t["true_lon"], "lat": t["true_lat"]})
    return out


def setup(backing: ingest.Backing) -> None:
    from dispatch.district import import_district
    from geo.district import load_district_dir
    from service.core.auth import hash_password
    from service.core.db import make_sync_engine, sync_session
    from service.core.models import User

    engine = make_sync_engine(backing.database_url, 1)
    with sync_session(engine) as session:
        import_district(session, load_district_dir(DISTRICT))
        for name, role in [("commander", "commander")] + [(f"operator-{i}", "operator") for i in range(OPERATORS)]:
            session.add(User(username=f"bench-{name}", password_hash=hash_password(PASSWORD), role=role))
        session.commit()
    engine.dispose()


def sql(url: str, query: str, *params):
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params or None)
        return cur.fetchall() if cur.description else None


def token(base: str, role: str) -> str:
    r = httpx.post(base + "/api/v1/auth/token", data={"username": f"bench-{role}", "password": PASSWORD}, timeout=30)
    r.raise_for_status()
    return r.json()["access_token"]


def fill(base: str, api_key: str, url: str, n: int, spots: list[dict], rng: random.Random, pool: int,
         timeout: float = 900) -> dict:
    """`n` open leads (or only the pool's P1s), tiered by the worker before the clock starts."""
    tiers = ["P1"] * pool if n == 0 else [("P0" if i % 100 == 7 else "P1" if i % 10 == 3 else "P3") for i in range(n)]
    t = time.monotonic()
    with httpx.Client(base_url=base, headers={"X-API-Key": api_key}, timeout=300) as http:
        for i in range(0, len(tiers), 1000):
            r = http.post("/api/v1/leads/batch", json={"leads": [lead(x, rng.choice(spots)) for x in tiers[i:i + 1000]]})
            r.raise_for_status()
    while sql(url, "SELECT count(*) FROM lead WHERE status = 'received'")[0][0]:
        if time.monotonic() - t > timeout:
            raise RuntimeError("the worker did not tier the leads in time")
        time.sleep(0.5)
    by_tier = dict(sql(url, "SELECT coalesce(tier, 'none'), count(*) FROM lead WHERE status IN "
                            "('received', 'tiered', 'working') GROUP BY 1"))
    return {"open": sum(by_tier.values()), "by_tier": by_tier, "tiered_in_s": round(time.monotonic() - t, 1)}


async def phase(browser, base: str, api_key: str, url: str, commander: str, operators: list[str], args,
                spots: list[dict], rng: random.Random) -> dict:
    open_total = sql(url, "SELECT count(*) FROM lead WHERE status IN ('received', 'tiered', 'working')")[0][0]
    context = await browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
    session = json.dumps({"token": commander, "role": "commander", "team": None, "username": "bench-commander"})
    await context.add_init_script(f"sessionStorage.setItem('quanzu.screen', {json.dumps(session)})")
    await context.add_init_script(TAP_JS)
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    cdp = await context.new_cdp_session(page)

    async def heap_mb() -> float:
        await cdp.send("HeapProfiler.collectGarbage")
        return round((await cdp.send("Runtime.getHeapUsage"))["usedSize"] / 2**20, 1)

    # 1. drawn: every open lead counted and the pinned rows in the DOM
    await page.goto(base + "/")
    drawn = await page.wait_for_function(
        """n => { const t = document.getElementById('queue-total');
                  return t && t.dataset.loaded === 'true' && t.dataset.total === String(n)
                         && document.querySelector('#live-state.connected') ? performance.now() : false; }""",
        arg=open_total, polling="raf", timeout=120_000)
    drawn_ms = await drawn.json_value()
    heap_loaded = await heap_mb()
    await page.evaluate(WATCH_JS)

    # 2. lag: real changes at --rate a second
    pool = [r[0] for r in sql(url, "SELECT id FROM lead WHERE tier = 'P1' AND status IN ('tiered', 'working') "
                                   "ORDER BY id")]
    calls: dict[int, int] = dict(sql(url, "SELECT lead_id, count(*) FROM call_attempt GROUP BY 1"))
    fresh: list[tuple[float, int]] = []
    inflight: set[int] = set()  # one request at a time per lead: each expectation is exact
    sent: dict[str, tuple[float, str, int]] = {}
    failed: list[str] = []
    keys = itertools.count()
    src = httpx.AsyncClient(base_url=base, headers={"X-API-Key": api_key}, timeout=30)
    ops = [httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {t}"}, timeout=30) for t in operators]
    op = ops[0]
    holding: dict[int, int | None] = dict.fromkeys(range(len(ops)))  # operator → the lead they hold
    desk_busy: set[int] = set()
    turn = itertools.count()
    cmd = httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {commander}"}, timeout=30)

    async def expect(lead_id: int, kind: str, value=None) -> str:
        key = f"{next(keys)}"
        await page.evaluate("([k, e]) => { window.__bench.want.set(k, e); window.__bench.check(); }",
                            [key, {"lead": lead_id, "kind": kind, "value": value}])
        return key

    async def act(what: str) -> None:
        now = time.monotonic()
        while fresh and now - fresh[0][0] > 3:  # a pushed lead joins the pool once the worker tiered it
            pool.append(fresh.pop(0)[1])
        idle = [x for x in pool if x not in inflight and x not in holding.values()]
        if what == "desk":
            who = next(turn) % len(ops)
            if who in desk_busy:
                return
            desk_busy.add(who)
            try:
                if holding[who] is None:  # take the desk's next lead: the row shows who is calling it
                    t0 = time.time() * 1000
                    r = await ops[who].post("/api/v1/calls/next")
                    item = r.json().get("item") if r.status_code == 200 else None
                    if item is None:
                        failed.append(f"claim {r.status_code} {r.text[:120]}")
                        return
                    holding[who] = item["id"]
                    sent[await expect(item["id"], "claimed", f"bench-operator-{who}")] = (t0, "claim", item["id"])
                else:  # give it back
                    lead_id = holding[who]
                    key = await expect(lead_id, "claimed", "")
                    t0 = time.time() * 1000
                    r = await ops[who].delete(f"/api/v1/leads/{lead_id}/claim")
                    holding[who] = None
                    if r.status_code >= 300:
                        failed.append(f"release {r.status_code} {r.text[:120]}")
                        return
                    sent[key] = (t0, "release", lead_id)
            finally:
                desk_busy.discard(who)
            return
        if what == "push" or not idle:
            t0 = time.time() * 1000
            r = await src.post("/api/v1/leads", json=lead("P1", rng.choice(spots)))
            if r.status_code != 202:
                failed.append(f"push {r.status_code}")
                return
            lead_id = r.json()["id"]
            sent[await expect(lead_id, "present")] = (t0, "push", lead_id)
            fresh.append((now, lead_id))
        elif what == "call":
            lead_id = rng.choice(idle)
            inflight.add(lead_id)
            n = calls.get(lead_id, 0) + 1
            key = await expect(lead_id, "calls", n)
            t0 = time.time() * 1000
            r = await op.post(f"/api/v1/leads/{lead_id}/calls", json={"result": "no_answer"})
            inflight.discard(lead_id)
            if r.status_code >= 300:
                failed.append(f"call {r.status_code} {r.text[:120]}")
                if lead_id in pool:
                    pool.remove(lead_id)
                return
            calls[lead_id] = n
            sent[key] = (t0, "call", lead_id)
        else:
            lead_id = rng.choice(idle)
            pool.remove(lead_id)
            key = await expect(lead_id, "absent")
            t0 = time.time() * 1000
            r = await cmd.post(f"/api/v1/leads/{lead_id}/close", json={"outcome": "dissuaded", "note": "压测"})
            if r.status_code >= 300:
                failed.append(f"close {r.status_code} {r.text[:120]}")
                return
            sent[key] = (t0, "close", lead_id)

    cycle = itertools.cycle(["push", "desk", "call", "desk", "close"])
    interval = 1 / args.rate
    start = time.monotonic()
    tasks = []
    n = 0
    while time.monotonic() - start < args.minutes * 60:
        tasks.append(asyncio.create_task(act(next(cycle))))
        n += 1
        await asyncio.sleep(max(0.0, start + n * interval - time.monotonic()))
    await asyncio.gather(*tasks)
    achieved = n / (time.monotonic() - start)
    await asyncio.sleep(10)  # the last events' rows
    met = await page.evaluate("() => window.__bench.met")
    heap_after = await heap_mb()
    for c in (src, cmd, *ops):
        await c.aclose()
    tap = await page.evaluate("() => window.__tap")
    lags: dict[str, list[float]] = {}
    seen: dict[str, list[int]] = {}  # kind → [sent, shown within 10 s, a board event named the lead]
    socket = []  # request sent → the first board event naming the lead after it
    for key, (t0, kind, lead_id) in sent.items():
        counts = seen.setdefault(kind, [0, 0, 0])
        counts[0] += 1
        if key in met:
            counts[1] += 1
            lags.setdefault(kind, []).append(met[key] - t0)
            if kind in ("push", "claim", "release"):
                lags.setdefault("evented", []).append(met[key] - t0)
        after = [at for at, _type in tap["ws"].get(str(lead_id), []) if at >= t0]
        if after:
            counts[2] += 1
            socket.append(min(after) - t0)
    reads = [ms for ms, _rows in tap["reads"]]
    rows_in_dom = await page.evaluate("() => document.querySelectorAll('#queue tr[data-lead]').length")
    await context.close()
    return {"open_leads": open_total, "drawn_ms": round(drawn_ms), "rows_in_dom": rows_in_dom,
            "events": {"sent": len(sent), "per_s": round(achieved, 1), "refused": failed[:5], "refused_n": len(failed),
                       "by_kind_sent_shown_evented": seen},
            "lag_ms": {k: {"p50": round(pct(v, 50)), "p95": round(pct(v, 95)), "max": round(max(v))}
                       for k, v in lags.items() if v},
            "socket_ms": {"p50": round(pct(socket, 50)), "p95": round(pct(socket, 95)), "n": len(socket)},
            "page_reads_ms": {"p50": round(pct(reads, 50)), "p95": round(pct(reads, 95)), "n": len(reads)},
            "heap_mb": {"loaded": heap_loaded, f"after_{args.minutes:g}_min": heap_after},
            "page_errors": errors[:5]}


async def run_browser(base, api_key, url, args, spots) -> dict:
    from playwright.async_api import async_playwright

    rng = random.Random(7)
    commander = token(base, "commander")
    operators = [token(base, f"operator-{i}") for i in range(OPERATORS)]
    out = {}
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-renderer-backgrounding", "--disable-background-timer-throttling"])
        try:
            for name in ("empty", "busy"):
                sql(url, "TRUNCATE lead, lead_event, access_log RESTART IDENTITY CASCADE")
                sql(url, "UPDATE team SET status = %s, last_lon = home_lon, last_lat = home_lat, last_at = now()",
                    "on_duty" if name == "busy" else "off_duty")
                setup_info = fill(base, api_key, url, args.leads if name == "busy" else 0, spots, rng, args.pool)
                setup_info["squads_on_duty"] = sql(url, "SELECT count(*) FROM team WHERE status = 'on_duty'")[0][0]
                print(f"{name}: {json.dumps(setup_info, ensure_ascii=False)}", flush=True)
                out[name] = {"setup": setup_info, **await phase(browser, base, api_key, url, commander, operators,
                                                               args, spots, rng)}
                print(f"{name}: {json.dumps(out[name], ensure_ascii=False)}", flush=True)
        finally:
            await browser.close()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--leads", type=int, default=2000, help="open leads of the busy phase")
    ap.add_argument("--rate", type=float, default=20, help="changes (board events) a second")
    ap.add_argument("--minutes", type=float, default=0.5, help="minutes of events per phase (the issue: 10)")
    ap.add_argument("--pool", type=int, default=40, help="open P1 leads of the empty phase")
    ap.add_argument("--redis-db", type=int, default=14)
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally: drop the database
    ingest.BENCH_REDIS_DB = args.redis_db
    backing = ingest.Backing()
    api = worker = None
    out: dict = {}
    try:
        backing.pick()
        backing.create_database()
        env = {**os.environ, "DATABASE_URL": backing.database_url, "REDIS_URL": backing.redis_url,
               "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(48),
               "LOG_LEVEL": "WARNING", "INTAKE_POOL_SIZE": "4", "DB_POOL_SIZE": "8"}
        setup(backing)
        api_key = backing.create_api_key(env)
        api = ingest.Server("api", [sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1"], env,
                            ("GET", "/readyz"))
        worker = subprocess.Popen([sys.executable, "-m", "service.cli", "worker"], env=env, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        base = f"http://127.0.0.1:{api.port}"
        out = asyncio.run(run_browser(base, api_key, backing.database_url, args, places()))
        e, b = out["empty"], out["busy"]
        print("\nscreen (busy vs empty, same page, same run):")
        print(f"  queue drawn      {b['drawn_ms']} ms ({b['open_leads']} open) vs {e['drawn_ms']} ms "
              f"({e['open_leads']} open)")
        for kind in ("evented", "push", "claim", "release", "call", "close"):
            if kind in b["lag_ms"] and kind in e["lag_ms"]:
                print(f"  lag {kind:<8} p50 {b['lag_ms'][kind]['p50']} ms vs {e['lag_ms'][kind]['p50']} ms; "
                      f"p95 {b['lag_ms'][kind]['p95']} vs {e['lag_ms'][kind]['p95']} ms")
        print(f"  socket (request → board event) p50 {b['socket_ms']['p50']} vs {e['socket_ms']['p50']} ms; "
              f"page GET /queue p50 {b['page_reads_ms']['p50']} vs {e['page_reads_ms']['p50']} ms")
        print(f"  JS heap          {b['heap_mb']} vs {e['heap_mb']} MB")
        print(f"  events           {b['events']['per_s']}/s vs {e['events']['per_s']}/s; [sent, shown in 10 s, evented]: "
              f"{b['events']['by_kind_sent_shown_evented']} vs {e['events']['by_kind_sent_shown_evented']}")
    finally:
        if worker is not None:
            worker.terminate()
            try:
                worker.wait(10)
            except subprocess.TimeoutExpired:
                worker.kill()
        if api is not None:
            api.stop()
        backing.close()
    print(json.dumps(out, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
