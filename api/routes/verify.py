"""Verification of proof bundles, offline or against the academic chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from api.deps import StateDep, exclusive
from api.errors import error_responses
from api.runtime import Runtime
from api.schemas import VerificationPublic
from ledger.audit import ProofBundle, VerificationReport, verify_offline, verify_online

router = APIRouter(prefix="/verify", tags=["proofs"])


def verify_on_chain(runtime: Runtime, bundle: ProofBundle) -> VerificationReport:
    """``byr verify`` without ``--offline``: the offline checks and what the configured academic
    chain confirms. A bundle that names no contract is checked against the deployed
    AcademicLedger (and fails its chain checks)."""
    from ledger.chain.clients import AcademicLedgerClient

    address = bundle.contract_address or runtime.deployments.academic.address
    return verify_online(bundle, academic=AcademicLedgerClient(runtime.academic_chain, address))


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
        report = verify_offline(bundle)
    else:
        async with exclusive(state) as runtime:
            report = await run_in_threadpool(verify_on_chain, runtime, bundle)
    return VerificationPublic(**report.to_dict())
