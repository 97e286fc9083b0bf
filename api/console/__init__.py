"""A read-only web console: batches, their records, and proof verification in the browser.

One static page (``index.html``) that calls the public API; it holds no state and needs no token
(it only reads and verifies).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(tags=["console"])

_PAGE = Path(__file__).with_name("index.html")


@cache
def _page() -> str:
    return _PAGE.read_text(encoding="utf-8")


@router.get("/console", response_class=HTMLResponse, include_in_schema=False)
def console() -> HTMLResponse:
    return HTMLResponse(_page())
