"""A JSON response rendered by orjson: datetimes as ISO 8601, UTF-8 (Chinese) as is."""
from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)
