"""The event log as summaries: a live stream of Server-Sent Events (``GET /v1/events/stream``)
and how many records each pipeline stage moved over a recent window
(``GET /v1/events/throughput``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from api.deps import AnyRole, PrincipalDep, StateDep
from api.errors import error_responses, stream_error_responses
from api.services.events import (
    DEFAULT_WINDOW_SECONDS,
    MAX_RECENT,
    MAX_WINDOW_SECONDS,
    MIN_WINDOW_SECONDS,
    EventService,
    Stage,
    check_recent,
    check_window,
)
from api.sse import SsePage, follow_pages

router = APIRouter(
    prefix="/events",
    tags=["events"],
    dependencies=[AnyRole],
    responses=error_responses(401, 403, 422),
)

POLL_SECONDS = 0.5
"""How often a stream at the head looks for new events."""
HEARTBEAT_SECONDS = 10.0
"""How long a stream stays silent at most: then it sends a comment line."""

POSITION_PATTERN = r"^(0|[1-9][0-9]{0,17})$"


class EventSummaryPublic(BaseModel):
    """An event as the stream shows it: what, where and when, never its payload."""

    position: int = Field(description="The event's position in the log (also the SSE id).")
    type: str = Field(description="The event type, e.g. CorpusBatchSubmitted.")
    stream: str
    time: str = Field(description="When it happened (ISO 8601, UTC).")
    institution_id: str | None = Field(
        description="The institution it concerns (its own or its batch's), if any."
    )
    batch_id: str | None


class StageThroughputPublic(BaseModel):
    stage: Stage
    batches: int = Field(description="Events of the stage (one per batch) in the window.")
    records: int = Field(description="Records the stage moved in the window.")
    records_per_second: float = Field(description="records / window_seconds.")


class ThroughputPublic(BaseModel):
    window_seconds: int
    since: str
    until: str
    institution_id: str | None = Field(
        description="The one institution counted (a contributor's own); null: all."
    )
    stages: list[StageThroughputPublic]


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={
        200: {"description": "Event summaries (`data` as EventSummaryPublic), then new ones."},
        **stream_error_responses(401, 403, 422),
    },
)
async def stream_events(
    http: Request,
    state: StateDep,
    who: PrincipalDep,
    after: Annotated[
        int | None,
        Query(ge=0, le=10**18, description="Start after this log position (0: the beginning)."),
    ] = None,
    recent: Annotated[
        int,
        Query(ge=0, le=MAX_RECENT, description="Without after: start with the last N events."),
    ] = 0,
    follow: Annotated[
        bool, Query(description="Keep streaming as the log grows (false: end at the head).")
    ] = True,
    last_event_id: Annotated[
        str | None,
        Header(
            pattern=POSITION_PATTERN,
            description="The id of the last event received; wins over after and recent.",
        ),
    ] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Summaries of the log's events as Server-Sent Events (type, stream, position, time,
    institution, batch; never payloads, texts or salts), then new ones as the log grows. Each
    event's ``id`` is its log position: reconnect with ``Last-Event-ID`` (or ``?after=``) to go
    on after it. Without either, the stream starts at the head, with the last ``recent`` events
    first. A contributor sees its own institution's events only. Comment lines keep an idle
    connection open; ``follow=false`` ends the stream at the head."""
    service = EventService(log=state.parts.log, who=who)
    if last_event_id:
        position = int(last_event_id)
    elif after is not None:
        position = after
    else:
        position = await run_in_threadpool(service.recent_start, check_recent(recent))

    def read_page(after: int) -> SsePage[int]:
        page = service.page(after=after)
        events = [(item.position, item.to_dict()) for item in page.items]
        return SsePage(events=events, next_position=page.last_position, at_head=page.at_head)

    async for event in follow_pages(
        http,
        start=position,
        read_page=read_page,
        follow=follow,
        poll_seconds=POLL_SECONDS,
        heartbeat_seconds=HEARTBEAT_SECONDS,
    ):
        yield event


@router.get("/throughput")
async def read_throughput(
    state: StateDep,
    who: PrincipalDep,
    window: Annotated[
        int,
        Query(
            ge=MIN_WINDOW_SECONDS,
            le=MAX_WINDOW_SECONDS,
            description="Seconds back from now to count over.",
        ),
    ] = DEFAULT_WINDOW_SECONDS,
) -> ThroughputPublic:
    """Per pipeline stage (intake, governance, anchor, reward, feed): how many batches and
    records it moved over the last ``window`` seconds, and records per second, counted from
    the events in the log. A contributor's numbers are its own institution's only."""
    service = EventService(log=state.parts.log, who=who)
    result = await run_in_threadpool(service.throughput, window=check_window(window))
    return ThroughputPublic.model_validate(result.to_dict())
