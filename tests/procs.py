"""Real `quanzu worker` processes for black-box tests: started with `python -m service.cli worker` from
this checkout, on this run's database and Redis (the environment the `settings` fixture set), each
with its own extra environment; stopped by their own pid. Their stderr goes to a file, so that a
failing test can show what a worker said."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class WorkerProcess:
    def __init__(self, log_path: Path, **env: str):
        self.log_path, self.extra = Path(log_path), {k: str(v) for k, v in env.items()}
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        # The checkout this test runs from, not whatever copy of quanzu the interpreter has installed.
        path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "LOG_LEVEL": "WARNING", "LOG_JSON": "true", "PYTHONPATH": path, **self.extra}
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "service.cli", "worker"], cwd=ROOT, env=env,
                                     stdout=subprocess.DEVNULL, stderr=self._log, start_new_session=True)
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGKILL this process only (a transaction it held is rolled back by PostgreSQL)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(15)
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def count(self, needle: str) -> int:
        try:
            return self.log_path.read_text(errors="replace").count(needle)
        except OSError:
            return 0
