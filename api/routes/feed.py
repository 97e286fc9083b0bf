"""The accepted-corpus feed: cursor pages (``GET /v1/feed``) and the same entries as Server-Sent
Events (``GET /v1/feed/stream``), resumable with ``Last-Event-ID``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from api.deps import PrincipalDep, StateDep, exclusive, require
from api.errors import error_responses, stream_error_responses
from api.services.feed import (
    DEFAULT_PAGE,
    READERS,
    FeedRequest,
    FeedService,
    feed_filter,
    feed_request,
)
from api.sse import SsePage, follow_pages
from ledger.ids import INSTITUTION_ID_RE
from ledger.projections.feed import MAX_PAGE, FeedCursor, FeedFilter

router = APIRouter(
    prefix="/feed",
    tags=["feed"],
    dependencies=[require(*READERS)],
    responses=error_responses(401, 403, 422),
)

POLL_SECONDS = 0.5
"""How often a stream at the head looks for new entries."""
HEARTBEAT_SECONDS = 10.0
"""How long a stream stays silent at most: then it sends a comment line."""


async def catch_up(state: StateDep) -> None:
    """Bring the projections up to the log when the log moved and no writer holds the parts
    (a writer catches up when it is done); never waits for a writer."""
    ledger = state.parts.ledger
    if not state.lock.locked() and await run_in_threadpool(ledger.is_behind):
        async with exclusive(state) as parts:
            await run_in_threadpool(parts.ledger.sync)


CURSOR_PATTERN = r"^((0|[1-9][0-9]{0,17})(\.(0|[1-9][0-9]{0,8}))?)?$"
"""A log position, or ``position.ordinal`` (:class:`~ledger.projections.feed.FeedCursor`);
empty: the start of the feed."""


def _filters(
    who: PrincipalDep,
    discipline: Annotated[str | None, Query(max_length=64)] = None,
    task_type: Annotated[str | None, Query(max_length=64)] = None,
    language: Annotated[str | None, Query(max_length=64)] = None,
    institution: Annotated[
        str | None,
        Query(pattern=INSTITUTION_ID_RE.pattern, description="Contributors: their own only."),
    ] = None,
    accepted_since: Annotated[
        datetime | None,
        Query(description="Records accepted at or after this time (UTC when no offset)."),
    ] = None,
) -> FeedFilter:
    return feed_filter(
        who,
        discipline=discipline,
        task_type=task_type,
        language=language,
        institution=institution,
        accepted_since=accepted_since.isoformat() if accepted_since is not None else None,
    )


def page_request(
    where: Annotated[FeedFilter, Depends(_filters)],
    cursor: Annotated[
        str | None,
        Query(
            pattern=CURSOR_PATTERN,
            description="`next_cursor` of the previous page (a log position).",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
) -> FeedRequest:
    return feed_request(cursor=cursor, limit=limit, where=where)


def stream_request(
    where: Annotated[FeedFilter, Depends(_filters)],
    cursor: Annotated[
        str | None,
        Query(pattern=CURSOR_PATTERN, description="Where to start (a log position)."),
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            pattern=CURSOR_PATTERN,
            description="The id of the last event received; wins over cursor.",
        ),
    ] = None,
) -> FeedRequest:
    if last_event_id:
        return feed_request(
            cursor=last_event_id, limit=DEFAULT_PAGE, where=where, cursor_field="Last-Event-ID"
        )
    return feed_request(cursor=cursor, limit=DEFAULT_PAGE, where=where)


@router.get("")
async def read_feed(
    state: StateDep, request: Annotated[FeedRequest, Depends(page_request)]
) -> dict[str, Any]:
    """One page of the accepted corpus after ``cursor``: accepted, not erased records of
    anchored batches (canonical fields, never salts) and tombstones (``type: erased``) of records
    erased after they entered, in log order. Continue with ``next_cursor``; ``at_head`` says
    nothing more is there yet. A contributor reads its own institution's entries only."""
    await catch_up(state)
    page = await run_in_threadpool(FeedService(ledger=state.parts.ledger).page, request)
    return page.to_dict()


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses=stream_error_responses(401, 403, 422),
)
async def stream_feed(
    http: Request,
    state: StateDep,
    request: Annotated[FeedRequest, Depends(stream_request)],
    follow: Annotated[
        bool, Query(description="Keep streaming as the log grows (false: end at the head).")
    ] = True,
) -> AsyncIterator[ServerSentEvent]:
    """The feed's entries as Server-Sent Events, then new ones as the log grows. Each event's
    ``id`` is its cursor (a log position), so a client that reconnects with ``Last-Event-ID``
    (or ``?cursor=``) goes on where it stopped; ``data`` is the entry as in ``GET /v1/feed``.
    Comment lines keep an idle connection open; ``follow=false`` ends the stream at the head."""
    service = FeedService(ledger=state.parts.ledger)

    def read_page(after: FeedCursor) -> SsePage[FeedCursor]:
        page = service.page(FeedRequest(after=after, limit=request.limit, where=request.where))
        events = [(item.cursor, item.to_dict()) for item in page.items]
        return SsePage(events=events, next_position=page.next_cursor, at_head=page.at_head)

    async for event in follow_pages(
        http,
        start=request.after,
        read_page=read_page,
        follow=follow,
        poll_seconds=POLL_SECONDS,
        heartbeat_seconds=HEARTBEAT_SECONDS,
        while_idle=lambda: catch_up(state),
    ):
        yield event
