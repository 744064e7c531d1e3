"""Where a lead belongs (pure): by its location or geocoded address, else by the subject's registered
residence — the district of the city as well as the beat."""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from geo.beats import CityIndex
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
    district_code: str | None = None  # the district of the city it is in (None: outside, or nobody can tell)
    destination: str | None = None  # outside the city: where it is handed to (destination_of)

    def as_json(self) -> dict:
        out = {"lon": self.lon, "lat": self.lat, "beat_code": self.beat_code, "street_code": self.street_code,
               "district_code": self.district_code, "in_jurisdiction": self.in_jurisdiction,
               "placed_by": self.placed_by}
        if self.reason is not None:
            out["reason"] = self.reason
        if self.destination is not None:
            out["destination"] = self.destination
        return out


def place_lead(lon: float | None, lat: float | None, crs: str | None, id_number: str | None,
               index: CityIndex, district_codes: Collection[str], geocoded: Geocoded | None = None) -> LeadPlacement:
    """By the pushed point; else by the geocoded address (`geocoded`: the worker asked the
    center's geocoder before); else by the residence in the ID number; else nobody's yet.
    `district_codes`: the districts of the city (region codes, as the ID number's first six digits)."""
    if lon is not None and lat is not None and crs:
        wlon, wlat = to_wgs84(lon, lat, crs)
        p = index.locate(wlon, wlat)
        return LeadPlacement(p.lon, p.lat, p.beat_code, p.street_code, p.in_jurisdiction, "location",
                             district_code=p.district_code, destination=_outside(p.in_jurisdiction, id_number,
                                                                                 district_codes))
    if geocoded is not None and geocoded.lon is not None and geocoded.lat is not None:
        p = index.locate(geocoded.lon, geocoded.lat)
        return LeadPlacement(p.lon, p.lat, p.beat_code, p.street_code, p.in_jurisdiction, "geocoder",
                             district_code=p.district_code, destination=_outside(p.in_jurisdiction, id_number,
                                                                                 district_codes))
    reason = geocoded.reason if geocoded is not None else None
    # No location: an ID number registered in a district of the city (first six digits = its code)
    # makes the person that district's, though no beat can be named; anyone else is left to the
    # city center's judgement.
    if id_number and id_number[:6] in district_codes:
        return LeadPlacement(None, None, None, None, True, "residence", reason, district_code=id_number[:6])
    return LeadPlacement(None, None, None, None, None, "none", reason)


def _outside(in_jurisdiction: bool | None, id_number: str | None, district_codes: Collection[str]) -> str | None:
    return destination_of(id_number, district_codes) if in_jurisdiction is False else None


def destination_of(id_number: str | None, district_codes: Collection[str]) -> str:
    """Where a lead outside the city goes (移交): the region of the person's registered residence
    (the ID number's first six digits) when it is not one of the city's, else just "outside_city"."""
    region = (id_number or "")[:6]
    if len(region) == 6 and region.isdigit() and region not in district_codes:
        return region
    return "outside_city"
