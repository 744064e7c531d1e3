"""Where a lead belongs (pure): by its location or geocoded address, else by the subject's registered residence."""
from __future__ import annotations

from dataclasses import dataclass

from geo.beats import BeatIndex
from geo.crs import to_wgs84
from geo.geocode import Geocoded


@dataclass(frozen=True, slots=True)
class LeadPlacement:
    lon: float | None
    lat: float | None
    beat_code: str | None
    street_code: str | None
    in_jurisdiction: bool | None  # None: nobody can tell yet, the center judges (研判)
    placed_by: str  # location | geocoder | residence | none
    reason: str | None = None  # an address that could not be geocoded, and why

    def as_json(self) -> dict:
        out = {"lon": self.lon, "lat": self.lat, "beat_code": self.beat_code, "street_code": self.street_code,
               "in_jurisdiction": self.in_jurisdiction, "placed_by": self.placed_by}
        if self.reason is not None:
            out["reason"] = self.reason
        return out


def place_lead(lon: float | None, lat: float | None, crs: str | None, id_number: str | None,
               index: BeatIndex, district_code: str, geocoded: Geocoded | None = None) -> LeadPlacement:
    """By the pushed point; else by the geocoded address (`geocoded`: the worker asked the
    center's geocoder before); else by the residence in the ID number; else nobody's yet."""
    if lon is not None and lat is not None and crs:
        wlon, wlat = to_wgs84(lon, lat, crs)
        p = index.locate(wlon, wlat)
        return LeadPlacement(p.lon, p.lat, p.beat_code, p.street_code, p.in_jurisdiction, "location")
    if geocoded is not None and geocoded.lon is not None and geocoded.lat is not None:
        p = index.locate(geocoded.lon, geocoded.lat)
        return LeadPlacement(p.lon, p.lat, p.beat_code, p.street_code, p.in_jurisdiction, "geocoder")
    reason = geocoded.reason if geocoded is not None else None
    # No location: an ID number registered in this district (first six digits = its code) makes the
    # person ours, though no beat can be named; anyone else is left to the center's judgement.
    if id_number and id_number[:6] == district_code:
        return LeadPlacement(None, None, None, None, True, "residence", reason)
    return LeadPlacement(None, None, None, None, None, "none", reason)
