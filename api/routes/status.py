"""The ledger at a glance: log head, counts by status, outbox jobs, projection positions."""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import AnyRole, PrincipalDep, StateDep, exclusive
from api.errors import error_responses
from api.schemas import StatusPublic
from api.services.keys import Role
from api.services.status import status_document

router = APIRouter(
    prefix="/status",
    tags=["status"],
    dependencies=[AnyRole],
    responses=error_responses(401, 403, 503),
)


@router.get("")
async def read_status(state: StateDep, who: PrincipalDep) -> StatusPublic:
    """Batches, records, outbox jobs and rewards, how far the slowest projection lags behind the
    log head, and a line per batch (the ``byr status --json`` document; a contributor's lines
    are its own institution's batches, as ``GET /v1/batches`` lists them).

    Projections catch up first when nobody holds the writer's turn. While a submission or dispatch
    holds it, the answer is the projections as last committed, at once, and ``projection_lag``
    says how many events they are behind the log's head: status never waits for a writer."""
    if not state.lock.locked():
        async with exclusive(state) as parts:
            await run_in_threadpool(parts.ledger.sync)
    own = who.institution_id if who.role is Role.CONTRIBUTOR and not who.local else None
    document = await run_in_threadpool(
        partial(status_document, state.parts.ledger, institution_id=own)
    )
    return StatusPublic.model_validate(document)
