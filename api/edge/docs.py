"""The OpenAPI pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served with their files.

FastAPI's own pages load Swagger UI, ReDoc, a favicon and Google fonts from CDNs; these load
only files of this server: the ones the ``fastapi-offline`` package ships (Swagger UI 5 and
ReDoc 2 bundles, MIT/Apache-2.0), served under :data:`ASSETS`. The package is only a carrier of
those files: its code is never imported. Each page answers with its own Content-Security-Policy
(see :mod:`api.edge.headers`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.edge.headers import page_policy

ASSETS = "/docs/assets"
"""Where the pages' files are served."""

_SELF = ("'self'",)


def assets_folder() -> Path:
    """The folder of Swagger UI and ReDoc files that ``fastapi-offline`` installs."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the fastapi-offline package (the docs pages' files) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@dataclass(frozen=True, slots=True)
class Page:
    html: str
    policy: str

    def response(self) -> HTMLResponse:
        return HTMLResponse(self.html, headers={"Content-Security-Policy": self.policy})


@lru_cache(maxsize=8)
def swagger_page(*, title: str, openapi_url: str, root: str) -> Page:
    body = get_swagger_ui_html(
        openapi_url=root + openapi_url,
        title=f"{title} - Swagger UI",
        swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
        oauth2_redirect_url=None,
        # no badge image from the public validator
        swagger_ui_parameters={"validatorUrl": None},
    ).body
    html = bytes(body).decode()
    # Swagger UI draws its icons as data: SVG images; "Try it out" calls this server.
    policy = page_policy(
        html, scripts=_SELF, styles=_SELF, img_src=[*_SELF, "data:"], connect_src=_SELF
    )
    return Page(html, policy)


@lru_cache(maxsize=8)
def redoc_page(*, title: str, openapi_url: str, root: str) -> Page:
    body = get_redoc_html(
        openapi_url=root + openapi_url,
        title=f"{title} - ReDoc",
        redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
        with_google_fonts=False,
    ).body
    html = bytes(body).decode()
    # ReDoc renders with styled-components, which adds <style> elements at run time: no hash
    # can name them, so styles need 'unsafe-inline' (styles only: scripts stay hash/'self').
    # Its search index runs in a worker made from a blob: URL.
    policy = page_policy(
        html,
        scripts=_SELF,
        styles=[*_SELF, "'unsafe-inline'"],
        img_src=[*_SELF, "data:"],
        connect_src=_SELF,
        worker_src=["blob:"],
    )
    return Page(html, policy)


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs``, ``/redoc`` and their files on ``app`` (created with ``docs_url=None``
    and ``redoc_url=None``)."""
    openapi_url = app.openapi_url
    if openapi_url is None:
        return
    title = app.title
    app.mount(ASSETS, StaticFiles(directory=assets_folder()), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return swagger_page(title=title, openapi_url=openapi_url, root=root).response()

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return redoc_page(title=title, openapi_url=openapi_url, root=root).response()
