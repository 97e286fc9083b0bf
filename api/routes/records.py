"""Records and their proof bundles."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AnyRole, LedgerDep, PartsDep, PrincipalDep, require
from api.errors import error_responses
from api.schemas import RecordPublic, trimmed_text
from api.services.erasure import MAX_REASON_CHARS, ErasureRequest
from api.services.keys import Role
from api.visibility import check_institution, record_for, require_owner
from ledger.audit import ProofBundle

router = APIRouter(prefix="/records", tags=["records"], responses=error_responses(404))


@router.get("/{record_id}", dependencies=[AnyRole], responses=error_responses(401, 403))
def read_record(record_id: str, ledger: LedgerDep, who: PrincipalDep) -> RecordPublic:
    """One record: status, leaf and decision; its canonical fields, salt and unsalted hash for
    the institution that submitted it (null for everyone else, and once erased)."""
    view = ledger.record(record_id)
    owner = ledger.batch(view.batch_id).institution_id
    check_institution(who, owner)
    return RecordPublic(**record_for(view, who, owner).to_dict())


@router.get("/{record_id}/proof", dependencies=[AnyRole], responses=error_responses(401, 403))
def read_proof(record_id: str, ledger: LedgerDep, who: PrincipalDep) -> ProofBundle:
    """The record's proof bundle (``byr proof``): record, salt, leaf, Merkle proof, root, and
    the anchor transaction once the batch is anchored. Only the submitting institution gets it
    (the bundle holds the text and the salt; it hands the bundle to an auditor). An erased
    record has none (404)."""
    view = ledger.record(record_id)
    require_owner(who, ledger.batch(view.batch_id).institution_id, what="export its proof")
    return ledger.proof(record_id)


def _reason_character(c: str) -> bool:
    """A character :func:`api.services.erasure.check_reason` lets a trimmed reason hold."""
    return unicodedata.category(c) not in ("Cc", "Cf") or c in "\t\n"


class ErasureBody(BaseModel):
    """Why the record is erased, and on whose behalf."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=1,
        max_length=MAX_REASON_CHARS,
        description="Recorded in the log: text without control or format characters.",
        json_schema_extra=trimmed_text(_reason_character),
    )
    institution_id: str | None = Field(
        None, description="The institution asking; it must own the record."
    )


@router.delete(
    "/{record_id}",
    dependencies=[require(Role.CONTRIBUTOR, Role.ADMIN)],
    responses=error_responses(401, 403, 422),
)
def erase_record(
    record_id: str, body: Annotated[ErasureBody, Body()], parts: PartsDep, who: PrincipalDep
) -> dict[str, Any]:
    """Erase a record for good (``byr erase``): text, salt and unsalted hash are deleted, with
    its near-duplicate entry and cached embeddings; the salted leaf stays, so the batch's other
    records still prove. Idempotent (``already_erased``); an unknown record is a 404."""
    institution_id = body.institution_id
    if who.role is Role.CONTRIBUTOR:
        # A contributor erases for its own institution, whatever the body names.
        if institution_id is not None:
            check_institution(who, institution_id)
        institution_id = who.institution_id
    return parts.erasure.erase(
        ErasureRequest(
            record_id=record_id,
            reason=body.reason,
            institution_id=institution_id,
            key_id=who.attribution,
        )
    )
