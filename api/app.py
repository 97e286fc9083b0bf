"""The HTTP API: a FastAPI app over the same application services as the ``byr`` command.

``create_app()`` validates its settings at once (a bad setting fails before serving); the
app's lifespan opens the :class:`~api.composition.Parts` (event log, state, deployments), refuses to
start on an uninitialized ``BYR_HOME``, and closes what it opened. Serve it with one worker
process: the embedded chains and the SQLite log are single-writer, and the app already serializes
the requests that use them.

    uvicorn --factory api.app:create_app
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.concurrency import run_in_threadpool

from api import console
from api.composition import Parts
from api.deps import ApiState
from api.edge import install_edge, rate_limit
from api.environment import apply_process_defaults
from api.errors import document_errors, install_error_handlers
from api.evaluation_jobs import EvaluationJobs
from api.routes import (
    balances,
    batches,
    dispatch,
    evaluations,
    events,
    exports,
    feed,
    health,
    institutions,
    keys,
    models,
    recipes,
    records,
    search,
    status,
    submissions,
    training,
    verify,
)
from api.workers import TrainerThread
from ingest.validation import DEFAULT_LIMITS
from ledger.projections.outbox import JobKind
from ledger.settings import ChainBackend, LedgerSettings

API_VERSION = "v1"

log = logging.getLogger(__name__)


class ApiSettings(BaseSettings):
    """Settings of the HTTP API (environment prefix ``BYR_API_``)."""

    model_config = SettingsConfigDict(env_prefix="BYR_API_", env_file=".env", extra="ignore")

    insecure_local: bool = Field(
        default=False,
        description="Serve every /v1 route without a key, as one all-powerful local user. For a "
        "demo on a laptop only: anyone who reaches the port can read every text and salt.",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024,
        gt=0,
        description="Largest request body of a route that takes no file upload (a proof "
        "bundle is at most ~200 KB: 16,000 characters of record, all escaped, and 17 hashes).",
    )
    max_upload_bytes: int = Field(
        # the largest batch intake reads, plus the multipart framing the batches route allows
        default=DEFAULT_LIMITS.max_batch_bytes + batches._BODY_SLACK_BYTES,
        gt=0,
        description="Largest request body of a route that takes file uploads (POST /v1/batches).",
    )
    max_json_depth: int = Field(
        default=64,
        ge=4,
        description="Deepest nesting of arrays and objects in a JSON request body (a batch of "
        "records needs 3, plus what its records nest).",
    )
    rate_limit_reads: str = Field(
        default="1200/minute",
        description="Requests per key (per client address without a key) to /v1 routes other "
        "than submissions, moving window: '1200/minute', '20 per second'.",
    )
    rate_limit_submissions: str = Field(
        default="60/minute",
        description="Batch submissions (POST /v1/batches) per key, moving window.",
    )

    trainer: bool | None = Field(
        default=None,
        description="Run queued training runs in a thread of the API process, one at a time "
        "(no `byr worker trainer` needed). Default: on for an embedded home (SQLite log, "
        "eth-tester chains), off otherwise. Turn it off where trainer workers run.",
    )

    @field_validator("rate_limit_reads", "rate_limit_submissions")
    @classmethod
    def _one_rate_limit(cls, value: str) -> str:
        rate_limit(value)
        return value


def _open(parts: Parts) -> None:
    """Fail at start rather than on the first request: the ledger must exist and its
    projections must catch up with the log."""
    parts.require_initialized()
    parts.ledger.sync()
    _ = parts.deployments


def _trainer_thread(state: ApiState, api: ApiSettings) -> TrainerThread | None:
    """The in-process trainer (:class:`api.workers.TrainerThread`) when enabled; it starts on
    the first queued run (or now, when runs are already waiting), and asks the app to anchor
    each run it finishes."""
    settings = state.parts.settings
    enabled = api.trainer
    if enabled is None:
        enabled = settings.chain_backend is ChainBackend.TESTER and (
            settings.event_log_url.startswith("sqlite:")
        )
    if not enabled:
        return None
    loop = asyncio.get_running_loop()

    async def anchor() -> None:
        async with state.lock:
            await run_in_threadpool(state.parts.pipeline.run_once, JobKind.ANCHOR_RUN)

    trainer = TrainerThread(
        settings,
        on_run_finished=lambda: asyncio.run_coroutine_threadsafe(anchor(), loop).result(600),
    )
    if state.parts.ledger.pending_jobs(JobKind.TRAIN):
        trainer.wake()
    return trainer


def edge_refusals(path: str, operation: dict[str, Any]) -> tuple[int, ...]:
    """The statuses the edge (:mod:`api.edge`) may answer on an operation, whatever the route
    declares: 413 (a body over the size limit) and 422 (a JSON body nested too deep or not
    UTF-8) on any route; 415 on a route that reads a body (a media type it does not read); 429 on
    the rate-limited ``/v1`` routes."""
    statuses = [413, 422]
    if "requestBody" in operation:
        statuses.append(415)
    if path == f"/{API_VERSION}" or path.startswith(f"/{API_VERSION}/"):
        statuses.append(429)
    return tuple(statuses)


def _document_error_responses(app: FastAPI) -> None:
    """Serve an OpenAPI document whose error responses are the ones the app and its edge send
    (:func:`api.errors.document_errors`)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document_errors(generate(), edge_refusals)
        return generate()  # the document FastAPI keeps, as changed

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    *,
    settings: LedgerSettings | None = None,
    parts: Parts | None = None,
    api_settings: ApiSettings | None = None,
) -> FastAPI:
    """The API app.

    With ``parts`` the app uses them and leaves closing them to the caller; otherwise the lifespan
    builds one from ``settings`` (default: ``LedgerSettings()`` from the environment) and closes
    it at shutdown. ``api_settings`` defaults to ``ApiSettings()`` from the environment. Settings
    are validated here, before anything is served.
    """
    apply_process_defaults()
    if parts is not None and settings is not None and parts.settings is not settings:
        raise ValueError("pass either settings or parts built from them, not both")
    ledger_settings = parts.settings if parts is not None else settings or LedgerSettings()
    api = api_settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = parts is None
        opened = parts if parts is not None else Parts(ledger_settings)
        try:
            await run_in_threadpool(_open, opened)
            # The edge reads its route policies from the OpenAPI document: build it now (a few
            # seconds of CPU), not inside the first request.
            await run_in_threadpool(app.openapi)
            if api.insecure_local:
                log.warning(
                    "INSECURE: serving without API keys (--insecure-local): anyone who reaches "
                    "this port acts as an all-powerful local user and reads every text and salt"
                )
            app.state.byr = ApiState(
                parts=opened,
                lock=asyncio.Lock(),
                keys=opened.keys,
                insecure_local=api.insecure_local,
            )
            app.state.byr_trainer = _trainer_thread(app.state.byr, api)
            app.state.byr_evaluations = EvaluationJobs(opened.settings)
            if opened.intake_pool is not None:
                opened.intake_pool.start()
            yield
        finally:
            if getattr(app.state, "byr_trainer", None) is not None:
                await run_in_threadpool(app.state.byr_trainer.stop)
            app.state.byr_trainer = None
            if getattr(app.state, "byr_evaluations", None) is not None:
                await run_in_threadpool(app.state.byr_evaluations.stop)
            app.state.byr_evaluations = None
            app.state.byr = None
            if owned:
                await run_in_threadpool(opened.close)

    app = FastAPI(
        title="BYR Corpus Ledger",
        summary="Submit, govern, anchor, reward and prove crowdsourced training corpora.",
        version="0.1.0",
        lifespan=lifespan,
        # served by the edge, with their files (no CDN)
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    _document_error_responses(app)
    app.include_router(health.router)
    v1 = APIRouter(prefix=f"/{API_VERSION}")
    for module in (
        status,
        institutions,
        batches,
        submissions,
        records,
        verify,
        balances,
        dispatch,
        keys,
        training,
        recipes,
        models,
        search,
        feed,
        exports,
        evaluations,
        events,
    ):
        v1.include_router(module.router)
    app.include_router(v1)
    app.include_router(console.router)
    install_edge(
        app,
        max_body_bytes=api.max_body_bytes,
        max_upload_bytes=api.max_upload_bytes,
        max_json_depth=api.max_json_depth,
        rate_limit_reads=api.rate_limit_reads,
        rate_limit_submissions=api.rate_limit_submissions,
    )
    return app
