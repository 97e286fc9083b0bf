"""Request rate limits per API key, with the ``limits`` library (moving window, in memory).

Requests are counted per key id, read from ``Authorization: Bearer byr_<key id>_<secret>``
without checking the key (a wrong secret costs the sender its own key's budget, and checking is
the route's job), and per client address when no key is sent. The counts live in this process
only: the API runs as one worker process (see :mod:`api.app`).
"""

from __future__ import annotations

import math
import re
import time

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.datastructures import Headers
from starlette.types import Scope

from api.services.keys import KEY_PREFIX

_KEY_ID = re.compile(rf"{KEY_PREFIX}_([0-9A-Za-z]{{1,32}})_")


def rate_limit(text: str) -> RateLimitItem:
    """The limit written ``text`` (``"600/minute"``, ``"10 per second"``); raises ``ValueError``
    for text that is not one limit."""
    try:
        item = parse(text)
    except ValueError as exc:
        raise ValueError(f"not a rate limit such as '600/minute': {exc}") from None
    if item.amount < 1:
        raise ValueError("a rate limit allows at least one request per window")
    return item


def bucket(scope: Scope) -> str:
    """Whose budget a request spends: ``key:<key id>``, else ``ip:<client address>``."""
    scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and (found := _KEY_ID.match(token.strip())):
        return f"key:{found.group(1)}"
    client = scope.get("client")
    return f"ip:{client[0] if client else 'unknown'}"


class RateLimits:
    """Two budgets per bucket: one for submissions (routes that take uploads), one for every
    other request."""

    def __init__(self, *, reads: str, submissions: str) -> None:
        self.reads = rate_limit(reads)
        self.submissions = rate_limit(submissions)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def spend(self, item: RateLimitItem, who: str) -> int | None:
        """Count one request of ``who`` against ``item``: ``None`` when it is within the limit,
        else the seconds until the window has room again (at least 1)."""
        if self._limiter.hit(item, who):
            return None
        reset_at = self._limiter.get_window_stats(item, who).reset_time
        return max(1, math.ceil(reset_at - time.time()))
