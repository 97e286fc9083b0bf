"""The status of submissions answered 202 (``POST /v1/batches`` with ``Prefer: respond-async``)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import AnyRole, PrincipalDep, StateDep
from api.errors import error_responses
from api.schemas import SubmissionAccepted
from api.visibility import require_owner
from ledger.errors import NotFound

router = APIRouter(prefix="/submissions", tags=["batches"])


@router.get("/{submission_id}", dependencies=[AnyRole], responses=error_responses(401, 403, 404))
def read_submission(submission_id: str, state: StateDep, who: PrincipalDep) -> SubmissionAccepted:
    """Where a submission answered 202 stands; once ``done`` or ``failed``, ``http_status`` and
    ``result`` hold what the synchronous request would have answered. Only the submitting
    institution may read it; a server restarted meanwhile has forgotten it (404: resubmit)."""
    item = state.submissions.get(submission_id)
    if item is None:
        raise NotFound("no submission of this server has this id (a restart forgets them)")
    require_owner(who, item.institution_id, what="read its submission")
    return SubmissionAccepted(**item.to_dict())
