"""The embedded PostgreSQL / Redis servers: real servers, persistence, reuse, death with the parent."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from service.tools.embedded import EmbeddedPostgres, EmbeddedRedis

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def base_dir() -> Iterator[Path]:
    # Not tmp_path: pytest's base temp dir is mode 700, which the unprivileged PostgreSQL
    # user (when tests run as root) cannot traverse.
    d = Path(tempfile.mkdtemp(prefix="quanzu-emb-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")  # a zombie nobody reaps (container init) is dead
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _wait_dead(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _postmaster_pid(pg_dir: Path) -> int:
    return int((pg_dir / "data" / "postmaster.pid").read_text().split("\n", 1)[0])


def _start_in_child(code: str, arg: str) -> tuple[subprocess.Popen[str], str]:
    """Run `code` in a python child that prints a URL and sleeps; return it and the URL."""
    child = subprocess.Popen([sys.executable, "-c", code + "\nprint(url, flush=True)\nimport time; time.sleep(600)", arg],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    url = child.stdout.readline().strip()
    assert url, "child did not start the server"
    return child, url


def test_postgres_persists_and_is_reused(base_dir: Path) -> None:
    pg_dir = base_dir / "pg"
    with EmbeddedPostgres(pg_dir, fast=True) as pg:
        assert pg.owned
        assert pg.url == f"postgresql://postgres@/quanzu?host={pg_dir}"
        with psycopg.connect(pg.url) as conn:
            conn.execute("CREATE TABLE t(x int)")
            conn.execute("INSERT INTO t VALUES (1), (2)")
            assert conn.execute("SELECT sum(x) FROM t").fetchone() == (3,)
        pid = _postmaster_pid(pg_dir)
    assert _wait_dead(pid, 5)
    assert pg.url is None

    pg = EmbeddedPostgres(pg_dir, fast=True)
    url = pg.start()
    try:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT sum(x) FROM t").fetchone() == (3,)

        other = EmbeddedPostgres(pg_dir, database="other")
        assert other.start() == f"postgresql://postgres@/other?host={pg_dir}"
        assert not other.owned
        other.stop()
        with psycopg.connect(url) as conn:  # still up
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
            assert conn.execute("SELECT 1 FROM pg_database WHERE datname = 'other'").fetchone() == (1,)
    finally:
        pg.stop()


def test_postgres_stale_pid_file_is_removed(base_dir: Path) -> None:
    pg_dir = base_dir / "pg"
    with EmbeddedPostgres(pg_dir, fast=True):
        pass
    dead = subprocess.Popen(["true"])
    dead.wait()
    (pg_dir / "data" / "postmaster.pid").write_text(f"{dead.pid}\n{pg_dir / 'data'}\n")
    with EmbeddedPostgres(pg_dir, fast=True) as pg:
        assert pg.owned
        assert _postmaster_pid(pg_dir) != dead.pid


def test_postgres_dies_with_killed_parent(base_dir: Path) -> None:
    pg_dir = base_dir / "pg"
    child, url = _start_in_child(
        "import sys\nfrom service.tools.embedded import EmbeddedPostgres\n"
        "url = EmbeddedPostgres(sys.argv[1], fast=True).start()", str(pg_dir))
    pid = _postmaster_pid(pg_dir)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert _wait_dead(pid, 10), "postgres outlived its killed parent"
    assert not (pg_dir / "data" / "postmaster.pid").exists()  # a clean (fast) shutdown


def test_redis_basics_and_cleanup() -> None:
    server = EmbeddedRedis()
    url = server.start()
    assert server.owned and url.startswith("unix://") and url.endswith("/redis.sock")
    sock = Path(url.removeprefix("unix://"))
    r = redis.Redis.from_url(url)
    try:
        assert r.set("k", "v") and r.get("k") == b"v"
        r.lpush("q", "a", "b")
        assert r.brpop(["q"], timeout=1) == (b"q", b"a")
        p = r.pubsub()
        p.subscribe("ch")
        assert p.get_message(timeout=1)["type"] == "subscribe"
        assert r.publish("ch", "hello") == 1
        assert p.get_message(timeout=1, ignore_subscribe_messages=True)["data"] == b"hello"
        p.close()
    finally:
        r.close()
        server.stop()
    assert not sock.exists()
    assert not sock.parent.exists()
    server.stop()  # idempotent


def test_redis_reuse_on_base_dir(base_dir: Path) -> None:
    with EmbeddedRedis(base_dir / "redis") as first:
        second = EmbeddedRedis(base_dir / "redis")
        assert second.start() == first.url and not second.owned
        second.stop()
        assert redis.Redis.from_url(first.url).ping()
    assert not (base_dir / "redis" / "redis.sock").exists()
    assert (base_dir / "redis").exists()  # a given base_dir is not deleted


def test_redis_dies_with_killed_parent() -> None:
    child, url = _start_in_child("from service.tools.embedded import EmbeddedRedis\nurl = EmbeddedRedis().start()", "")
    r = redis.Redis.from_url(url)
    pid = r.info("server")["process_id"]
    r.close()
    child.send_signal(signal.SIGKILL)
    child.wait()
    try:
        assert _wait_dead(pid, 10), "valkey outlived its killed parent"
    finally:
        # the killed parent could not delete its temp dir
        shutil.rmtree(Path(url.removeprefix("unix://")).parent, ignore_errors=True)
