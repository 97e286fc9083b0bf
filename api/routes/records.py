"""Records and their proof bundles."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field

from api.deps import LedgerDep, PartsDep, WriteAccess
from api.errors import error_responses
from api.schemas import RecordPublic
from api.services.erasure import MAX_REASON_CHARS, ErasureRequest
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


class ErasureBody(BaseModel):
    """Why the record is erased, and on whose behalf."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=MAX_REASON_CHARS)
    institution_id: str | None = Field(
        None, description="The institution asking; it must own the record."
    )


@router.delete("/{record_id}", dependencies=[WriteAccess], responses=error_responses(401, 422))
def erase_record(
    record_id: str, body: Annotated[ErasureBody, Body()], parts: PartsDep
) -> dict[str, Any]:
    """Erase a record for good (``byr erase``): text, salt and unsalted hash are deleted, with
    its near-duplicate entry and cached embeddings; the salted leaf stays, so the batch's other
    records still prove. Idempotent (``already_erased``); an unknown record is a 404."""
    return parts.erasure.erase(
        ErasureRequest(record_id=record_id, reason=body.reason, institution_id=body.institution_id)
    )
