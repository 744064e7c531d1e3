"""Lead validation speed: `validate_lead` against pydantic's own validation of the same leads.

    python bench/validation.py [--leads FILE] [--repeat 5]

The leads, as pushed (JSON lines): FILE; by default the shared sample feed (leads.jsonl in
$QUANZU_DISTRICT_DIR, else ../shared/data/district: 5,152 leads, ~3 % of them with hard or soft
defects); without it, 5,000 leads of `service.tools.simulate` on a district of
`service.tools.gen_district` (seeded; ~2 % hard and ~1 % soft defects). The output says which.

Each pass goes over every lead; the kinds alternate, pass by pass; each figure is the best of its
--repeat passes, in µs per lead:

- baseline: `LeadIn.model_validate` (pydantic v2, the wire model of the contract), a
  ValidationError caught for each refused lead — what checking the schema alone costs;
- validate_lead: `dispatch.intake.validation.validate_lead(lead)` as a push route calls it for a
  body not proven storable beforehand: the same `LeadIn` for an accepted lead, plus every hard
  defect named by field, the soft flags (ID check digit, unknown fraud type, ...) and the check
  that every value fits its column;
- context: an orjson round trip of each lead (dumps + loads: touching every value once).

Before anything is timed the answers are compared: a lead both accept must give the same `LeadIn`
from both, or the ratio would compare different work. Speed is measured, never asserted: the exit
code is 0 whatever the ratio (1 only when those answers differ).
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from pydantic import ValidationError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dispatch.intake.schemas import LeadIn  # noqa: E402
from dispatch.intake.validation import validate_lead  # noqa: E402
from service.core.settings import find_sample_district  # noqa: E402

SHARED = Path(os.environ.get("QUANZU_DISTRICT_DIR") or find_sample_district()
              or ROOT.parent / "shared" / "data" / "district")
GENERATED_LEADS = 5000


def shared_leads(path: Path) -> list[dict]:
    with path.open("rb") as f:
        return [orjson.loads(line) for line in f if line.strip()]


def generated_leads(n: int) -> list[dict]:
    """n pushes of the simulator (duplicates included, as it pushes them) on our own district."""
    from service.tools.gen_district import generate
    from service.tools.simulate import Area, Generator

    area = Area.from_beats_geojson(generate()["beats.geojson"])
    return [lead.wire for lead in Generator(area, seed=7).leads(n)]


def best_of(fns: list[Callable[[], object]], repeat: int) -> list[float]:
    """Best wall time of each fn over `repeat` rounds; the kinds alternate within a round, so a busy
    moment of the machine does not fall on one kind only."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, spent in zip(fns, times):
            gc.collect()
            t = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - t)
    return [min(spent) for spent in times]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--leads", type=Path, help="JSON lines of pushed leads (default: the shared sample feed, "
                   f"{SHARED / 'leads.jsonl'}, else {GENERATED_LEADS:,} simulated leads)")
    p.add_argument("--repeat", type=int, default=5, help="passes over all leads per kind; the best counts")
    args = p.parse_args()

    source = args.leads or SHARED / "leads.jsonl"
    if source.is_file():
        leads, label = shared_leads(source), str(source)
    elif args.leads is not None:
        p.error(f"{source}: not a file")
    else:
        leads = generated_leads(GENERATED_LEADS)
        label = f"service.tools.simulate on service.tools.gen_district (no shared feed at {source})"

    def pydantic(raw: dict) -> LeadIn | None:
        try:
            return LeadIn.model_validate(raw)
        except ValidationError:
            return None

    ours, theirs = [validate_lead(raw).lead for raw in leads], [pydantic(raw) for raw in leads]
    both = [(a, b) for a, b in zip(ours, theirs) if a is not None and b is not None]
    differ = sum(a != b for a, b in both)
    print(f"{len(leads):,} leads from {label}")
    print(f"accepted: validate_lead {sum(a is not None for a in ours):,}, LeadIn.model_validate "
          f"{sum(b is not None for b in theirs):,}, both {len(both):,} (validate_lead also refuses values no "
          f"column holds and keeps soft defects as flags)")
    if differ:
        print(f"{differ} leads accepted by both give different LeadIn: the timings would compare different work")
        return 1

    def baseline() -> None:
        for raw in leads:
            try:
                LeadIn.model_validate(raw)
            except ValidationError:
                pass

    def quanzu() -> None:
        for raw in leads:
            validate_lead(raw)

    def round_trip() -> None:
        for raw in leads:
            orjson.loads(orjson.dumps(raw))

    t_base, t_ours, t_copy = best_of([baseline, quanzu, round_trip], args.repeat)
    us = 1e6 / len(leads)
    print(f"best of {args.repeat} passes:")
    print(f"  LeadIn.model_validate:  {t_base * us:7.2f} µs/lead   (baseline)")
    print(f"  validate_lead:          {t_ours * us:7.2f} µs/lead   = {t_ours / t_base:.2f}x the baseline")
    print(f"  orjson round trip:      {t_copy * us:7.2f} µs/lead   (context)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
