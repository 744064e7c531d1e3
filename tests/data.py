"""Where the data we did not write lives: the shared sample district, or any district shaped like
it named by QUANZU_DISTRICT_DIR (e.g. one made by ../shared/tools/gen_district.py)."""
from __future__ import annotations

import os
from pathlib import Path

from service.core.settings import ROOT, find_sample_district

# A path that does not exist makes the tests that need it skip, saying where they looked.
SHARED_DISTRICT = Path(os.environ.get("QUANZU_DISTRICT_DIR") or find_sample_district()
                       or ROOT.parent / "shared" / "data" / "district")
