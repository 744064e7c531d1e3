"""/docs and /redoc load nothing from outside the server: a police intranet has no internet."""
from __future__ import annotations

import re
import socket
import threading
import time
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest

PAGES = ("/docs", "/redoc", "/docs/oauth2-redirect")
ABSOLUTE = re.compile(r"""(?:https?:)?//[^\s'"<>)]+""")
ASSET_TYPES = ("text/javascript", "application/javascript", "text/css", "image/png", "image/svg+xml")


class _Refs(HTMLParser):
    """Every src/href of a page, and the text of its inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs) -> None:
        self.refs += [v for k, v in attrs if k in ("src", "href") and v]
        self._in_script = tag == "script"

    def handle_endtag(self, tag) -> None:
        self._in_script = False

    def handle_data(self, data) -> None:
        if self._in_script:
            self.scripts.append(data)


def _local(url: str) -> bool:
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc


@pytest.mark.parametrize("page", PAGES)
async def test_docs_pages_refer_only_to_local_assets(client, page):
    r = await client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    parsed = _Refs()
    parsed.feed(r.text)
    assert page == "/docs/oauth2-redirect" or parsed.refs, "no assets found: the parser missed them"
    assert [u for u in parsed.refs if not _local(u)] == []
    # The JS config too: no absolute URL anywhere in the inline scripts (favicon, validator, spec).
    assert [m for s in parsed.scripts for m in ABSOLUTE.findall(s)] == []
    if page == "/docs":
        assert "validatorUrl" in "".join(parsed.scripts) and "'/openapi.json'" in "".join(parsed.scripts)
    for url in parsed.refs:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.headers["content-type"].split(";")[0] in ASSET_TYPES, (url, asset.headers["content-type"])
        assert len(asset.content) > 500


def test_docs_render_in_a_browser_with_the_network_cut_off(settings, district):
    """Headless Chromium, every request not to our server aborted: Swagger UI still lists the
    operations and ReDoc renders its menu."""
    import playwright.sync_api as playwright  # Debian's Chromium, installed by `make test` (never a download)
    import uvicorn

    from service.main import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None,
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        outside: list[str] = []
        base = f"http://127.0.0.1:{port}"
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
            try:
                page = browser.new_page()

                def route(r):
                    if r.request.url.startswith(base + "/"):
                        return r.continue_()
                    outside.append(r.request.url)
                    return r.abort()

                page.route("**/*", route)
                page.goto(base + "/docs")
                page.wait_for_selector(".opblock-summary-path", timeout=30_000)
                paths = page.locator(".opblock-summary-path").all_inner_texts()
                assert "/api/v1/leads" in [x.replace("\u200b", "").strip() for x in paths]
                page.goto(base + "/redoc")
                page.wait_for_selector("[role=menuitem], .menu-content li", timeout=30_000)
                assert "quanzu" in page.title()
            finally:
                browser.close()
        assert outside == []
    finally:
        server.should_exit = True
        thread.join(15)
