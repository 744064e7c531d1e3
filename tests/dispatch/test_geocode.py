"""Address-only leads, geocoded by the worker against a real local HTTP server that answers as
Nominatim (and as Baidu's geocoding API) does, slowly or with errors when told to."""
from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from geo.crs import from_wgs84
from geo.geocode import make_geocoder
from geo.models import GeocodeCache
from tests.factories import INSIDE, make_lead
from workers.tasks import ctx

pytestmark = pytest.mark.usefixtures("district", "clean")


class FakeGeocoder(ThreadingHTTPServer):
    """Nominatim's /search and Baidu's /geocoding/v3/, from a table of known addresses (WGS-84)."""
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.places: dict[str, tuple[float, float]] = {}
        self.mode = "ok"  # ok | error | slow
        self.asked: Counter[str] = Counter()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeGeocoder

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        q = parse_qs(parts.query)
        address = (q.get("q") or q.get("address") or [""])[0]
        self.server.asked[address] += 1
        if self.server.mode == "slow":
            time.sleep(2)
        if self.server.mode == "error":
            return self._send(500, {"error": "database offline"})
        point = self.server.places.get(address)
        if parts.path == "/search":  # Nominatim: a list of places, lat/lon as strings
            body = [] if point is None else [{"place_id": 1, "lat": str(point[1]), "lon": str(point[0]),
                                              "display_name": address, "class": "building"}]
            return self._send(200, body)
        if parts.path == "/geocoding/v3/":  # Baidu: BD-09 lng/lat
            if point is None:
                return self._send(200, {"status": 1, "msg": "Internal Service Error:无相关结果", "results": []})
            lng, lat = from_wgs84(*point, "bd09")
            return self._send(200, {"status": 0, "result": {"location": {"lng": lng, "lat": lat}, "precise": 1,
                                                            "confidence": 80, "level": "门址"}})
        self._send(404, {"error": "no such path"})

    def _send(self, status: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass


@pytest.fixture
def fake():
    server = FakeGeocoder()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def use_geocoder(settings):
    """Configure the worker's geocoder as a center would (GEOCODER, GEOCODER_URL, …)."""
    def use(**config):
        ctx.__dict__["geocoder"] = make_geocoder(settings.model_copy(update=config))
    yield use
    ctx.__dict__.pop("geocoder", None)


def _address() -> str:
    return f"山东省青岛市市南区测试路 {uuid.uuid4().hex[:6]} 号"


def address_lead(address: str, **top) -> dict:
    return make_lead(location=None, **top) | {"location": {"kind": "address", "address": address}}


async def _push(client, headers, lead) -> int:
    r = await client.post("/api/v1/leads", json=lead, headers=headers)
    assert r.status_code == 202, r.text
    return r.json()["id"]


async def _detail(client, commander, lead_id) -> dict:
    r = await client.get(f"/api/v1/leads/{lead_id}", headers=commander)
    assert r.status_code == 200
    return r.json()


async def test_an_address_only_lead_is_placed_by_the_geocoder_and_cached(
        client, source_headers, commander, run_worker, fake, use_geocoder, sync_engine):
    use_geocoder(geocoder="nominatim", geocoder_url=fake.url, geocoder_timeout_seconds=2)
    address = _address()
    fake.places[address] = (INSIDE["lon"], INSIDE["lat"])
    first = await _push(client, source_headers, address_lead(address))
    await run_worker()
    d = await _detail(client, commander, first)
    assert d["location"]["address"] == address and d["location"]["lon"] is None
    assert d["placement"]["placed_by"] == "geocoder"
    assert (d["placement"]["beat_code"], d["placement"]["street_code"]) == (INSIDE["beat"], INSIDE["street"])
    assert d["status"] == "tiered" and "reason" not in d["placement"]
    placed = [e for e in d["timeline"] if e["kind"] == "placed"][0]["data"]
    assert placed["placed_by"] == "geocoder" and abs(placed["lon"] - INSIDE["lon"]) < 1e-9
    with sync_engine.connect() as conn:
        cached = conn.execute(select(GeocodeCache).where(GeocodeCache.address == address)).one()
    assert cached.found and cached.provider == f"nominatim {fake.url}"
    assert fake.asked[address] == 1

    # The same address again, while the geocoder is down: the cache answers.
    fake.mode = "error"
    second = await _push(client, source_headers, address_lead(address))
    await run_worker()
    assert fake.asked[address] == 1
    assert (await _detail(client, commander, second))["placement"]["beat_code"] == INSIDE["beat"]


async def test_with_the_geocoder_failing_or_slow_the_lead_is_placed_as_before_with_the_reason(
        client, source_headers, commander, run_worker, fake, use_geocoder, sync_engine):
    as_before = await _push(client, source_headers, make_lead(location=None))
    await run_worker()
    before = (await _detail(client, commander, as_before))["placement"]

    use_geocoder(geocoder="nominatim", geocoder_url=fake.url, geocoder_timeout_seconds=0.5)
    fake.mode = "error"
    failed = await _push(client, source_headers, address_lead(_address()))
    await run_worker()
    p = (await _detail(client, commander, failed))["placement"]
    assert {k: p[k] for k in before} == before and p["placed_by"] in ("residence", "none")
    assert p["reason"].startswith("geocoder failed:") and "500" in p["reason"]

    fake.mode = "slow"
    # one batch, so one job holds all three (single pushes after a quiet spell go out one job each)
    r = await client.post("/api/v1/leads/batch", json={"leads": [address_lead(_address()) for _ in range(3)]},
                          headers=source_headers)
    slow = [x["id"] for x in r.json()["results"]]
    assert len(slow) == 3
    await run_worker()
    for lead_id in slow:
        p = (await _detail(client, commander, lead_id))["placement"]
        assert {k: p[k] for k in before} == before and p["reason"] == "geocoder timed out after 0.5 s"
    assert sum(fake.asked.values()) == 2  # one failed call, one timed out: the rest of the job did not wait
    with sync_engine.connect() as conn:  # failures are not cached: the next job asks again
        assert conn.execute(select(GeocodeCache).where(GeocodeCache.provider == f"nominatim {fake.url}")).all() == []


async def test_an_unknown_address_and_no_geocoder_are_reasons_too(
        client, source_headers, commander, run_worker, fake, use_geocoder):
    unknown = await _push(client, source_headers, address_lead(_address()))
    await run_worker()  # no GEOCODER configured
    assert (await _detail(client, commander, unknown))["placement"]["reason"] == \
        "no geocoder configured (GEOCODER unset)"
    use_geocoder(geocoder="nominatim", geocoder_url=fake.url)
    missing = await _push(client, source_headers, address_lead(_address()))
    await run_worker()
    assert (await _detail(client, commander, missing))["placement"]["reason"] == "address not found by the geocoder"


async def test_baidu_answers_in_bd09_are_normalised(client, source_headers, commander, run_worker, fake,
                                                    use_geocoder):
    use_geocoder(geocoder="baidu", geocoder_key="test-key", geocoder_url=fake.url)
    address = _address()
    fake.places[address] = (INSIDE["lon"], INSIDE["lat"])
    lead_id = await _push(client, source_headers, address_lead(address))
    await run_worker()
    p = (await _detail(client, commander, lead_id))["placement"]
    assert p["placed_by"] == "geocoder" and p["beat_code"] == INSIDE["beat"]
    assert abs(p["lon"] - INSIDE["lon"]) < 1e-6 and abs(p["lat"] - INSIDE["lat"]) < 1e-6


async def test_address_only_validation(client, source_headers):
    r = await client.post("/api/v1/leads", json=make_lead(location=None) | {"location": {"kind": "address"}},
                          headers=source_headers)
    assert r.status_code == 422 and [e["field"] for e in r.json()["detail"]] == ["location.address"]
    r = await client.post("/api/v1/leads", json=address_lead("x" * 501), headers=source_headers)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "location.address"
    # Without kind address, coordinates are still required.
    r = await client.post("/api/v1/leads", json=make_lead(location=None) | {"location": {"address": "某路 1 号"}},
                          headers=source_headers)
    assert r.status_code == 422 and {e["field"] for e in r.json()["detail"]} >= {"location.lon", "location.lat"}
    batch = {"leads": [address_lead(_address()), address_lead("")]}
    r = await client.post("/api/v1/leads/batch", json=batch, headers=source_headers)
    assert [x["status"] for x in r.json()["results"]] == ["accepted", "rejected"]


def test_settings_refuse_an_incomplete_geocoder(settings):
    from pydantic import ValidationError

    from service.core.settings import Settings

    with pytest.raises(ValidationError, match="GEOCODER_URL"):
        Settings(geocoder="nominatim")
    with pytest.raises(ValidationError, match="GEOCODER_KEY"):
        Settings(geocoder="baidu")
