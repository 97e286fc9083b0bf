"""Verification of proof bundles, offline or against the academic chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from api.deps import StateDep, exclusive
from api.errors import error_responses
from api.schemas import VerificationPublic
from api.services.audit import verify_bundle
from ledger.audit import ProofBundle

router = APIRouter(prefix="/verify", tags=["proofs"])


@router.post("", responses=error_responses(422, 503))
async def verify(
    bundle: ProofBundle,
    state: StateDep,
    offline: Annotated[
        bool, Query(description="Check hashes and proof only; do not ask the chain.")
    ] = False,
) -> VerificationPublic:
    """Verify a proof bundle. A well-formed bundle always gets 200: ``ok`` says whether every
    check passed and each failed check says why. A malformed bundle gets 422. Offline
    verification needs nothing from the server and never waits for a running submission."""
    if offline:
        report = verify_bundle(bundle, offline=True)
    else:
        async with exclusive(state) as parts:
            report = await run_in_threadpool(verify_bundle, bundle, configured=parts.academic_at)
    return VerificationPublic(**report.to_dict())
