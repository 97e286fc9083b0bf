"""What each route may be sent, read from the app's own OpenAPI document.

The document is the one source of truth: a route's ``requestBody`` content types are the media
types the edge lets through, a route that accepts a file (any media type that is not JSON, such
as ``multipart/form-data``) gets the upload size limit, and every other route the small one. A
route that declares no body (and any unknown path) accepts no particular media type: the route
never reads a body, so only the small size limit applies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def media_type(content_type: str | None) -> str:
    """The media type of a ``Content-Type`` value, lowercase, without parameters ("" for none)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(media: str) -> bool:
    """``application/json`` and the ``+json`` types: what FastAPI's body parser reads as JSON."""
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


@dataclass(frozen=True, slots=True)
class BodyPolicy:
    """What one route accepts as a request body."""

    max_bytes: int
    accepts: frozenset[str] | None = None
    """Media types of the route's ``requestBody``; ``None`` when it declares no body."""
    upload: bool = False
    """The route takes files (a media type other than JSON): the upload limits apply."""

    def allows(self, media: str) -> bool:
        """Whether a body of ``media`` may be sent (always, to a route that reads no body)."""
        if self.accepts is None:
            return True
        if not media:
            return False
        kind = media.partition("/")[0]
        return (
            media in self.accepts
            or "*/*" in self.accepts
            or f"{kind}/*" in self.accepts
            or (is_json(media) and "application/json" in self.accepts)
        )


class RoutePolicies:
    """The :class:`BodyPolicy` of each operation of an OpenAPI document, found by request path
    and method. Paths are tried in the document's order (the order of the app's routes); a
    ``{parameter}`` matches one path segment."""

    def __init__(
        self, openapi: Mapping[str, Any], *, max_body_bytes: int, max_upload_bytes: int
    ) -> None:
        self.default = BodyPolicy(max_bytes=max_body_bytes)
        self._paths: list[tuple[re.Pattern[str], dict[str, BodyPolicy]]] = []
        for template, operations in openapi.get("paths", {}).items():
            policies: dict[str, BodyPolicy] = {}
            for method, operation in operations.items():
                content = (operation or {}).get("requestBody", {}).get("content") or {}
                accepts = frozenset(media_type(m) for m in content)
                upload = any(not is_json(m) for m in accepts)
                policies[method.upper()] = BodyPolicy(
                    max_bytes=max_upload_bytes if upload else max_body_bytes,
                    accepts=accepts or None,
                    upload=upload,
                )
            self._paths.append((_path_pattern(template), policies))

    def for_request(self, method: str, path: str) -> BodyPolicy:
        """The policy of ``method`` on ``path`` (the default one for an undocumented route)."""
        for pattern, policies in self._paths:
            if method in policies and pattern.fullmatch(path):
                return policies[method]
        return self.default


def _path_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^{}/]+\})", template)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts))
