"""Request bodies a route reads itself (orjson, no pydantic round trip: the service names each bad
field), and how /openapi.json still documents them.

    @router.post("/cases", openapi_extra=documented_body(CaseIn), ...)
    async def push_case(request: Request, ...):
        raw = await json_body(request)
"""
from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from pydantic import BaseModel

from service.core.errors import BadRequest


def parse_json(body: bytes) -> Any:
    """The parsed body; malformed JSON → 400 naming the whole body (field "")."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest([{"field": "", "message": f"malformed JSON: {exc}"}]) from None


async def json_body(request: Request) -> Any:
    return parse_json(await request.body())


def documented_body(model: type[BaseModel], *, in_components: bool = False) -> dict:
    """`openapi_extra=` for a route that reads its body itself: the body is `model`, its schema inline,
    or a reference to components when the app factory registers it there (`in_components`)."""
    schema = ({"$ref": f"#/components/schemas/{model.__name__}"} if in_components else
              model.model_json_schema(ref_template="#/components/schemas/{model}"))
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}
