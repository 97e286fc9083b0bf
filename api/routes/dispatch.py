"""Running the outbox: governance, anchoring and rewarding of pending batches."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Admin, PartsDep
from api.errors import error_responses
from api.schemas import DispatchPublic

router = APIRouter(prefix="/dispatch", tags=["dispatch"])


@router.post("", dependencies=[Admin], responses=error_responses(401, 403, 503))
def dispatch(parts: PartsDep) -> DispatchPublic:
    """Run pending governance, anchor and reward jobs until none makes progress (``byr
    dispatch``). Governance loads its models on first use, which takes a while."""
    return DispatchPublic(rounds=parts.pipeline.drain())
