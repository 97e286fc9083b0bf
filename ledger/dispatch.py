"""Dispatchers that carry outbox jobs to the chains: anchoring batches and minting rewards.

Each job is performed idempotently: the dispatcher first asks the chain whether the effect already
happened (a previous run may have sent the transaction and died before recording it) and, if so,
records the existing transaction instead of sending another. The job closes when the resulting
event is projected. A node that cannot be reached defers the job to the next run; a refusal that
retrying cannot fix is recorded as a failure event.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from ledger.application import CorpusLedger
from ledger.chain.clients import AcademicLedgerClient, BYRTokenClient
from ledger.chain.errors import (
    ChainError,
    ChainUnavailable,
    EmptyBatch,
    RootAlreadyAnchored,
    ZeroRoot,
)
from ledger.events import (
    BatchAnchored,
    BatchAnchorFailed,
    ContributionRewarded,
    TrainingRunAnchored,
)
from ledger.faults import crash_point
from ledger.ids import batch_stream, id_key, run_stream
from ledger.merkle import parse_bytes32, to_hex
from ledger.projections.outbox import JobKind

log = logging.getLogger(__name__)

#: Refusals that retrying cannot fix: the batch is recorded as failed.
PERMANENT_ANCHOR_ERRORS: tuple[type[ChainError], ...] = (RootAlreadyAnchored, ZeroRoot, EmptyBatch)


@dataclass(slots=True)
class DispatchReport:
    """What one dispatcher run did, by batch id."""

    done: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    """Jobs whose chain effect had already happened (found on chain, recorded now)."""
    failed: dict[str, str] = field(default_factory=dict)
    deferred: dict[str, str] = field(default_factory=dict)

    @property
    def progressed(self) -> bool:
        return bool(self.done or self.recovered or self.failed)

    def to_dict(self) -> dict[str, object]:
        return {
            "done": self.done,
            "recovered": self.recovered,
            "failed": self.failed,
            "deferred": self.deferred,
        }


class AnchorDispatcher:
    """Anchors governed batches on the academic chain."""

    def __init__(self, *, ledger: CorpusLedger, academic: AcademicLedgerClient) -> None:
        self.ledger = ledger
        self.academic = academic

    def run_once(self) -> DispatchReport:
        report = DispatchReport()
        for batch_id in self.ledger.pending_jobs(JobKind.ANCHOR):
            try:
                self._anchor(batch_id, report)
            except ChainUnavailable as exc:
                self.ledger.note_attempt(JobKind.ANCHOR, batch_id, error=str(exc))
                report.deferred[batch_id] = str(exc)
                log.warning("anchor of batch %s deferred: %s", batch_id, exc)
                break
            except PERMANENT_ANCHOR_ERRORS as exc:
                self.ledger.append(
                    batch_stream(batch_id),
                    [
                        BatchAnchorFailed(
                            batch_id=batch_id, error=type(exc).__name__, detail=str(exc)
                        )
                    ],
                )
                report.failed[batch_id] = f"{type(exc).__name__}: {exc}"
            except ChainError as exc:
                self.ledger.note_attempt(JobKind.ANCHOR, batch_id, error=str(exc))
                report.deferred[batch_id] = f"{type(exc).__name__}: {exc}"
                log.warning("anchor of batch %s deferred: %s", batch_id, exc)
        return report

    def _anchor(self, batch_id: str, report: DispatchReport) -> None:
        batch = self.ledger.batch(batch_id)
        root = parse_bytes32(batch.merkle_root)
        existing = self.academic.find_batch_anchor(batch_id)
        if existing is not None:
            if existing.merkle_root != root:
                raise RootMismatchOnChain(
                    f"batch {batch_id} is anchored with root {to_hex(existing.merkle_root)}, "
                    f"the ledger recorded {batch.merkle_root}"
                )
            tx_hash, block_number = existing.tx_hash, existing.block_number
            report.recovered.append(batch_id)
        else:
            result = self.academic.anchor_batch(
                batch_id=batch_id,
                merkle_root=root,
                metadata_hash=parse_bytes32(batch.metadata_hash),
                institution_id=batch.institution_id,
                record_count=batch.record_count,
            )
            crash_point("anchor.after_send")
            tx_hash, block_number = result.tx_hash, result.block_number
            report.done.append(batch_id)
        self.ledger.append(
            batch_stream(batch_id),
            [
                BatchAnchored(
                    batch_id=batch_id,
                    merkle_root=batch.merkle_root,
                    metadata_hash=batch.metadata_hash,
                    chain_id=self.academic.chain.chain_id,
                    contract_address=self.academic.address,
                    tx_hash=tx_hash,
                    block_number=block_number,
                )
            ],
        )


class RootMismatchOnChain(RootAlreadyAnchored):
    """The chain holds a different root for this batch id than the ledger recorded."""

    def __init__(self, message: str) -> None:
        ChainError.__init__(self, message)


class RewardDispatcher:
    """Mints each anchored batch's BYR reward on the incentive chain, exactly once."""

    def __init__(self, *, ledger: CorpusLedger, token: BYRTokenClient) -> None:
        self.ledger = ledger
        self.token = token

    def run_once(self) -> DispatchReport:
        report = DispatchReport()
        for batch_id in self.ledger.pending_jobs(JobKind.REWARD):
            try:
                self._reward(batch_id, report)
            except ChainUnavailable as exc:
                self.ledger.note_attempt(JobKind.REWARD, batch_id, error=str(exc))
                report.deferred[batch_id] = str(exc)
                log.warning("reward of batch %s deferred: %s", batch_id, exc)
                break
            except ChainError as exc:
                self.ledger.note_attempt(JobKind.REWARD, batch_id, error=str(exc))
                report.deferred[batch_id] = f"{type(exc).__name__}: {exc}"
                log.warning("reward of batch %s deferred: %s", batch_id, exc)
        return report

    def _reward(self, batch_id: str, report: DispatchReport) -> None:
        batch = self.ledger.batch(batch_id)
        institution = self.ledger.institution(batch.institution_id)
        contribution_id = id_key(batch_id)
        amount = int(batch.reward_wei or 0)
        academic_ref = parse_bytes32(batch.merkle_root)
        existing = self.token.find_reward(contribution_id)
        if existing is not None:
            to, amount, tx_hash, block_number = (
                existing.to,
                existing.amount_wei,
                existing.tx_hash,
                existing.block_number,
            )
            report.recovered.append(batch_id)
        else:
            result = self.token.mint(
                to=institution.account,
                amount_wei=amount,
                contribution_id=contribution_id,
                academic_ref=academic_ref,
            )
            crash_point("reward.after_mint")
            to, tx_hash, block_number = institution.account, result.tx_hash, result.block_number
            report.done.append(batch_id)
        self.ledger.append(
            batch_stream(batch_id),
            [
                ContributionRewarded(
                    batch_id=batch_id,
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


class RunAnchorDispatcher:
    """Anchors completed training runs (adapter, dataset, recipe and base-model hashes)."""

    def __init__(self, *, ledger: CorpusLedger, academic: AcademicLedgerClient) -> None:
        self.ledger = ledger
        self.academic = academic

    def run_once(self) -> DispatchReport:
        report = DispatchReport()
        for run_id in self.ledger.pending_jobs(JobKind.ANCHOR_RUN):
            try:
                self._anchor(run_id, report)
            except ChainUnavailable as exc:
                self.ledger.note_attempt(JobKind.ANCHOR_RUN, run_id, error=str(exc))
                report.deferred[run_id] = str(exc)
                break
            except ChainError as exc:
                self.ledger.note_attempt(JobKind.ANCHOR_RUN, run_id, error=str(exc))
                report.deferred[run_id] = f"{type(exc).__name__}: {exc}"
        return report

    def _anchor(self, run_id: str, report: DispatchReport) -> None:
        run = self.ledger.training_run(run_id)
        hashes = {
            name: parse_bytes32(_hex0x(run[name]))
            for name in ("dataset_root", "adapter_hash", "recipe_hash", "base_model_hash")
        }
        existing = self.academic.find_training_run(run_id)
        if existing is not None:
            tx_hash, block_number = existing.tx_hash, existing.block_number
            report.recovered.append(run_id)
        else:
            result = self.academic.anchor_training_run(run_id=run_id, **hashes)
            crash_point("run_anchor.after_send")
            tx_hash, block_number = result.tx_hash, result.block_number
            report.done.append(run_id)
        self.ledger.append(
            run_stream(run_id),
            [
                TrainingRunAnchored(
                    run_id=run_id,
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


def _hex0x(value: str) -> str:
    return value if value.startswith("0x") else "0x" + value
