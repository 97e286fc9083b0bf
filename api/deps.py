"""What requests depend on: the parts (exclusively), the ledger's read models (shared), the token.

The application state is created by the app's lifespan (:mod:`api.app`) and read here; routes see
the ``Annotated`` aliases :data:`PartsDep`, :data:`LedgerDep` and :data:`WriteAccess`.

Writers are serialized: the embedded chains, event-log appends and projection catch-up are
single-writer, so every request that writes, catches up or talks to a chain holds the parts
exclusively (:func:`exclusive`). Queries of the read models need no such turn: each runs in one
state-database transaction and sees the state as of the last committed write, so they stay quick
while a long submission (``wait=true``) or dispatch runs.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from api.composition import Parts
from api.errors import NotAuthenticated
from ledger.application import CorpusLedger


@dataclass(frozen=True, slots=True)
class ApiState:
    """Long-lived parts of a running app, created in its lifespan."""

    parts: Parts
    lock: asyncio.Lock
    """Taken by requests that use the parts exclusively; waiting requests hold no thread."""
    token: SecretStr | None
    """Bearer token that mutating requests must present; ``None`` leaves them open."""


def api_state(request: Request) -> ApiState:
    state = getattr(request.app.state, "byr", None)
    if not isinstance(state, ApiState):
        raise RuntimeError("the app is not started (its lifespan did not run)")
    return state


StateDep = Annotated[ApiState, Depends(api_state)]


@asynccontextmanager
async def exclusive(state: ApiState) -> AsyncIterator[Parts]:
    """The parts, for this holder only until the block ends."""
    async with state.lock:
        yield state.parts


async def parts_session(state: StateDep) -> AsyncIterator[Parts]:
    """The parts, held exclusively until the response is ready (writes, catch-up, chains)."""
    async with exclusive(state) as parts:
        yield parts


PartsDep = Annotated[Parts, Depends(parts_session)]


def get_ledger(state: StateDep) -> CorpusLedger:
    """The ledger for queries of its read models only: no writes, no ``sync``, no chains."""
    return state.parts.ledger


LedgerDep = Annotated[CorpusLedger, Depends(get_ledger)]

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="Required on mutating endpoints when the server sets BYR_API_TOKEN.",
)


def require_token(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    """Let the request through when no token is configured or it presents the configured one."""
    if state.token is None:
        return
    if credentials is None:
        raise NotAuthenticated("this endpoint needs an 'Authorization: Bearer <token>' header")
    expected = state.token.get_secret_value().encode("utf-8")
    if not secrets.compare_digest(credentials.credentials.encode("utf-8"), expected):
        raise NotAuthenticated("the API token is not valid")


WriteAccess = Depends(require_token)
"""Route dependency of every mutating endpoint: ``dependencies=[WriteAccess]``."""
