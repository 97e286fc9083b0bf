"""The institution registry."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import Admin, AnyRole, LedgerDep, PartsDep
from api.errors import error_responses
from api.schemas import InstitutionCreate, InstitutionPublic

router = APIRouter(prefix="/institutions", tags=["institutions"])


@router.get("", dependencies=[AnyRole], responses=error_responses(401, 403))
def list_institutions(ledger: LedgerDep) -> list[InstitutionPublic]:
    """Every registered institution, by id."""
    return [InstitutionPublic(**view.to_dict()) for view in ledger.institutions()]


@router.post(
    "",
    status_code=201,
    dependencies=[Admin],
    responses=error_responses(401, 403, 409, 422, 503),
)
def create_institution(body: InstitutionCreate, parts: PartsDep) -> InstitutionPublic:
    """Register an institution on the academic chain, then in the ledger. Registering the same
    id with the same account again is idempotent; another account for a registered id is a
    conflict."""
    view = parts.institutions.add(
        institution_id=body.institution_id, name=body.name, account=body.account
    )
    return InstitutionPublic(**view.to_dict())


@router.get("/{institution_id}", dependencies=[AnyRole], responses=error_responses(401, 403, 404))
def read_institution(institution_id: str, ledger: LedgerDep) -> InstitutionPublic:
    return InstitutionPublic(**ledger.institution(institution_id).to_dict())
