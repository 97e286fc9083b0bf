"""BYR balances earned by institutions, as projected from the reward events."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import LedgerDep
from api.schemas import BalancePublic

router = APIRouter(prefix="/balances", tags=["rewards"])


@router.get("")
def list_balances(ledger: LedgerDep) -> list[BalancePublic]:
    """Every rewarded account with its total (wei, decimal string) and number of rewards."""
    return [BalancePublic(**row.to_dict()) for row in ledger.balances()]
