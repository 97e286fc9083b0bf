"""The web console at ``/console``: the API's pages for people, in Chinese and English.

One HTML page (``index.html``) and its files under ``static/``, served by this router from a
fixed list read at start (so no request path can reach another file). The page signs in with an
API key, kept in the tab's ``sessionStorage`` and sent as ``Authorization: Bearer``; it asks
``GET /v1/keys/me`` who the key is and shows only the pages that role may use. Everything it
shows comes from the public ``/v1`` routes: the console has no state and no routes of its own.

Technology, and why:

- **Plain ES modules, no framework and no build step.** The app sends a strict
  Content-Security-Policy (:mod:`api.edge.headers`): scripts and styles from this server only, no
  inline code, no ``eval``. Frameworks that compile templates at run time (Alpine.js, Vue's
  full build) need ``'unsafe-eval'``; a bundler would add a Node build step to a Python
  project. One module per page (``static/js/pages/``) over a small DOM helper
  (``static/js/dom.js``) that only ever sets ``textContent`` keeps every value from the API
  text, never HTML (a test refuses ``innerHTML`` and friends in these files).
- **Chinese first, English second**: the messages are ``static/i18n/zh.json`` and ``en.json``,
  with the same keys (a test compares them); the choice is kept in ``localStorage``, the key
  never is.
- **uPlot** for the live training curves: one 51 KB file, canvas-based, made for streaming time
  series, and it styles through the CSSOM (no inline ``<style>``, so the strict policy holds).
- **Everything is bundled**: the vendored files (``static/vendor/``) are copies of the pinned npm
  packages made by ``scripts/vendor-console.sh``; a test fails when they differ from
  ``node_modules``. Nothing is loaded from the internet.
- **Streams without EventSource**: EventSource cannot send an ``Authorization`` header, so the
  training metrics and generation streams are read with ``fetch()`` and a ``ReadableStream``
  parser that resumes with ``Last-Event-ID``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse

from ledger.errors import NotFound

router = APIRouter(tags=["console"])

HERE = Path(__file__).parent
PAGE = HERE / "index.html"
STATIC = HERE / "static"
STATIC_URL = "/console/static"
"""Where the page's files are served."""

MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}


@cache
def page() -> str:
    """The console page as the server holds it (its CSP is computed from this text)."""
    return PAGE.read_text(encoding="utf-8")


@cache
def static_files() -> dict[str, Path]:
    """Every servable file under ``static/``, by its path relative to it (``js/main.js``)."""
    return {
        path.relative_to(STATIC).as_posix(): path
        for path in sorted(STATIC.rglob("*"))
        if path.is_file() and path.suffix in MEDIA_TYPES
    }


@router.get("/console", response_class=HTMLResponse, include_in_schema=False)
def console() -> HTMLResponse:
    return HTMLResponse(page())


@router.get(STATIC_URL + "/{name:path}", include_in_schema=False)
def console_file(name: Annotated[str, PathParam(max_length=200)]) -> FileResponse:
    path = static_files().get(name)
    if path is None:
        raise NotFound("no such console file")
    # revalidated on every load (ETag), so a new release is picked up at once
    return FileResponse(
        path,
        media_type=MEDIA_TYPES[path.suffix],
        headers={"Cache-Control": "no-cache"},
    )
