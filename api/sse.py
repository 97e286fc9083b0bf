"""Following a paged source as Server-Sent Events: the loop the feed and event streams share.

A source is read one page at a time from a position; each item becomes one event whose ``id`` is
the item's position, so a client that reconnects with ``Last-Event-ID`` goes on after it. At the
head the stream ends (``follow=False``) or polls for more, sending a comment line after a quiet
spell so that proxies keep the connection open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import Request
from fastapi.sse import ServerSentEvent
from starlette.concurrency import run_in_threadpool

P = TypeVar("P")
"""A position in the source (an int, a cursor): its ``str`` is the event id."""


@dataclass(frozen=True, slots=True)
class SsePage(Generic[P]):
    """One page of a source: ``(event id, data)`` pairs, the position to read after next, and
    whether the source ended there."""

    events: Sequence[tuple[P, dict[str, Any]]]
    next_position: P
    at_head: bool


async def follow_pages(
    http: Request,
    *,
    start: P,
    read_page: Callable[[P], SsePage[P]],
    follow: bool,
    poll_seconds: float,
    heartbeat_seconds: float,
    while_idle: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[ServerSentEvent]:
    """The events of ``read_page`` (run in the thread pool) from ``start`` on, until the client
    leaves, or the head when not ``follow``; ``while_idle`` runs after each poll at the head."""
    position = start
    quiet_since = time.monotonic()
    while not await http.is_disconnected():
        page = await run_in_threadpool(read_page, position)
        for event_id, data in page.events:
            yield ServerSentEvent(id=str(event_id), data=data)
        if page.events:
            quiet_since = time.monotonic()
        position = page.next_position
        if not page.at_head:
            continue
        if not follow:
            return
        if time.monotonic() - quiet_since >= heartbeat_seconds:
            yield ServerSentEvent(comment="heartbeat")
            quiet_since = time.monotonic()
        await asyncio.sleep(poll_seconds)
        if while_idle is not None:
            await while_idle()
