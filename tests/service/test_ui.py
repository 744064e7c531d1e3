"""The pages are served by the app beside the API, without changing any API answer."""
from __future__ import annotations

import json
import re

import httpx

from service.main import create_app


async def test_screen_field_page_and_assets_are_served(client):
    r = await client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"] and "指挥调度" in r.text
    assert (await client.get("/m", follow_redirects=False)).headers["location"] == "/m/"
    m = await client.get("/m/")
    assert m.status_code == 200 and "劝阻处置" in m.text
    desk = await client.get("/desk")
    assert desk.status_code == 200 and "工作台" in desk.text
    sw = await client.get("/m/sw.js")  # the field page's service worker, scoped to /m/
    assert sw.status_code == 200 and "javascript" in sw.headers["content-type"]
    assert not re.search(r"https?://", sw.text)  # it caches our own files only
    for page in (r.text, m.text, desk.text):  # every script and stylesheet is ours, from /ui
        refs = re.findall(r'(?<![:\w-])(?:src|href)="([^"]+)"', page)  # :href is a binding
        pages = ("/", "/desk", "/m/")  # links between our own pages
        assert refs and all(x.startswith(("/ui/", "data:", "#")) or x in pages for x in refs), refs
        for ref in refs:
            if ref.startswith("/ui/"):
                assert (await client.get(ref)).status_code == 200, ref


async def test_pages_do_not_touch_the_api_or_its_schema(client):
    schema = (await client.get("/openapi.json")).json()
    assert not any(p in ("/", "/m", "/m/", "/desk", "/m/sw.js") or p.startswith("/ui/") for p in schema["paths"])
    missing = await client.get("/api/v1/no-such-thing")
    assert missing.status_code == 404 and set(missing.json()) == {"error", "detail"}
    assert (await client.get("/docs")).status_code == 200 and (await client.get("/healthz")).status_code == 200


async def test_tile_server_setting_reaches_the_pages(settings, client):
    default = (await client.get("/ui/config.js")).text
    assert json.loads(default.removeprefix("window.QUANZU = ").rstrip(";"))["tileUrl"] is None
    app = create_app(settings.model_copy(update={"ui_tile_url": "http://tiles.intranet/{z}/{x}/{y}.png"}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as other:
        body = (await other.get("/ui/config.js")).text  # needs no lifespan: settings only
    assert json.loads(body.removeprefix("window.QUANZU = ").rstrip(";"))["tileUrl"].startswith("http://tiles.intranet/")
