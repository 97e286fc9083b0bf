"""BYR balances earned by institutions, as projected from the reward events."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import LedgerDep, PrincipalDep, require
from api.errors import error_responses
from api.schemas import BalancePublic
from api.services.keys import Role

router = APIRouter(prefix="/balances", tags=["rewards"])


@router.get(
    "",
    dependencies=[require(Role.ADMIN, Role.AUDITOR, Role.CONTRIBUTOR)],
    responses=error_responses(401, 403),
)
def list_balances(ledger: LedgerDep, who: PrincipalDep) -> list[BalancePublic]:
    """Every rewarded account with its total (wei, decimal string) and number of rewards; a
    contributor sees its own institution's."""
    rows = ledger.balances()
    if who.role is Role.CONTRIBUTOR:
        rows = [r for r in rows if r.institution_id == who.institution_id]
    return [BalancePublic(**row.to_dict()) for row in rows]
