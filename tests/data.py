"""Which district the tests stand on, decided here and nowhere else.

- `SHARED_DISTRICT`: the shared sample district beside the clone (../shared/data/district; CI always
  has it), or any district shaped like it named by QUANZU_DISTRICT_DIR (e.g. one made by
  ../shared/tools/gen_district.py). Its leads, cases and their truth files are data we did not write.
- `district_dir()`: a district to stand on for tests that need only *a district* (outline, streets,
  beats, stations, squads): the shared one when its five files are there, else one made by our own
  generator (`service.tools.gen_district`) in a temporary directory, once per process.
- `shared_file(name)` / `shared_tool(name)`: a file of the shared data set itself (a feed held against
  its truth, a second generator). Missing, the test fails saying where it looked: a bare clone must
  not pass by skipping what it could not check."""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from service.core.settings import ROOT, find_sample_district

SHARED_DISTRICT = Path(os.environ.get("QUANZU_DISTRICT_DIR") or find_sample_district()
                       or ROOT.parent / "shared" / "data" / "district")
DISTRICT_FILES = ("district.geojson", "streets.geojson", "beats.geojson", "stations.json", "teams.json")


def _missing(path: Path, what: str) -> str:
    return (f"{path} not found: {what}. Put ../shared beside the clone ({ROOT.parent / 'shared'}), as CI "
            f"has it, or point QUANZU_DISTRICT_DIR at a copy of shared/data/district.")


def shared_file(name: str) -> Path:
    """A file of the shared data set (leads.jsonl, leads_truth.jsonl, cases.jsonl, cases_truth.jsonl,
    manifest.json); fails the calling test or fixture when it is not there."""
    path = SHARED_DISTRICT / name
    if not path.is_file():
        pytest.fail(_missing(path, "this test checks the shared sample data set itself (data we did not write, "
                                   "held against its truth), which a district of our own cannot stand in for"),
                    pytrace=False)
    return path


def shared_tool(name: str) -> Path:
    """A script of shared/tools (beside shared/data); fails the calling test or fixture when it is not there."""
    path = SHARED_DISTRICT.parent.parent / "tools" / name
    if not path.is_file():
        pytest.fail(_missing(path, "this test runs the shared tools' district generator, written apart from ours"),
                    pytrace=False)
    return path


@functools.cache
def district_dir() -> Path:
    """The shared district when its five files are there, else ours, generated once per process."""
    if all((SHARED_DISTRICT / name).is_file() for name in DISTRICT_FILES):
        return SHARED_DISTRICT
    from service.tools.gen_district import DistrictSpec, write_district

    parent = Path(tempfile.mkdtemp(prefix="quanzu-test-district-"))
    atexit.register(shutil.rmtree, parent, ignore_errors=True)
    write_district(parent / "district", DistrictSpec())
    return parent / "district"


def district_is_generated() -> bool:
    return district_dir() != SHARED_DISTRICT
