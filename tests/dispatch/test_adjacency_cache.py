"""The beats' neighbours (who else may take a visit) are cached per process; an import of any district
of the city must bring them up to date, not only an import of the first."""
from __future__ import annotations

from sqlalchemy import select, update

from dispatch.field.squads import adjacency
from geo.models import Beat, District
from service.core.db import sync_session

FAR_AWAY = {"type": "Polygon", "coordinates": [[[0, 0], [0.001, 0], [0.001, 0.001], [0, 0.001], [0, 0]]]}


def test_neighbours_are_computed_again_when_a_later_district_is_imported_again(sync_engine, district) -> None:
    with sync_session(sync_engine) as s:
        first = s.execute(select(District.code).order_by(District.code)).scalar()
        later = first + "-later"  # sorts after the first: the one an import of the city's second district bumps
        s.add(District(code=later, name="later", geometry=FAR_AWAY, version=1))
        s.commit()
        beat, near = next((b, near) for b, near in adjacency(s).items() if len(near) > 2)
        shape = s.get(Beat, beat).geometry
    try:
        with sync_session(sync_engine) as s:
            s.execute(update(Beat).where(Beat.code == beat).values(geometry=FAR_AWAY))
            s.commit()
            assert adjacency(s)[beat] == near, "no import yet: the cached neighbours stand"
            s.execute(update(District).where(District.code == later).values(version=District.version + 1))
            s.commit()
            # Far from every beat now: an island, with its two nearest beats for neighbours.
            assert len(adjacency(s)[beat]) == 2, "the later district's import moved the beat away from the rest"
    finally:
        with sync_session(sync_engine) as s:
            s.execute(update(Beat).where(Beat.code == beat).values(geometry=shape))
            s.execute(District.__table__.delete().where(District.code == later))
            s.commit()
