"""Browser tests: Playwright for Python driving Debian's Chromium (never `playwright install`)
against a real `quanzu serve` and `quanzu worker` on this run's database and Redis db.

Missing browser pieces fail the run with what to install (`make test` installs them as root);
they never skip silently. Every request the pages make is checked: anything not to the local
server is aborted and the test fails."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

CHROMIUM = os.environ.get("QUANZU_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
SCREENSHOTS = Path(__file__).parent / "screenshots"
WALL, PHONE = {"width": 1920, "height": 1080}, {"width": 390, "height": 844}
INSTALL_HINT = ("browser tests need Chromium and CJK fonts: `apt-get install -y chromium fonts-noto-cjk` (as root; "
                "`make test` does it when it can) and the `playwright` package (`pip install -e '.[dev]'`)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser(live):
    # Module scope: sync Playwright keeps its event loop running while open, which the async
    # fixtures of the other test modules must not meet.
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(INSTALL_HINT, pytrace=False)
    if not Path(CHROMIUM).exists() or shutil.which("fc-list") and not re.search(
            r"Noto Sans CJK", subprocess.run(["fc-list"], capture_output=True, text=True).stdout):
        pytest.fail(INSTALL_HINT, pytrace=False)
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class Live:
    """A served quanzu (API + one worker) the browser talks to."""
    base: str
    procs: list = field(default_factory=list)
    routes: set[tuple[str, str]] = field(default_factory=set)  # ("post", "/api/v1/leads/{lead_id}/assign")

    def has(self, method: str, pattern: str) -> bool:
        """`pattern` with `{}` for any path parameter, as the pages' Api.has does."""
        rx = re.compile("^" + re.escape(pattern).replace(r"\{\}", r"\{[^/]+\}") + "$")
        return any(m == method and rx.match(p) for m, p in self.routes)

    def missing(self, *needs: tuple[str, str]) -> list[str]:
        return [f"{m.upper()} {p}" for m, p in needs if not self.has(m, p)]


def _socket_opens(base: str, path: str) -> bool:
    """Does the served app accept a WebSocket at `path`? (WebSocket routes are not in OpenAPI.)"""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    try:
        with connect(base.replace("http://", "ws://") + path, open_timeout=5):
            return True
    except InvalidStatus:
        return False


@pytest.fixture(scope="module")
def live(request, settings, district, tmp_path_factory):
    """A module may set `LIVE_ENV` (extra environment: sweeps every second, ...) and `LIVE_POLICY`
    (the text of a policy file with short deadlines) for its own server and worker."""
    from service.tools.demo import die_with_parent

    port = _free_port()
    extra = dict(getattr(request.module, "LIVE_ENV", {}))
    if policy := getattr(request.module, "LIVE_POLICY", None):
        path = tmp_path_factory.mktemp("policy") / "policy.toml"
        path.write_text(policy, encoding="utf-8")
        extra["POLICY_FILE"] = str(path)
    # Few connections: the machine's PostgreSQL is shared by parallel test runs.
    # A queue of their own: the rest of the suite's jobs are never taken by this worker.
    env = {**os.environ, "LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1", "INTAKE_POOL_SIZE": "2", "DB_POOL_SIZE": "3",
           "QUEUE_NAME": f"e2e-{uuid.uuid4().hex[:6]}", **extra}
    procs = [subprocess.Popen([sys.executable, "-m", "service.cli", *args], env=env, preexec_fn=die_with_parent)
             for args in (["serve", "--port", str(port)], ["worker"])]
    base = f"http://127.0.0.1:{port}"
    try:  # stop both whatever happens: a leaked worker would eat the queue of later test runs
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "quanzu serve did not start"
            time.sleep(0.2)
        routes = {(m.lower(), p) for p, ops in httpx.get(base + "/openapi.json").json()["paths"].items() for m in ops}
        routes |= {("ws", p) for p in ("/api/v1/ws", "/api/v1/board/ws") if _socket_opens(base, p)}
        yield Live(base, procs, routes)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


@dataclass
class Watch:
    """What a page did that it must not: console errors, uncaught errors, requests off this host."""
    live: Live
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def attach(self, context) -> None:
        def route(r):
            host = httpx.URL(r.request.url).host
            if host in ("127.0.0.1", "localhost") or r.request.url.startswith(("data:", "blob:")):
                r.continue_()
            else:
                self.outside.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        context.on("page", self._page)

    def _page(self, page) -> None:
        def console(m) -> None:
            # Chromium itself reports a load it refused while a test holds the phone offline
            # (context.set_offline): the test's doing, not the page's.
            if m.type == "error" and "ERR_INTERNET_DISCONNECTED" not in m.text:
                self.errors.append(m.text)

        page.on("console", console)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

    def check(self) -> None:
        assert self.errors == [], self.errors
        assert self.outside == [], f"requests left localhost: {self.outside}"


@pytest.fixture
def watch(live):
    return Watch(live)


def login(page, username: str, password: str = "pw-123456") -> None:
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
