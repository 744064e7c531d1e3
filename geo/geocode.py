"""Addresses → WGS-84 points with the center's own geocoder (geopy), cached in PostgreSQL.

`GEOCODER=nominatim` + `GEOCODER_URL` (a center runs its own Nominatim) or `GEOCODER=baidu`
+ `GEOCODER_KEY` (answers in BD-09, normalised like any BD-09 point). Called by the worker
before it locks any lead, never by a request handler; each call is bounded by
GEOCODER_TIMEOUT_SECONDS, and after one failure a job stops asking (the geocoder is down) and
places its remaining address-only leads as if they had no location, with the reason."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

# The stdlib adapter whether or not `requests` is installed (with it, geopy would pick requests and
# urllib3 would retry and report a timeout as "unavailable").
from geopy.adapters import URLLibAdapter
from geopy.exc import GeocoderTimedOut, GeopyError
from geopy.geocoders import BaiduV3, Nominatim
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session, select

from geo.crs import to_wgs84
from geo.models import GeocodeCache
from service.core.logging import log, mask_text
from service.core.settings import Settings

USER_AGENT = "quanzu (district anti-fraud center)"


@dataclass(frozen=True, slots=True)
class Geocoded:
    """What the geocoder said of one address: a WGS-84 point, or why there is none."""
    lon: float | None = None
    lat: float | None = None
    reason: str | None = None  # set when there is no point
    cached: bool = False


class Geocoder:
    """One configured provider: `name` keys the cache, `crs` is what its answers are in."""

    def __init__(self, name: str, backend, crs: str, timeout: float) -> None:
        self.name, self._backend, self.crs, self.timeout = name, backend, crs, timeout

    def lookup(self, address: str) -> Geocoded:
        """Ask the provider (network); raises geopy errors on timeouts and failures."""
        place = self._backend.geocode(address, exactly_one=True, timeout=self.timeout)
        if place is None:
            return Geocoded(reason="address not found by the geocoder")
        lon, lat = to_wgs84(place.longitude, place.latitude, self.crs)
        return Geocoded(lon, lat)


def make_geocoder(settings: Settings) -> Geocoder | None:
    """The configured geocoder, or None when GEOCODER is unset."""
    kind, url, timeout = settings.geocoder, settings.geocoder_url, settings.geocoder_timeout_seconds
    if kind is None:
        return None
    parts = urlsplit(url) if url else None
    scheme = parts.scheme if parts else "https"
    if kind == "nominatim":
        assert parts is not None  # Settings refuses nominatim without GEOCODER_URL
        backend = Nominatim(domain=parts.netloc + parts.path.rstrip("/"), scheme=scheme, user_agent=USER_AGENT,
                            timeout=timeout, proxies={}, adapter_factory=URLLibAdapter)
        return Geocoder(f"nominatim {url}", backend, "wgs84", timeout)
    backend = BaiduV3(api_key=settings.geocoder_key, scheme=scheme, user_agent=USER_AGENT, timeout=timeout,
                      proxies={}, adapter_factory=URLLibAdapter)
    if parts:  # a center's own gateway in front of Baidu's API
        base = f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        backend.api = base + backend.api_path
    return Geocoder(f"baidu {url or 'api.map.baidu.com'}", backend, "bd09", timeout)


def geocode_addresses(session: Session, addresses: Iterable[str], geocoder: Geocoder | None) -> dict[str, Geocoded]:
    """Each address → Geocoded, from the cache or the geocoder; new answers are cached (the
    caller commits). Misses are cached too; failures and timeouts are not (they pass)."""
    wanted = sorted(set(addresses))
    if not wanted:
        return {}
    if geocoder is None:
        return {a: Geocoded(reason="no geocoder configured (GEOCODER unset)") for a in wanted}
    rows = session.exec(select(GeocodeCache).where(GeocodeCache.provider == geocoder.name,
                                                   GeocodeCache.address.in_(wanted))).all()
    out = {r.address: Geocoded(r.lon, r.lat, None if r.found else "address not found by the geocoder", cached=True)
           for r in rows}
    session.commit()  # no transaction stays open while the geocoder is asked
    down: str | None = None
    fresh = []
    for address in wanted:
        if address in out:
            continue
        if down is not None:
            out[address] = Geocoded(reason=down)
            continue
        try:
            answer = geocoder.lookup(address)
        except GeocoderTimedOut:
            down = f"geocoder timed out after {geocoder.timeout:g} s"
        except (GeopyError, OSError, ValueError) as exc:
            down = f"geocoder failed: {type(exc).__name__}: {mask_text(str(exc))[:200]}"
        else:
            out[address] = answer
            fresh.append({"provider": geocoder.name, "address": address, "found": answer.lon is not None,
                          "lon": answer.lon, "lat": answer.lat})
            continue
        log.warning("geocoder_unavailable", provider=geocoder.name, reason=down)
        out[address] = Geocoded(reason=down)
    if fresh:
        stmt = insert(GeocodeCache).values(fresh)
        session.execute(stmt.on_conflict_do_update(
            index_elements=["provider", "address"],
            set_={"found": stmt.excluded.found, "lon": stmt.excluded.lon, "lat": stmt.excluded.lat,
                  "answered_at": stmt.excluded.answered_at}))
    return out
