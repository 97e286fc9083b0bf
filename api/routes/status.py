"""The ledger at a glance: log head, counts by status, outbox jobs, projection positions."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from api.deps import AnyRole, StateDep, exclusive
from api.errors import error_responses
from api.schemas import StatusPublic
from api.services.status import status_document

router = APIRouter(
    prefix="/status",
    tags=["status"],
    dependencies=[AnyRole],
    responses=error_responses(401, 403, 503),
)


@router.get("")
async def read_status(state: StateDep) -> StatusPublic:
    """Batches, records, outbox jobs and rewards, how far the slowest projection lags behind the
    log head, and a line per batch (the ``byr status --json`` document).

    Projections catch up first when nobody holds the writer's turn. While a submission or dispatch
    holds it, the answer is the projections as last committed, at once, and ``projection_lag``
    says how many events they are behind the log's head: status never waits for a writer."""
    if not state.lock.locked():
        async with exclusive(state) as parts:
            await run_in_threadpool(parts.ledger.sync)
    document = await run_in_threadpool(status_document, state.parts.ledger)
    return StatusPublic.model_validate(document)
