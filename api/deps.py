"""What requests depend on: the parts (exclusively), the ledger's read models (shared), and who
is asking (:class:`~api.services.keys.Principal`, from the request's API key).

The application state is created by the app's lifespan (:mod:`api.app`) and read here; routes see
the ``Annotated`` aliases :data:`PartsDep`, :data:`LedgerDep` and :data:`PrincipalDep`, and the
role guards :func:`require` (:data:`AnyRole`, :data:`Admin`). What each role may do is written
in docs/API.md; routes that show texts or salts check ownership themselves
(:meth:`Principal.owns`).

Writers are serialized: the embedded chains, event-log appends and projection catch-up are
single-writer, so every request that writes, catches up or talks to a chain holds the parts
exclusively (:func:`exclusive`). Queries of the read models need no such turn: each runs in one
state-database transaction and sees the state as of the last committed write, so they stay quick
while a long submission (``wait=true``) or dispatch runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.composition import Parts
from api.errors import NotAuthenticated
from api.services.keys import KeyService, NotAuthorized, Principal, Role
from api.submissions import SubmissionTracker
from ledger.application import CorpusLedger


@dataclass(frozen=True, slots=True)
class ApiState:
    """Long-lived parts of a running app, created in its lifespan."""

    parts: Parts
    lock: asyncio.Lock
    """Taken by requests that use the parts exclusively; waiting requests hold no thread."""
    keys: KeyService
    insecure_local: bool = False
    """Every request acts as :meth:`Principal.insecure_local` (``byr serve --insecure-local``)."""
    intake_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Taken while a submission is read (validated, desensitized): one intake at a time, without
    holding the writer's turn, so reads and other writes go on meanwhile."""
    submissions: SubmissionTracker = field(default_factory=SubmissionTracker)
    """Submissions answered 202 and their outcomes."""


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
    description="An API key (`byr keys create`): byr_<key id>_<secret>.",
)


async def principal(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """Who is asking, from the ``Authorization: Bearer <key>`` header.

    When the log moved since the projections last caught up (a key issued or revoked by another
    process), they catch up first, so a revocation takes effect on the next request. While a
    writer holds the parts, the projections it will catch up are read as last committed instead
    of waiting for it: a key revoked by another process during a long write stops working when
    that write ends (revocations through this server take effect at once)."""
    if state.insecure_local:
        return Principal.insecure_local()
    if credentials is None:
        raise NotAuthenticated("this endpoint needs an 'Authorization: Bearer <API key>' header")
    ledger = state.parts.ledger
    if not state.lock.locked() and await run_in_threadpool(ledger.is_behind):
        async with exclusive(state) as parts:
            await run_in_threadpool(parts.ledger.sync)
    return await run_in_threadpool(state.keys.authenticate, credentials.credentials)


PrincipalDep = Annotated[Principal, Depends(principal)]


def require(*roles: Role) -> Any:
    """Route dependency: a valid key with one of ``roles`` (403 otherwise)."""

    async def check(who: PrincipalDep) -> Principal:
        if not who.has(*roles):
            allowed = ", ".join(r.value for r in roles)
            raise NotAuthorized(f"this endpoint is for the role(s) {allowed}")
        return who

    return Depends(check)


AnyRole = require(*Role)
Admin = require(Role.ADMIN)
