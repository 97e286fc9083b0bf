"""The ledger at a glance: log head, counts by status, outbox jobs, projection positions."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import AnyRole, PartsDep
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
def read_status(parts: PartsDep) -> StatusPublic:
    """Batches, records, outbox jobs and rewards, how far the slowest projection lags behind the
    log head, and a line per batch (the ``byr status --json`` document). Projections catch up
    first, so this waits for a running submission or dispatch to finish."""
    parts.ledger.sync()
    return StatusPublic.model_validate(status_document(parts.ledger))
