"""A real Kannel on loopback for the tests and the bench: bearerbox + smsbox from a temp dir config
(channels.md), `fakesmsc` as the SMSC in interactive mode (its stdin sends MO, its log prints every
MT as `Got message N: <from to coding text>`), and quanzu's API in its own uvicorn process, which
Kannel calls back for delivery reports and replies. Free ports; every process stopped, even on failure."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote_to_bytes

import httpx

from tests.mobile_api.conftest import ApiProcess

ROOT = Path(__file__).resolve().parents[2]
BEARERBOX, SMSBOX = "/usr/sbin/bearerbox", "/usr/sbin/smsbox"
FAKESMSC = "/usr/lib/kannel/test/fakesmsc"
INSTALL = "apt-get install -y kannel kannel-extras"


def missing() -> str | None:
    gone = [p for p in (BEARERBOX, SMSBOX, FAKESMSC) if not os.access(p, os.X_OK)]
    return f"Kannel is missing ({', '.join(gone)}): {INSTALL}" if gone else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


CONFIG = """group = core
admin-port = {admin}
admin-password = {password}
smsbox-port = {smsbox}
log-file = "{dir}/bearerbox.log"
log-level = 1
access-log = "{dir}/access.log"
box-allow-ip = 127.0.0.1
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = fake
port = {smsc}
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
sendsms-port = {sendsms}
log-file = "{dir}/smsbox.log"
log-level = 1

group = sendsms-user
username = quanzu
password = {password}
max-messages = 10
concatenation = true

group = sms-service
keyword = default
catch-all = true
max-messages = 0
omit-empty = true
get-url = "{api}/api/v1/sms/kannel/mo?key={key}&from=%p&to=%P&text=%a"
"""


@dataclass
class MT:
    """A message fakesmsc received (an MT), decoded."""
    sender: str
    to: str
    coding: str
    text: str


@dataclass
class Kannel:
    dir: Path
    api_url: str
    api_key: str
    password: str = "secret-pw"
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['sendsms']}/cgi-bin/sendsms"

    def start(self) -> Kannel:
        self.ports = {k: free_port() for k in ("admin", "smsbox", "smsc", "sendsms")}
        conf = self.dir / "kannel.conf"
        conf.write_text(CONFIG.format(dir=self.dir, password=self.password, api=self.api_url, key=self.api_key,
                                      **self.ports))
        try:
            self._spawn("bearerbox", [BEARERBOX, str(conf)])
            wait_port(self.ports["smsbox"], self.procs["bearerbox"], "bearerbox")
            wait_port(self.ports["smsc"], self.procs["bearerbox"], "bearerbox (the fake SMSC port)")
            self._spawn("smsbox", [SMSBOX, str(conf)])
            wait_port(self.ports["sendsms"], self.procs["smsbox"], "smsbox")
            self._spawn("fakesmsc", [FAKESMSC, "-H", "127.0.0.1", "-r", str(self.ports["smsc"])], stdin=True)
            self._wait_smsc_online()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, argv: list[str], stdin: bool = False) -> None:
        log = open(self.dir / f"{name}.out", "wb")
        self.procs[name] = subprocess.Popen(argv, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                            start_new_session=True)

    def _wait_smsc_online(self, timeout: float = 20) -> None:
        """bearerbox's status page says the fake SMSC is online."""
        url = f"http://127.0.0.1:{self.ports['admin']}/status.txt?password={self.password}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if re.search(r"fake\S*\s.*online", httpx.get(url, timeout=1).text):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("fakesmsc did not come online in bearerbox")

    def stop(self) -> None:
        for name in ("fakesmsc", "smsbox", "bearerbox"):
            p = self.procs.pop(name, None)
            if p is None or p.poll() is not None:
                continue
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)

    # ------------------------------------------------------------ what fakesmsc saw and sends
    def mo(self, sender: str, text: str, to: str = "96110") -> None:
        """The person's phone sends an SMS to `to` (fakesmsc's interactive mode: one line each)."""
        p = self.procs["fakesmsc"]
        p.stdin.write(f"{sender} {to} text {text}\n".encode())
        p.stdin.flush()

    def received(self) -> list[MT]:
        out = []
        for m in re.finditer(rb"Got message \d+: <(\S+) (\S+) (\S+) (.*)>\n", (self.dir / "fakesmsc.out").read_bytes()):
            raw = unquote_to_bytes(m.group(4).replace(b"+", b" "))
            coding = m.group(3).decode()
            out.append(MT(m.group(1).decode(), m.group(2).decode(), coding,
                          raw.decode("utf-16-be" if coding == "ucs-2" else "latin-1")))
        return out

    def access_log(self) -> str:
        return (self.dir / "access.log").read_text("utf-8", "replace")

    def sent_flags(self) -> list[tuple[str, int, int]]:
        """(to, mclass, coding) of each MT in bearerbox's access log (`flags:mclass:coding:mwi:compress:dlrmask`)."""
        return [(m.group(1), int(m.group(2)), int(m.group(3))) for m in re.finditer(
            r"Sent SMS .*?\[to:([^\]]*)\] \[flags:(-?\d+):(-?\d+):", self.access_log())]


class Api(ApiProcess):
    """quanzu's API in its own process, reachable by Kannel (the field tests' ApiProcess)."""

    def __init__(self, database_url: str, redis_url: str, env: dict[str, str] | None = None):
        super().__init__(SimpleNamespace(database_url=database_url, redis_url=redis_url),
                         env={"DB_POOL_SIZE": "8", **(env or {})})

    @property
    def url(self) -> str:
        return self.http
