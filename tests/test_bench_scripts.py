"""Every benchmark of `make bench` still starts: it imports what it needs from the service and the
test helpers and answers --help (a moved helper once broke two of them unnoticed)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# the helpers the benchmarks start (a bare FastAPI echo, a websockets echo, a worker cut to the floor)
HELPERS = ("echo_app.py", "ws_echo.py", "floor_worker.py")
SCRIPTS = sorted(p for p in (ROOT / "bench").glob("*.py") if p.name not in HELPERS)


def test_every_benchmark_answers_help() -> None:
    assert {p.name for p in SCRIPTS} >= {"ingest.py", "beats.py", "push_latency.py", "ladder.py", "audit.py",
                                          "stats.py", "validation.py", "screen.py",
                                          "sms_gateway.py"}
    procs = {p.name: subprocess.Popen([sys.executable, str(p), "--help"], cwd=ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True) for p in SCRIPTS}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0 and "usage:" in out, f"{name}: {out[-2000:]}"


def test_make_bench_runs_every_benchmark() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for p in SCRIPTS:
        assert f"bench/{p.name}" in makefile, f"make bench does not run {p.name}"
