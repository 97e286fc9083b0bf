"""Security headers on every response, and the Content-Security-Policy of each HTML page.

Everything the API answers is JSON, except a few HTML pages (the console, the OpenAPI docs) and
the files those pages load. JSON gets the strictest policy (``default-src 'none'``: a JSON
answer opened as a page runs nothing and loads nothing). A page gets ``'self'`` for what it loads
and the SHA-256 hash of each of its own inline ``<script>`` and ``<style>`` elements, computed
from the page as the server holds it (never from a response), so an injected inline script
would not run.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: On every response, unless the route set the header itself.
HEADERS: tuple[tuple[str, str], ...] = (
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
)
#: The policy of every response that is not one of the pages.
STRICT_CSP = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

_INLINE = {
    tag: re.compile(rf"<{tag}\b([^>]*)>(.*?)</{tag}\s*>", re.DOTALL | re.IGNORECASE)
    for tag in ("script", "style")
}
_SRC = re.compile(r"\bsrc\s*=", re.IGNORECASE)


def inline_hashes(html: str, tag: str) -> list[str]:
    """CSP hash sources (``'sha256-…'``) of the inline ``<script>`` or ``<style>`` elements of
    ``html``, in page order (a script with ``src`` is not inline)."""
    found = []
    for attributes, text in _INLINE[tag].findall(html):
        if tag == "script" and _SRC.search(attributes):
            continue
        digest = base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode()
        found.append(f"'sha256-{digest}'")
    return found


def page_policy(
    html: str,
    *,
    scripts: Iterable[str] = (),
    styles: Iterable[str] = (),
    **sources: Iterable[str],
) -> str:
    """The Content-Security-Policy of the page ``html``: nothing by default; scripts and styles
    from ``scripts``/``styles`` plus the page's own inline elements, by hash (unless the sources
    allow ``'unsafe-inline'``); ``sources`` for other directives (``img_src=["'self'", "data:"]``
    is ``img-src 'self' data:``)."""
    directives: dict[str, list[str]] = {"default-src": ["'none'"]}
    for name, allowed in (
        ("script-src", _with_inline(html, "script", scripts)),
        ("style-src", _with_inline(html, "style", styles)),
        *((key.replace("_", "-"), list(values)) for key, values in sources.items()),
    ):
        if allowed:
            directives[name] = allowed
    directives |= {
        "base-uri": ["'none'"],
        "form-action": ["'none'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def _with_inline(html: str, tag: str, allowed: Iterable[str]) -> list[str]:
    sources = list(allowed)
    if "'unsafe-inline'" in sources:
        return sources  # a browser ignores 'unsafe-inline' next to a hash
    return [*sources, *inline_hashes(html, tag)]


def route_path(scope: Scope) -> str:
    """The request path as the app's routes see it (without the ``root_path`` it is served at)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class SecurityHeaders:
    """ASGI middleware: :data:`HEADERS` on every response, ``Cache-Control: no-store`` on
    ``/v1`` responses, and the Content-Security-Policy of the page at the path (``pages``) or
    :data:`STRICT_CSP`. A header the response already has is left as it is."""

    def __init__(self, app: ASGIApp, *, pages: Mapping[str, str]) -> None:
        self.app = app
        self.pages = dict(pages)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        policy = self.pages.get(path, STRICT_CSP)
        api = path == "/v1" or path.startswith("/v1/")

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS:
                    headers.setdefault(name, value)
                headers.setdefault("content-security-policy", policy)
                if api:
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, send_secured)
