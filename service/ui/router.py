"""Serves the pages and their assets (roof: mounted by the app factory). Not part of the API schema."""
from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

UI_DIR = Path(__file__).parent
router = APIRouter(include_in_schema=False)
_NO_STORE = {"Cache-Control": "no-cache"}


@router.get("/")
async def screen() -> FileResponse:
    return FileResponse(UI_DIR / "index.html", headers=_NO_STORE)


@router.get("/desk")
async def desk() -> FileResponse:
    """操作员工作台: the operators' page (calls, callbacks, alarms)."""
    return FileResponse(UI_DIR / "desk.html", headers=_NO_STORE)


@router.get("/review")
async def review_page() -> FileResponse:
    """预警后发案倒查: one case's review, laid out for print (?case=CASE_ID)."""
    return FileResponse(UI_DIR / "review.html", headers=_NO_STORE)


@router.get("/m")
async def field_redirect() -> RedirectResponse:
    return RedirectResponse("/m/")


@router.get("/m/")
async def field_page() -> FileResponse:
    return FileResponse(UI_DIR / "m" / "index.html", headers=_NO_STORE)


@router.get("/m/sw.js")
async def field_service_worker() -> FileResponse:
    """The field page's service worker; served under /m/ so its scope is the page (offline loads)."""
    return FileResponse(UI_DIR / "m" / "sw.js", media_type="text/javascript", headers=_NO_STORE)


@router.get("/ui/config.js")
async def config(request: Request) -> Response:
    """What the pages need from the settings: the optional tile server (none by default)."""
    s = request.app.state.settings
    body = "window.QUANZU = " + json.dumps({"tileUrl": s.ui_tile_url, "tileAttribution": s.ui_tile_attribution}) + ";"
    return Response(body, media_type="text/javascript", headers=_NO_STORE)


def mount_ui(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/ui", StaticFiles(directory=UI_DIR, html=False), name="ui")
