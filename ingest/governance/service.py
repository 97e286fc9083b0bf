"""The governance step as a service: decide every pending batch and record the decisions.

For each batch with an open governance job it scores the batch's records with the
:class:`~ingest.governance.engine.GovernanceEngine`, adds the accepted records to the persistent
near-duplicate index, and appends ``BatchGoverned`` to the batch's stream. The append is
conditional on the stream version the service read, so two workers never both decide one batch.

Crash safety: the engine writes the index before the event is appended. If the process dies in
between, the batch is governed again on restart; the index ignores a record's match with itself,
so the decision is the same, and adding the records again is a no-op.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from ledger.application import CorpusLedger
from ledger.eventlog.base import ConcurrencyConflict
from ledger.events import BatchGoverned, RecordEntry
from ledger.faults import crash_point
from ledger.ids import batch_stream
from ledger.projections.outbox import JobKind

if TYPE_CHECKING:
    from ingest.governance.engine import GovernanceEngine

log = logging.getLogger(__name__)


@dataclass(slots=True)
class GovernanceRunReport:
    governed: dict[str, dict[str, int]] = field(default_factory=dict)
    """Batch id -> {"accepted": n, "rejected": m}."""
    skipped: list[str] = field(default_factory=list)
    """Batches another worker decided first."""

    @property
    def progressed(self) -> bool:
        return bool(self.governed or self.skipped)

    def to_dict(self) -> dict[str, Any]:
        return {"governed": self.governed, "skipped": self.skipped}


class GovernanceService:
    """Runs the governance engine over pending batches of one ledger."""

    def __init__(self, *, ledger: CorpusLedger, engine: GovernanceEngine) -> None:
        self.ledger = ledger
        self.engine = engine

    @classmethod
    def open(
        cls, *, ledger: CorpusLedger, directory: Path, policy_path: Path | None = None
    ) -> Self:
        """A service with the packaged models and the policy; the embedding cache and the
        near-duplicate index live in ``directory``."""
        from ingest.governance.engine import GovernanceEngine
        from ingest.governance.policy import load_policy

        directory.mkdir(parents=True, exist_ok=True)
        engine = GovernanceEngine.open(directory=directory, policy=load_policy(policy_path))
        return cls(ledger=ledger, engine=engine)

    def close(self) -> None:
        self.engine.dedup_index.close()
        self.engine.embedder.close()

    def run_once(self) -> GovernanceRunReport:
        """Govern every batch whose governance job is open."""
        report = GovernanceRunReport()
        for batch_id in self.ledger.pending_jobs(JobKind.GOVERN):
            try:
                counts = self.govern_batch(batch_id)
            except ConcurrencyConflict:
                report.skipped.append(batch_id)
                continue
            report.governed[batch_id] = counts
        return report

    def govern_batch(self, batch_id: str) -> dict[str, int]:
        """Decide one batch and record ``BatchGoverned``; returns accepted/rejected counts."""
        from ingest.governance.engine import GovernanceInput

        stream = batch_stream(batch_id)
        version = self.ledger.log.stream_version(stream)
        batch = self.ledger.batch(batch_id)
        entries: list[RecordEntry] = self.ledger.batch_entries(batch_id)
        inputs = [GovernanceInput.from_record(e.record_id, e.record, e.redactions) for e in entries]
        # The engine adds the accepted records to the near-duplicate index before returning.
        result = self.engine.govern(inputs)
        crash_point("governance.after_index")
        accepted = result.accepted_record_ids
        event = BatchGoverned(
            batch_id=batch_id, institution_id=batch.institution_id, **result.event_fields()
        )
        self.ledger.append(stream, [event], expected_version=version)
        self.ledger.sync()
        log.info("governed batch %s: %d accepted of %d", batch_id, len(accepted), len(entries))
        return {"accepted": len(accepted), "rejected": len(entries) - len(accepted)}
