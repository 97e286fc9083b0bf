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

from fastapi import APIRouter, FastAPI
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.concurrency import run_in_threadpool

from api import console
from api.composition import Parts
from api.deps import ApiState
from api.environment import apply_process_defaults
from api.errors import install_error_handlers
from api.routes import (
    balances,
    batches,
    dispatch,
    health,
    institutions,
    keys,
    records,
    status,
    submissions,
    verify,
)
from ledger.settings import LedgerSettings

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


def _open(parts: Parts) -> None:
    """Fail at start rather than on the first request: the ledger must exist and its
    projections must catch up with the log."""
    parts.require_initialized()
    parts.ledger.sync()
    _ = parts.deployments


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
            yield
        finally:
            app.state.byr = None
            if owned:
                await run_in_threadpool(opened.close)

    app = FastAPI(
        title="BYR Corpus Ledger",
        summary="Submit, govern, anchor, reward and prove crowdsourced training corpora.",
        version="0.1.0",
        lifespan=lifespan,
    )
    install_error_handlers(app)
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
    ):
        v1.include_router(module.router)
    app.include_router(v1)
    app.include_router(console.router)
    return app
