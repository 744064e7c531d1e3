"""/docs (Swagger UI) and /redoc from files shipped in the package: no page loads anything from
outside (a police intranet has no internet). The assets are vendored under service/static/vendor
(versions and licences in its README.md); FastAPI's "Custom Docs UI Static Assets" recipe."""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

VENDOR = Path(__file__).resolve().parent / "static" / "vendor"
ASSETS = "/docs-static"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"
FAVICON = f"{ASSETS}/swagger-ui/favicon-32x32.png"
# Swagger UI's default validatorUrl (validator.swagger.io) would fetch a badge from outside.
SWAGGER_PARAMETERS = {"validatorUrl": None}


def install_docs(app: FastAPI) -> None:
    """Mount the vendored assets and the two docs pages; create the app with docs_url=None,
    redoc_url=None so FastAPI's CDN-backed pages are not registered."""
    app.mount(ASSETS, StaticFiles(directory=VENDOR), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} – API",
                                   oauth2_redirect_url=OAUTH2_REDIRECT,
                                   swagger_js_url=f"{ASSETS}/swagger-ui/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS}/swagger-ui/swagger-ui.css",
                                   swagger_favicon_url=FAVICON, swagger_ui_parameters=SWAGGER_PARAMETERS)

    @app.get(OAUTH2_REDIRECT, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} – ReDoc",
                              redoc_js_url=f"{ASSETS}/redoc/redoc.standalone.js", redoc_favicon_url=FAVICON,
                              with_google_fonts=False)
