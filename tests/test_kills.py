"""Nothing lost when a server dies: bench/kills.py's small runs, each on servers of its own (a private
PostgreSQL with fsync on, a private redis-server, `quanzu serve` and `quanzu worker` processes), never
the machine's. The counts are asserted; the times only printed."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def kill(*args: str) -> dict:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "kills.py"), "--small", "--json", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.stdout.strip(), done.stderr[-4000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(figures, indent=1))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return figures


def test_postgres_killed_while_four_clients_push_loses_no_acked_lead() -> None:
    r = kill("--kill", "postgres")["postgres"]
    assert r["acked_before_kill"] > 0 and r["acked"] > r["acked_before_kill"]  # pushes went on after it
    assert r["retried_answers"] and r["answered_500"] == 0  # the outage was real (503s, sent again), no 500
    assert r["stored"] == r["worked"] == r["acked"] and r["lost"] == r["not_worked"] == 0
    assert r["rows_in_table"] == r["acked"]  # and nothing stored twice


def test_redis_killed_while_squads_are_connected_loses_no_offer() -> None:
    """Without persistence, the harder case: every stream and counter gone (appendonly is the bench's
    default and the production setting)."""
    r = kill("--kill", "redis", "--redis-persistence", "none")["redis"]
    assert r["offers_created"] >= r["leads"] > 0 and r["deliveries_expected"] >= r["offers_created"]
    assert r["delivered"] == r["deliveries_expected"] and r["lost"] == 0 and r["unsettled"] == 0


def test_an_api_process_killed_with_its_sockets_connected_loses_no_message() -> None:
    r = kill("--kill", "api")["api"]
    assert r["reconnected"] == r["sockets"] > 0
    assert r["messages_received"] == r["messages_in_streams"] > 0
    assert r["missed"] == r["gaps"] == r["twice"] == r["offers_lost"] == 0
