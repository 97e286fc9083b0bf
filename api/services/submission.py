"""Submitting a batch: intake (validation and desensitization), then one ``CorpusBatchSubmitted``.

``byr submit`` and ``POST /v1/batches`` both end in :meth:`SubmissionService.submit_bytes`, so the
same bytes record the same batch through either door; with ``wait`` the pipeline is drained
before the answer (governance, anchoring, reward).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.application import BatchView, CorpusLedger, SubmittedBatch
from ledger.batching import RecordInput

if TYPE_CHECKING:
    from ingest.banks import ConversionOptions
    from ingest.intake import IntakeLimits, IntakeResult
    from ingest.records import Desensitizer
    from ledger.settings import LedgerSettings


@dataclass(frozen=True, slots=True)
class SubmissionOutcome:
    """What happened to one submitted file."""

    intake: IntakeResult
    batch: SubmittedBatch | None
    view: BatchView | None
    pipeline: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The submission document shared by ``byr submit --json`` and ``POST /v1/batches``."""
        intake = self.intake
        data: dict[str, Any] = {
            "source": intake.source,
            "items": intake.items_seen,
            "valid_records": len(intake.records),
            "issues": [issue.to_dict() for issue in intake.issues],
            "redactions": intake.redaction_totals(),
            "recorded": self.batch is not None,
            "pipeline": self.pipeline,
        }
        if self.batch is not None and self.view is not None:
            data.update(
                batch_id=self.batch.batch_id,
                merkle_root=self.batch.merkle_root,
                metadata_hash=self.batch.metadata_hash,
                record_ids=self.batch.record_ids,
            )
            data.update(view_fields(self.view))
        return data

    def report(self) -> SubmissionReport:
        """This outcome as a document only (what crosses a process boundary: no records)."""
        return SubmissionReport(
            document=self.to_dict(),
            summary=self.intake.summary(),
            batch_id=None if self.batch is None else self.batch.batch_id,
        )


def view_fields(view: BatchView) -> dict[str, Any]:
    """The batch's state in a submission document: status, decisions, anchor and reward."""
    return {
        "status": view.status,
        "accepted": view.accepted_count,
        "policy_version": view.policy_version,
        "tx_hash": view.tx_hash,
        "block_number": view.block_number,
        "chain_id": view.chain_id,
        "contract_address": view.contract_address,
        "reward_wei": view.reward_wei if view.reward_tx_hash else None,
        "reward_tx_hash": view.reward_tx_hash,
        "anchor_error": view.anchor_error,
    }


@dataclass(frozen=True, slots=True)
class SubmissionReport:
    """A submission's document (:meth:`SubmissionOutcome.to_dict`), the intake's one-line summary,
    and the recorded batch's id (``None``: nothing was recorded)."""

    document: dict[str, Any]
    summary: str
    batch_id: str | None

    @property
    def issues(self) -> list[dict[str, Any]]:
        issues: list[dict[str, Any]] = self.document["issues"]
        return issues


def intake_limits(settings: LedgerSettings) -> IntakeLimits:
    """The intake limits a home's settings set."""
    from ingest.intake import IntakeLimits

    return IntakeLimits(
        max_field_chars=settings.max_field_chars,
        max_record_chars=settings.max_record_chars,
        max_turns=settings.max_turns,
    )


class SubmissionService:
    """Reads batches through intake and records their valid records."""

    def __init__(
        self,
        *,
        ledger: CorpusLedger,
        limits: IntakeLimits,
        desensitizer: Callable[[], Desensitizer],
        drain: Callable[[], list[dict[str, Any]]],
        policy_version: Callable[[], str],
    ) -> None:
        self.ledger = ledger
        self.limits = limits
        self._desensitizer = desensitizer
        self._drain = drain
        self._policy_version = policy_version

    def read_bytes(
        self,
        data: bytes,
        *,
        source_name: str,
        institution_id: str,
        discipline: str | None = None,
        conversion: ConversionOptions | None = None,
    ) -> IntakeResult:
        """Validate and desensitize a batch (nothing is recorded); ``conversion``: a question
        bank's column mapping and sheet."""
        from ingest.intake import read_batch_bytes

        return read_batch_bytes(
            data,
            source_name=source_name,
            institution_id=institution_id,
            default_discipline=discipline,
            limits=self.limits,
            desensitizer=self._desensitizer(),
            conversion=conversion,
        )

    def submit(
        self,
        path: Path,
        *,
        institution_id: str,
        discipline: str | None = None,
        strict: bool = False,
        wait: bool = False,
        conversion: ConversionOptions | None = None,
    ) -> SubmissionOutcome:
        """Read the batch file at ``path`` and :meth:`submit_bytes` it."""
        from ingest.intake import read_batch_file

        data = read_batch_file(path, limits=self.limits)
        return self.submit_bytes(
            data,
            source_name=Path(path).name,
            institution_id=institution_id,
            discipline=discipline,
            strict=strict,
            wait=wait,
            conversion=conversion,
        )

    def submit_bytes(
        self,
        data: bytes,
        *,
        source_name: str,
        institution_id: str,
        discipline: str | None = None,
        strict: bool = False,
        wait: bool = False,
        submitted_by: str | None = None,
        conversion: ConversionOptions | None = None,
    ) -> SubmissionOutcome:
        """Validate and desensitize a batch; record its valid records as one batch
        (``submitted_by``: the API key it came with; ``None`` from the server's own home).

        With ``strict`` a batch with any bad line records nothing. With ``wait`` the batch is
        carried through governance, anchoring and rewarding before returning.
        """
        self.ledger.institution(institution_id)  # fail fast on an unknown institution
        intake = self.read_bytes(
            data,
            source_name=source_name,
            institution_id=institution_id,
            discipline=discipline,
            conversion=conversion,
        )
        return self.record(
            intake,
            institution_id=institution_id,
            strict=strict,
            wait=wait,
            submitted_by=submitted_by,
        )

    def record(
        self,
        intake: IntakeResult,
        *,
        institution_id: str,
        strict: bool = False,
        wait: bool = False,
        submitted_by: str | None = None,
    ) -> SubmissionOutcome:
        """Record what :meth:`read_bytes` accepted as one batch (the writer's half: the HTTP
        server runs intake before it takes the writer's turn, and only this under it)."""
        if not intake.records or (strict and not intake.ok):
            return SubmissionOutcome(intake=intake, batch=None, view=None)
        batch = self.ledger.submit_batch(
            institution_id=institution_id,
            source_name=intake.source,
            records=[
                RecordInput(
                    canonical=r.fields.as_dict(), source_line=r.line, redactions=r.redactions
                )
                for r in intake.records
            ],
            rejected_at_intake=[i.to_dict() for i in intake.issues if i.is_error],
            policy_version=self._policy_version(),
            submitted_by=submitted_by,
        )
        pipeline = self._drain() if wait else []
        return SubmissionOutcome(
            intake=intake, batch=batch, view=self.ledger.batch(batch.batch_id), pipeline=pipeline
        )

    def complete(self, report: SubmissionReport, *, wait: bool = False) -> SubmissionReport:
        """Finish a submission recorded by another process of this home (the HTTP server's intake
        worker): bring this process's projections up to the log, and with ``wait`` carry the
        batch through governance, anchoring and rewarding, as :meth:`record` does."""
        self.ledger.sync()
        if report.batch_id is None or not wait:
            return report
        pipeline = self._drain()
        document = report.document | {"pipeline": pipeline}
        document.update(view_fields(self.ledger.batch(report.batch_id)))
        return SubmissionReport(document=document, summary=report.summary, batch_id=report.batch_id)
