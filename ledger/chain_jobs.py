"""Outbox jobs with a chain effect: anchoring batches, minting rewards, anchoring training runs.

Each handler performs one job idempotently: it first asks the chain whether the effect already
happened (a previous run may have sent the transaction and died before recording it) and, if so,
records the existing transaction instead of sending another. The job closes when the resulting
event is projected. A node that cannot be reached defers the job and the rest of the stage's jobs
in this round; a refusal that retrying cannot fix is recorded as a failure event where the ledger
has one (batch anchors), and deferred otherwise.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod

from ledger.application import CorpusLedger
from ledger.chain.clients import AcademicLedgerClient, BYRTokenClient
from ledger.chain.errors import (
    ChainError,
    ChainUnavailable,
    EmptyBatch,
    RootAlreadyAnchored,
    ZeroRoot,
)
from ledger.errors import NotFound
from ledger.events import (
    BatchAnchored,
    BatchAnchorFailed,
    ContributionRewarded,
    TrainingRunAnchored,
)
from ledger.faults import crash_point
from ledger.ids import batch_stream, id_key, run_stream
from ledger.jobs import JobResult, Outcome
from ledger.merkle import parse_bytes32, to_hex
from ledger.projections.outbox import JobKind

log = logging.getLogger(__name__)

#: Refusals that retrying cannot fix: the batch is recorded as failed.
PERMANENT_ANCHOR_ERRORS: tuple[type[ChainError], ...] = (RootAlreadyAnchored, ZeroRoot, EmptyBatch)


class ChainJob(ABC):
    """One job kind with a chain effect; :meth:`perform` applies the shared failure policy."""

    kind: JobKind

    def __init__(self, *, ledger: CorpusLedger) -> None:
        self.ledger = ledger

    def perform(self, key: str) -> JobResult:
        try:
            recovered = self._perform(key)
        except ChainUnavailable as exc:
            self.ledger.note_attempt(self.kind, key, error=str(exc))
            log.warning("%s job %s deferred: %s", self.kind.value, key, exc)
            return JobResult(key, Outcome.DEFERRED, str(exc), stop=True)
        except ChainError as exc:
            if isinstance(exc, self.permanent_errors()) and self._record_failure(key, exc):
                return JobResult(key, Outcome.FAILED, f"{type(exc).__name__}: {exc}")
            self.ledger.note_attempt(self.kind, key, error=str(exc))
            log.warning("%s job %s deferred: %s", self.kind.value, key, exc)
            return JobResult(key, Outcome.DEFERRED, f"{type(exc).__name__}: {exc}")
        return JobResult(key, Outcome.RECOVERED if recovered else Outcome.DONE)

    @abstractmethod
    def _perform(self, key: str) -> bool:
        """Cause (or find) the chain effect and record it; returns whether it was found."""

    def permanent_errors(self) -> tuple[type[ChainError], ...]:
        """Refusals this kind records as a failure instead of retrying."""
        return ()

    def _record_failure(self, key: str, exc: ChainError) -> bool:
        """Record a permanent refusal in the log; returns whether the kind has such an event."""
        return False


class AnchorBatchJob(ChainJob):
    """Anchors a governed batch's Merkle root and metadata hash on the academic chain."""

    kind = JobKind.ANCHOR

    def __init__(self, *, ledger: CorpusLedger, academic: AcademicLedgerClient) -> None:
        super().__init__(ledger=ledger)
        self.academic = academic

    def permanent_errors(self) -> tuple[type[ChainError], ...]:
        return PERMANENT_ANCHOR_ERRORS

    def _record_failure(self, key: str, exc: ChainError) -> bool:
        self.ledger.append(
            batch_stream(key),
            [BatchAnchorFailed(batch_id=key, error=type(exc).__name__, detail=str(exc))],
        )
        return True

    def _perform(self, key: str) -> bool:
        batch = self.ledger.batch(key)
        root = parse_bytes32(batch.merkle_root)
        existing = self.academic.find_batch_anchor(key)
        if existing is not None:
            if existing.merkle_root != root:
                raise RootMismatchOnChain(
                    f"batch {key} is anchored with root {to_hex(existing.merkle_root)}, "
                    f"the ledger recorded {batch.merkle_root}"
                )
            tx_hash, block_number = existing.tx_hash, existing.block_number
        else:
            result = self.academic.anchor_batch(
                batch_id=key,
                merkle_root=root,
                metadata_hash=parse_bytes32(batch.metadata_hash),
                institution_id=batch.institution_id,
                record_count=batch.record_count,
            )
            crash_point("anchor.after_send")
            tx_hash, block_number = result.tx_hash, result.block_number
        self.ledger.append(
            batch_stream(key),
            [
                BatchAnchored(
                    batch_id=key,
                    merkle_root=batch.merkle_root,
                    metadata_hash=batch.metadata_hash,
                    chain_id=self.academic.chain.chain_id,
                    contract_address=self.academic.address,
                    tx_hash=tx_hash,
                    block_number=block_number,
                )
            ],
        )
        return existing is not None


class RootMismatchOnChain(RootAlreadyAnchored):
    """The chain holds a different root for this batch id than the ledger recorded."""

    def __init__(self, message: str) -> None:
        ChainError.__init__(self, message)


class RewardJob(ChainJob):
    """Mints an anchored batch's BYR reward on the incentive chain, exactly once."""

    kind = JobKind.REWARD

    def __init__(self, *, ledger: CorpusLedger, token: BYRTokenClient) -> None:
        super().__init__(ledger=ledger)
        self.token = token

    def _perform(self, key: str) -> bool:
        batch = self.ledger.batch(key)
        institution = self.ledger.institution(batch.institution_id)
        contribution_id = id_key(key)
        amount = int(batch.reward_wei or 0)
        academic_ref = parse_bytes32(batch.merkle_root)
        existing = self.token.find_reward(contribution_id)
        if existing is not None:
            to, amount = existing.to, existing.amount_wei
            tx_hash, block_number = existing.tx_hash, existing.block_number
        else:
            result = self.token.mint(
                to=institution.account,
                amount_wei=amount,
                contribution_id=contribution_id,
                academic_ref=academic_ref,
            )
            crash_point("reward.after_mint")
            to, tx_hash, block_number = institution.account, result.tx_hash, result.block_number
        self.ledger.append(
            batch_stream(key),
            [
                ContributionRewarded(
                    batch_id=key,
                    contribution_id=to_hex(contribution_id),
                    institution_id=batch.institution_id,
                    account=to,
                    amount_wei=str(amount),
                    academic_ref=batch.merkle_root,
                    chain_id=self.token.chain.chain_id,
                    contract_address=self.token.address,
                    tx_hash=tx_hash,
                    block_number=block_number,
                )
            ],
        )
        return existing is not None


class AnchorRunJob(ChainJob):
    """Anchors a completed training run (adapter, dataset, recipe and base-model hashes)."""

    kind = JobKind.ANCHOR_RUN

    def __init__(self, *, ledger: CorpusLedger, academic: AcademicLedgerClient) -> None:
        super().__init__(ledger=ledger)
        self.academic = academic

    def _perform(self, key: str) -> bool:
        run = self.ledger.training_run(key)
        recorded = {
            "dataset_root": run.dataset_root,
            "adapter_hash": run.adapter_hash,
            "recipe_hash": run.recipe_hash,
            "base_model_hash": run.base_model_hash,
        }
        missing = [name for name, value in recorded.items() if value is None]
        if missing:
            raise NotFound(f"training run {key} has no {', '.join(missing)} (not completed)")
        hashes = {name: parse_bytes32(_hex0x(str(value))) for name, value in recorded.items()}
        existing = self.academic.find_training_run(key)
        if existing is not None:
            tx_hash, block_number = existing.tx_hash, existing.block_number
        else:
            result = self.academic.anchor_training_run(run_id=key, **hashes)
            crash_point("run_anchor.after_send")
            tx_hash, block_number = result.tx_hash, result.block_number
        self.ledger.append(
            run_stream(key),
            [
                TrainingRunAnchored(
                    run_id=key,
                    dataset_root=to_hex(hashes["dataset_root"]),
                    adapter_hash=to_hex(hashes["adapter_hash"]),
                    recipe_hash=to_hex(hashes["recipe_hash"]),
                    base_model_hash=to_hex(hashes["base_model_hash"]),
                    chain_id=self.academic.chain.chain_id,
                    contract_address=self.academic.address,
                    tx_hash=tx_hash,
                    block_number=block_number,
                )
            ],
        )
        return existing is not None


def _hex0x(value: str) -> str:
    return value if value.startswith("0x") else "0x" + value
