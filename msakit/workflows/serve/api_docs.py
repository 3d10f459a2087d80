"""The interactive API documentation of ``msakit serve``, served from this machine.

FastAPI's own ``/docs`` (Swagger UI) and ``/redoc`` load their scripts, styles and favicon from
a CDN (and ReDoc Google's fonts), so on a machine without internet they stay blank. Here the
same pages load the files the ``fastapi-offline`` package bundles (Swagger UI 5 and ReDoc 2;
MIT package, Swagger UI is Apache-2.0, ReDoc MIT), mounted under ``/static/api-docs/``:

- ``GET /docs``: Swagger UI (no validator badge: that would ask validator.swagger.io);
- ``GET /docs/oauth2-redirect``: Swagger UI's OAuth2 redirect page;
- ``GET /redoc``: ReDoc, without Google fonts (and its script served with the one image it
  would fetch from Redocly's CDN, their logo, replaced by an empty inline picture).

The app must be made with ``FastAPI(docs_url=None, redoc_url=None)`` (FastAPI's CDN pages off);
then ``mount_api_docs(app)``. Without ``fastapi-offline`` installed the pages are left out (and
a warning logged) rather than served half-working.
"""

# No `from __future__ import annotations`: FastAPI reads the route functions' annotations.

import logging
from pathlib import Path
from typing import Optional

log = logging.getLogger("msakit.serve")

ASSETS_URL = "/static/api-docs"  # mounted before the page's own /static, so it is matched first
REDOC_CDN_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
BLANK_IMAGE = "data:image/svg+xml,%3Csvg xmlns=%27http://www.w3.org/2000/svg%27 width=%271%27 height=%271%27/%3E"


def assets_dir() -> Optional[Path]:
    """The folder of Swagger UI's and ReDoc's files (from ``fastapi-offline``), or None."""
    from importlib.util import find_spec

    spec = find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    wanted = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
    return folder if all((folder / name).is_file() for name in wanted) else None


def mount_api_docs(app, docs_url: str = "/docs", redoc_url: str = "/redoc") -> bool:
    """Add ``docs_url`` (Swagger UI), its OAuth2 redirect and ``redoc_url`` (ReDoc) to ``app``,
    every file they load served by ``app`` itself. False (and nothing added) without the files."""
    from fastapi import Request
    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
    from fastapi.responses import HTMLResponse, Response
    from fastapi.staticfiles import StaticFiles

    folder = assets_dir()
    if folder is None:
        log.warning("no interactive API docs at %s and %s: the package fastapi-offline is missing (pip install 'msakit[serve]')",
                    docs_url, redoc_url)
        return False
    if app.docs_url or app.redoc_url:
        raise ValueError("make the app with FastAPI(docs_url=None, redoc_url=None): its own /docs and /redoc load files from a CDN")
    redoc_js = {}

    @app.get(f"{ASSETS_URL}/redoc.standalone.js", include_in_schema=False)
    def redoc_script() -> Response:
        # ReDoc's side menu shows Redocly's logo from their CDN whatever the options: that one
        # image becomes an empty local picture (the "API docs by Redocly" link stays).
        if "body" not in redoc_js:
            redoc_js["body"] = (folder / "redoc.standalone.js").read_bytes().replace(REDOC_CDN_LOGO.encode(), BLANK_IMAGE.encode())
        return Response(redoc_js["body"], media_type="text/javascript; charset=utf-8", headers={"Cache-Control": "public, max-age=3600"})

    app.mount(ASSETS_URL, StaticFiles(directory=folder), name="api-docs")  # after the route above, which it would hide
    redirect_url = app.swagger_ui_oauth2_redirect_url or f"{docs_url}/oauth2-redirect"
    # No validator: Swagger UI would otherwise ask validator.swagger.io about the schema.
    swagger_parameters = {"validatorUrl": None, **(app.swagger_ui_parameters or {})}

    def root(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    @app.get(docs_url, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        base = root(request)
        return get_swagger_ui_html(openapi_url=base + app.openapi_url, title=f"{app.title}: API (Swagger UI)",
                                   oauth2_redirect_url=base + redirect_url,
                                   swagger_js_url=f"{base}{ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{base}{ASSETS_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{base}{ASSETS_URL}/favicon.png",
                                   swagger_ui_parameters=swagger_parameters)

    @app.get(redirect_url, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        base = root(request)
        return get_redoc_html(openapi_url=base + app.openapi_url, title=f"{app.title}: API (ReDoc)",
                              redoc_js_url=f"{base}{ASSETS_URL}/redoc.standalone.js",
                              redoc_favicon_url=f"{base}{ASSETS_URL}/favicon.png", with_google_fonts=False)

    return True


__all__ = ["ASSETS_URL", "assets_dir", "mount_api_docs"]
