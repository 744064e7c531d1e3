"""`Idempotency-Key` (as payment APIs have it): a client that may send an action twice — the field
page resends what it made offline once the network is back — sends a key of its own; the first
answer is stored with the action, in the same transaction, and every later request with the same
key by the same user gets that answer again, the action applied once. Two requests with one key
at the same moment: the second waits on the first's row, then reads its answer."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert

from service.core.errors import ValidationFailed
from service.core.models import IdempotentRequest

HEADER = "Idempotency-Key"
MAX_KEY = 200


async def idempotent(request: Request, session, actor: str, action: Callable[[], Awaitable[Any]]) -> Any:
    """Run `action` once per (actor, key); without the header, just run it."""
    key = request.headers.get(HEADER)
    if key is None:
        return await action()
    if not 1 <= len(key) <= MAX_KEY or not key.isprintable():
        raise ValidationFailed([{"field": HEADER, "message": f"1 to {MAX_KEY} printable characters"}])
    method, path = request.method, request.url.path
    row = (await session.execute(insert(IdempotentRequest).values(
        actor=actor, key=key, method=method, path=path, status_code=0)
        .on_conflict_do_nothing(index_elements=["actor", "key"]).returning(IdempotentRequest.key))).first()
    if row is None:
        prev = await session.get(IdempotentRequest, (actor, key))
        if (prev.method, prev.path) != (method, path):
            raise ValidationFailed([{"field": HEADER, "message": f"already used for {prev.method} {prev.path}"}])
        return JSONResponse(prev.body, status_code=prev.status_code, headers={"Idempotent-Replayed": "true"})
    result = await action()
    model = getattr(request.scope.get("route"), "response_model", None)  # the answer as the client gets it
    body = (model.model_validate(result).model_dump(mode="json") if isinstance(model, type) and
            issubclass(model, BaseModel) else jsonable_encoder(result))
    await session.execute(update(IdempotentRequest).where(IdempotentRequest.actor == actor,
                                                          IdempotentRequest.key == key)
                          .values(status_code=200, body=body))
    return result
