"""A server run as a child process of the quanzu process that starts it, and dying with it (Linux
`PR_SET_PDEATHSIG`), so a `kill -9` of quanzu never leaves a server behind; and what starting one
needs: private folders, a start-up lock between processes, the tail of its log."""
from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import pwd
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Self

MAX_SOCKET_PATH = 103  # sun_path is 104 bytes on macOS, 108 on Linux (including the NUL)

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
# PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, not the process.
# Worker threads of anyio / asyncio.to_thread are reaped when idle, which would kill the
# server; so children forked off the main thread come from this one long-lived thread.
_spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="quanzu-embedded-spawn")


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


def spawn(args: list[str], *, log: IO[bytes], cwd: Path, signum: int,
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


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def check_socket_path(path: Path) -> None:
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise RuntimeError(f"unix socket path too long ({len(os.fsencode(path))} > {MAX_SOCKET_PATH} bytes): {path}")


@contextlib.contextmanager
def flock(path: Path) -> Iterator[None]:
    """Serialise start-up between processes sharing a directory (API, worker, simulator)."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def make_private_dir(path: Path) -> None:
    """mkdir -p with mode 700 for `path`; parents we create stay traversable (o+x)."""
    created_parents = [p for p in path.parents if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for p in created_parents:
        p.chmod(p.stat().st_mode | stat.S_IXOTH)
    path.chmod(0o700)


def private_temp_dir(prefix: str) -> Path:
    """A fresh temporary folder (mode 700) for an embedded server of a test or a benchmark."""
    return Path(tempfile.mkdtemp(prefix=prefix))


class ChildServer:
    """An embedded server: `start()` it (or find it running) and `stop()` what this process started;
    `with server:` does both."""

    def start(self) -> str:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
