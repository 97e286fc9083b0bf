"""Verification of proof bundles, offline or against the academic chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.security import HTTPAuthorizationCredentials
from starlette.concurrency import run_in_threadpool

from api.deps import StateDep, bearer_scheme, exclusive, principal
from api.errors import error_responses
from api.schemas import VerificationPublic
from api.services.audit import verify_bundle
from ledger.audit import ProofBundle

router = APIRouter(prefix="/verify", tags=["proofs"])


@router.post(
    "",
    responses=error_responses(401, 422, 503),
    # the key is optional: offline verification needs none (FastAPI appends this alternative)
    openapi_extra={"security": [{}]},
)
async def verify(
    bundle: ProofBundle,
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    offline: Annotated[
        bool, Query(description="Check hashes and proof only; do not ask the chain.")
    ] = False,
) -> VerificationPublic:
    """Verify a proof bundle. A well-formed bundle always gets 200: ``ok`` says whether every
    check passed and each failed check says why. A malformed bundle gets 422. Offline
    verification needs no key and nothing from the server, and never waits for a running
    submission; asking the chain needs a key of any role."""
    if not offline:
        await principal(state, credentials)
    if offline:
        report = verify_bundle(bundle, offline=True)
    else:
        async with exclusive(state) as parts:
            report = await run_in_threadpool(verify_bundle, bundle, configured=parts.academic_at)
    return VerificationPublic(**report.to_dict())
