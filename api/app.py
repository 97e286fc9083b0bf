"""The HTTP API: a FastAPI app over the same application services as the ``byr`` command.

``create_app()`` validates its settings at once (a bad ``BYR_API_TOKEN`` fails before serving); the
app's lifespan opens the :class:`~api.composition.Parts` (event log, state, deployments), refuses to
start on an uninitialized ``BYR_HOME``, and closes what it opened. Serve it with one worker
process: the embedded chains and the SQLite log are single-writer, and the app already serializes
the requests that use them.

    uvicorn --factory api.app:create_app
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Self

from fastapi import APIRouter, FastAPI
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.concurrency import run_in_threadpool

from api import console
from api.composition import Parts
from api.deps import ApiState
from api.environment import apply_process_defaults
from api.errors import install_error_handlers
from api.routes import balances, batches, dispatch, health, institutions, records, status, verify
from ledger.settings import LedgerSettings

API_VERSION = "v1"
MIN_TOKEN_CHARS = 16


class ApiSettings(BaseSettings):
    """Settings of the HTTP API (environment prefix ``BYR_API_``)."""

    model_config = SettingsConfigDict(env_prefix="BYR_API_", env_file=".env", extra="ignore")

    token: SecretStr | None = Field(
        default=None,
        description="When set, mutating endpoints require 'Authorization: Bearer <token>'. "
        f"At least {MIN_TOKEN_CHARS} characters.",
    )

    @model_validator(mode="after")
    def _token_is_long_enough(self) -> Self:
        if self.token is not None and len(self.token.get_secret_value()) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"BYR_API_TOKEN must be at least {MIN_TOKEN_CHARS} characters "
                "(or unset, to leave the API open)"
            )
        return self


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
            app.state.byr = ApiState(parts=opened, lock=asyncio.Lock(), token=api.token)
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
    for module in (status, institutions, batches, records, verify, balances, dispatch):
        v1.include_router(module.router)
    app.include_router(v1)
    app.include_router(console.router)
    return app
