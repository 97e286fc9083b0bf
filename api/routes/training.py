"""Training runs over HTTP: queue a run, list and show runs, stop and resume them, and watch their
live metrics as Server-Sent Events.

A queued run is performed by a trainer: ``byr worker trainer``, or the app's own trainer thread
(``BYR_API_TRAINER``, see :mod:`api.app`). The metrics stream tails the run's ``metrics.jsonl``
(:mod:`trainer.metrics`), so a run started by ``byr train`` is visible too.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.deps import AnyRole, LedgerDep, PartsDep, PrincipalDep, StateDep, require
from api.errors import error_responses, stream_error_responses
from api.services.keys import Role
from api.services.training import TrainingRequest, TrainingService
from ledger.errors import InvalidRequest

router = APIRouter(prefix="/training", tags=["training"])

Trainers = require(Role.TRAINER, Role.ADMIN)
RUN_ID = r"^[A-Za-z0-9_-]{1,100}$"
RunId = Annotated[
    str, Path(pattern=RUN_ID, max_length=100, description="A run id or a request id.")
]
#: Statuses after which a run's metrics stream has nothing more to add.
TERMINAL = ("completed", "anchored", "failed", "stopped")
POLL_S = 0.25
KEEPALIVE_S = 15.0
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


class TrainingRunCreate(BaseModel):
    """What to train: a recipe preset, overrides, and a selection of the accepted corpus."""

    model_config = ConfigDict(extra="forbid")

    recipe: str = Field(pattern=_NAME.pattern, description="A bundled recipe name (`byr recipes`).")
    base_model: str = Field(
        default="tiny",
        pattern=r"^(tiny(-[a-z0-9_]+)?|smollm2-135m)$",
        description="tiny, tiny-<family> or smollm2-135m.",
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        max_length=64,
        description="Recipe overrides: `training.<field>`, `method_config.<field>`, `method`.",
    )
    max_steps: int | None = Field(default=None, ge=1, le=1_000_000)
    disciplines: list[str] = Field(default_factory=list, max_length=100)
    languages: list[str] = Field(default_factory=list, max_length=10)
    institutions: list[str] = Field(default_factory=list, max_length=100)
    record_limit: int | None = Field(default=None, ge=1)

    def request(self) -> TrainingRequest:
        return TrainingRequest(
            recipe=self.recipe,
            base_model=self.base_model,
            overrides=dict(self.overrides),
            max_steps=self.max_steps,
            disciplines=list(self.disciplines),
            languages=list(self.languages),
            institutions=list(self.institutions),
            record_limit=self.record_limit,
        )


class RecipeWarningPublic(BaseModel):
    field: str
    message: str


class TrainingRunAccepted(BaseModel):
    """A queued run: its id (the request id until a trainer creates the run) and its URLs."""

    request_id: str
    status: str
    warnings: list[RecipeWarningPublic]
    run_url: str
    metrics_url: str
    stop_url: str
    resume_url: str


def _urls(run_id: str) -> dict[str, str]:
    base = f"/v1/training/runs/{run_id}"
    return {
        "run_url": base,
        "metrics_url": f"{base}/metrics",
        "stop_url": f"{base}/stop",
        "resume_url": f"{base}/resume",
    }


def _wake_trainer(request: Request) -> None:
    """Tell the app's trainer thread (if it has one) that there is work."""
    trainer = getattr(request.app.state, "byr_trainer", None)
    if trainer is not None:
        trainer.wake()


@router.post(
    "/runs",
    status_code=202,
    response_model=TrainingRunAccepted,
    dependencies=[Trainers],
    responses=error_responses(401, 403, 404, 422, 503),
)
def create_run(body: TrainingRunCreate, parts: PartsDep, request: Request) -> JSONResponse:
    """Queue a training run for a trainer (``byr train --queue``); 202 with its id, URLs and
    the recipe advice (settings outside their advised range, with the reason; never applied)."""
    result = parts.training.submit(body.request())
    _wake_trainer(request)
    accepted = TrainingRunAccepted(**result, **_urls(result["request_id"]))
    return JSONResponse(
        accepted.model_dump(mode="json"),
        status_code=202,
        headers={"Location": accepted.run_url},
    )


@router.get("/runs", dependencies=[AnyRole], responses=error_responses(401, 403))
def list_runs(state: StateDep) -> list[dict[str, Any]]:
    """Every training run (status, recipe, dataset root, losses), then queued requests."""
    return _service(state).list_runs()


@router.get("/runs/{run_id}", dependencies=[AnyRole], responses=error_responses(401, 403, 404))
def show_run(run_id: RunId, state: StateDep) -> Any:
    """A run by run id or request id: status, recipe, dataset root, checkpoints, and the lineage
    of a finished adapter (hashes, anchor, record counts; no record text)."""
    return _service(state).describe_run(run_id)


@router.post(
    "/runs/{run_id}/stop",
    status_code=202,
    dependencies=[Trainers],
    responses=error_responses(401, 403, 404, 409),
)
def stop_run(
    run_id: RunId,
    parts: PartsDep,
    who: PrincipalDep,
) -> Any:
    """Ask a running run to stop; its trainer checkpoints at the next step boundary and the
    status goes ``stopping`` then ``stopped``. 409 unless the run is running."""
    return parts.training.stop(run_id, requested_by=who.attribution)


@router.post(
    "/runs/{run_id}/resume",
    status_code=202,
    dependencies=[Trainers],
    responses=error_responses(401, 403, 404, 409),
)
def resume_run(
    run_id: RunId,
    parts: PartsDep,
    who: PrincipalDep,
    request: Request,
) -> Any:
    """Continue a stopped run from its last checkpoint (same run id; the loss curve goes on from
    the checkpoint's step). 409 unless the run is stopped."""
    result = parts.training.resume(run_id, requested_by=who.attribution)
    _wake_trainer(request)
    return result


def _service(state: Any) -> TrainingService:
    return state.parts.training  # type: ignore[no-any-return]


def _last_event_id(
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="Resume after this event (a line number of the metrics file).",
        ),
    ] = None,
) -> int:
    if last_event_id is None or last_event_id == "":
        return 0
    if not last_event_id.isdigit() or len(last_event_id) > 12:
        raise InvalidRequest("header Last-Event-ID: expected a non-negative integer event id")
    return int(last_event_id)


def _metrics_target(run_id: RunId, state: StateDep) -> tuple[str, Any]:
    """The run's metrics file, resolved before the stream starts (404 as a plain answer)."""
    from trainer.metrics import metrics_path

    return run_id, metrics_path(_service(state).run_dir(run_id))


@router.get(
    "/runs/{run_id}/metrics",
    response_class=EventSourceResponse,
    dependencies=[Trainers],
    responses=stream_error_responses(401, 403, 404, 422),
)
async def run_metrics(
    target: Annotated[tuple[str, Any], Depends(_metrics_target)],
    after: Annotated[int, Depends(_last_event_id)],
    ledger: LedgerDep,
    request: Request,
    follow: Annotated[
        bool, Query(description="Keep the stream open until the run ends (false: what exists).")
    ] = True,
) -> AsyncIterator[ServerSentEvent]:
    """The run's live metrics as Server-Sent Events, one per line of its metrics file: ``start``,
    ``step`` (step, epoch, loss, learning rate, tokens/s, gradient norm, CPU RSS and utilisation,
    GPU memory and utilisation on a GPU), ``eval`` (validation loss), ``checkpoint``,
    ``early_stop``, and a final ``end`` (status completed, stopped or failed). The event id is
    the line number: reconnect with ``Last-Event-ID`` to continue without loss or repeats."""
    from trainer.metrics import END, read_metrics

    run_id, path = target
    position = after
    idle = 0.0
    while True:
        lines = await run_in_threadpool(read_metrics, path, after=position)
        for line in lines:
            position = line.number
            yield ServerSentEvent(data=line.data, event=line.event, id=str(line.number))
            if line.event == END:
                return
        if not follow:
            return
        # over with nothing new (re-read: an end line may land just after the status changed)
        if (
            not lines
            and await run_in_threadpool(_ended_without_end_line, ledger, run_id, path)
            and not await run_in_threadpool(read_metrics, path, after=position)
        ):
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL_S)
        idle = idle + POLL_S if not lines else 0.0
        if idle >= KEEPALIVE_S:
            idle = 0.0
            yield ServerSentEvent(comment="keep-alive")


def _ended_without_end_line(ledger: Any, run_id: str, path: Any) -> bool:
    """Whether the run is over (or stopped) with nothing left to stream."""
    from ledger.errors import NotFound

    try:
        run = ledger.training_run(run_id)
    except NotFound:
        run = ledger.training_run_for_request(run_id)
    return run is not None and run.status in TERMINAL
