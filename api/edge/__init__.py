"""The HTTP edge: what stands between the network and the app's parsers and routes.

- :mod:`api.edge.guard`: rate limits per key, media types, body size and JSON nesting, checked
  as the body streams in, before anything parses it;
- :mod:`api.edge.headers`: security headers and Content-Security-Policy on every response;
- :mod:`api.edge.docs`: the OpenAPI pages with their files served by the app (no CDN).

The guard is plain ASGI middleware inside the app; the headers wrap the whole app, Starlette's
last-resort error handler included, so that even an unexpected 500 carries them.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from starlette.types import ASGIApp

from api.edge.docs import install_docs
from api.edge.errors import JsonNotUtf8, JsonTooDeep, RateLimited
from api.edge.guard import RequestGuard
from api.edge.headers import SecurityHeaders, page_policy
from api.edge.ratelimit import RateLimits, rate_limit

__all__ = ["JsonNotUtf8", "JsonTooDeep", "RateLimited", "install_edge", "rate_limit"]


def console_policy() -> str:
    """The Content-Security-Policy of ``/console``: one page whose scripts, styles and images
    are files of this server (no inline code), and that calls this API."""
    html = files("api.console").joinpath("index.html").read_text(encoding="utf-8")
    own = ["'self'"]
    return page_policy(html, scripts=own, styles=own, img_src=own, connect_src=own)


def install_edge(
    app: FastAPI,
    *,
    max_body_bytes: int,
    max_upload_bytes: int,
    max_json_depth: int,
    rate_limit_reads: str,
    rate_limit_submissions: str,
) -> None:
    """Put the edge in front of ``app`` (after its routes are included): the request guard with
    these limits, the security headers, and the docs pages (``app`` is created with
    ``docs_url=None, redoc_url=None``)."""
    install_docs(app)
    app.add_middleware(
        RequestGuard,
        max_body_bytes=max_body_bytes,
        max_upload_bytes=max_upload_bytes,
        max_json_depth=max_json_depth,
        rate_limits=RateLimits(reads=rate_limit_reads, submissions=rate_limit_submissions),
    )
    pages = {"/console": console_policy()}
    build_stack = app.build_middleware_stack

    def build_with_headers() -> ASGIApp:
        # Starlette puts its last-resort 500 handler outside every added middleware; wrapping
        # the built stack is the only place where the headers reach that answer too.
        return SecurityHeaders(build_stack(), pages=pages)

    app.build_middleware_stack = build_with_headers  # type: ignore[method-assign]
