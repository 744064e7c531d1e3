"""The floor of quanzu's P0 path as built (`bench/push_latency.py --path floor`): `quanzu worker
--urgent` with its lead transaction cut to the least any P0 path through the workers must do.

The rest is the real path: the API's push and commit, its after-commit rq job on the urgent queue,
rq's hop to this worker, and the offer leaving through dispatch.outbox.publish (the squad's
streams, the live channel, the API's socket fan-out). Only `workers.tasks._start_urgent` is
replaced: the lead locked, placed by the in-memory beat index (as built at the worker's start:
not checked against the districts' versions), its squad (the beat's own, `T<beat>`,
as bench/push_latency.py sets them up) and the squad's logins read, the lead marked and one event
written, in Core SQL with no ORM object, one commit; then the offer to each login. No person, no
tier, no ladder, no visit, no choice among squads: what those cost is the gap between this floor
and the real path, run the same way. Never used outside the bench.

Run as both of the bench's workers (`--urgent` for the urgent one): an ordinary worker takes the
urgent queue first too. Leads of the ordinary queue (the background's P3s) are worked as they are.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402

from dispatch import outbox  # noqa: E402
from workers import run, tasks  # noqa: E402

_LOCK = text("SELECT loc_lon, loc_lat FROM lead WHERE id = :id AND status = 'received' FOR UPDATE SKIP LOCKED")
_MEMBERS = text("SELECT username FROM app_user WHERE team_code = :team AND active ORDER BY username")
_MARK = text("UPDATE lead SET status = 'tiered', beat_code = :beat WHERE id = :id")
_EVENT = text("INSERT INTO lead_event (lead_id, at, actor, kind, data) "
              "VALUES (:id, clock_timestamp(), 'floor', 'offered', CAST(:data AS jsonb))")


def start_floor(lead_id: int, offer: bool) -> bool:
    """The least a P0's worker transaction must do: lock, place, find the squad's people, mark, commit;
    the offer pushed after the commit."""
    with tasks.ctx.engine.connect() as conn:
        row = conn.execute(_LOCK, {"id": lead_id}).first()
        if row is None:
            return False
        beat = tasks.ctx.index.current.index.locate(row.loc_lon, row.loc_lat).beat_code  # built by settle()
        team = f"T{beat}"
        people = list(conn.execute(_MEMBERS, {"team": team}).scalars())
        conn.execute(_MARK, {"id": lead_id, "beat": beat})
        conn.execute(_EVENT, {"id": lead_id, "data": json.dumps({"team_code": team})})
        conn.commit()
    offer_data = {"lead": {"id": lead_id}, "assignment_id": 0, "team_code": team}
    outbox.publish(tasks.ctx.redis, [outbox.Push(u, "offer", offer_data) for u in people])
    return True


if __name__ == "__main__":
    tasks._start_urgent = start_floor
    run.run_worker(urgent="--urgent" in sys.argv[1:])
