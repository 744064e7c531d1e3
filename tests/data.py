"""Where the data we did not write lives: the shared sample district, or any district shaped like
it named by QUANZU_DISTRICT_DIR (e.g. one made by ../shared/tools/gen_district.py)."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_DISTRICT = Path(os.environ.get("QUANZU_DISTRICT_DIR") or ROOT.parent / "shared" / "data" / "district")
