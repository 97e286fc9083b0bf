"""The ledger at a glance: log head, counts by status, outbox jobs, projection positions."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import RuntimeDep
from api.errors import error_responses
from api.schemas import StatusPublic

router = APIRouter(prefix="/status", tags=["status"], responses=error_responses(503))


@router.get("")
def read_status(runtime: RuntimeDep) -> StatusPublic:
    """Batches, records, outbox jobs and rewards (``byr status``), plus how far the slowest
    projection lags behind the log head. Projections catch up first, so this waits for a running
    submission or dispatch to finish."""
    status = runtime.ledger.status()
    positions = status.projection_positions
    lag = status.head_position - min(positions.values()) if positions else status.head_position
    return StatusPublic(**status.to_dict(), projection_lag=lag)
