"""Records and their proof bundles."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import LedgerDep
from api.errors import error_responses
from api.schemas import RecordPublic
from ledger.audit import ProofBundle

router = APIRouter(prefix="/records", tags=["records"], responses=error_responses(404))


@router.get("/{record_id}")
def read_record(record_id: str, ledger: LedgerDep) -> RecordPublic:
    """One record: canonical fields (null once erased), salt, hashes, status and decision."""
    return RecordPublic(**ledger.record(record_id).to_dict())


@router.get("/{record_id}/proof")
def read_proof(record_id: str, ledger: LedgerDep) -> ProofBundle:
    """The record's proof bundle (``byr proof``): record, salt, leaf, Merkle proof, root, and
    the anchor transaction once the batch is anchored. An erased record has none (404)."""
    return ledger.proof(record_id)
