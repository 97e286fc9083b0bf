"""The governance step as a service: decide every pending batch and record the decisions.

For each batch with an open governance job it scores the batch's records with the
:class:`~ingest.governance.engine.GovernanceEngine` and appends ``BatchGoverned`` to the batch's
stream, conditional on the version the service read, so two workers never both decide one batch.

Near duplicates across workers: the decision depends on every record accepted before it, and
workers on other machines accept records too. So the near-duplicate index is a projection of the
log, not of one worker's decisions. A decision that accepts records also appends
``CorpusIndexExtended`` to the one ``corpus-index`` stream, in the same atomic append, on the
stream version the worker's index reflects. If another worker extended the corpus meanwhile, the
append fails with a conflict on that stream; the worker brings its index up to the log (adding
the other worker's accepted records, read from the projections) and decides again. Only the cheap
half is repeated (:meth:`GovernanceEngine.decide`); text checks and coherence are assessed once.
So every batch is checked against every record accepted before it, on any worker, exactly as if
one process had governed them all in the order of the ``corpus-index`` stream.

Erasure: the index and the embedding cache hold copies of accepted text. Every sync also follows
the erasures this process's projections applied (:meth:`CorpusLedger.erasures_since`) and purges
the erased records from both (:func:`ingest.governance.erasure.purge_records`), so a worker on any
machine forgets an erased record at its next step; the erasure count it has applied is kept in
``erasures.applied`` next to the index (purging again is harmless, so a lost count only repeats
work).

Crash safety: the index is written only from the log (:meth:`GovernanceService.sync_index`,
idempotent per record, its position stored with the records). A worker that dies after the
append catches up on restart; one that dies before it leaves the job open, and the batch is
governed again.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Self

from ingest.governance.errors import GovernanceError
from ledger.application import CorpusLedger
from ledger.eventlog.base import ConcurrencyConflict, StreamAppend
from ledger.events import BatchGoverned, CorpusIndexExtended, DomainEvent, RecordEntry
from ledger.faults import crash_point
from ledger.files import private_dir, private_file
from ledger.ids import CORPUS_INDEX_STREAM, batch_stream
from ledger.jobs import JobResult, Outcome

if TYPE_CHECKING:
    from ingest.governance.engine import GovernanceEngine

log = logging.getLogger(__name__)


class GovernanceService:
    """The handler of ``govern`` jobs: runs the governance engine over one ledger's batches."""

    DECIDE_ATTEMPTS = 50
    """Decisions tried against a moving accepted corpus before the batch is left for later."""

    ERASURES_FILE = "erasures.applied"

    def __init__(
        self, *, ledger: CorpusLedger, engine: GovernanceEngine, directory: Path | None = None
    ) -> None:
        self.ledger = ledger
        self.engine = engine
        self.directory = directory
        self._erasures_applied = self._read_erasures_applied()

    @classmethod
    def open(
        cls, *, ledger: CorpusLedger, directory: Path, policy_path: Path | None = None
    ) -> Self:
        """A service with the packaged models and the policy; the embedding cache and the
        near-duplicate index live in ``directory``."""
        from ingest.governance.engine import GovernanceEngine
        from ingest.governance.policy import load_policy

        private_dir(directory)
        engine = GovernanceEngine.open(directory=directory, policy=load_policy(policy_path))
        return cls(ledger=ledger, engine=engine, directory=directory)

    def close(self) -> None:
        self.engine.dedup_index.close()
        self.engine.embedder.close()

    def perform(self, batch_id: str) -> JobResult:
        """Govern one batch (a ``govern`` outbox job); skipped when another worker decided it
        first."""
        try:
            counts = self.govern_batch(batch_id)
        except ConcurrencyConflict:
            log.info("batch %s was decided by another worker", batch_id)
            self.ledger.sync()
            return JobResult(batch_id, Outcome.SKIPPED)
        return JobResult(batch_id, Outcome.DONE, counts)

    def sync_index(self) -> int:
        """Bring the near-duplicate index up to the ``corpus-index`` stream as projected now;
        returns the stream version it reflects."""
        from ingest.governance.dedup import DedupItem

        self.ledger.sync()
        self.purge_erased()
        index = self.engine.dedup_index
        while entries := self.ledger.corpus_index_since(index.position, limit=200):
            items = [
                DedupItem.from_record(record_id, record)
                for _, records in entries
                for record_id, record in records
            ]
            index.add(items, position=entries[-1][0])
        return index.position

    def purge_erased(self) -> int:
        """Remove every record erased since the last purge from the near-duplicate index and the
        embedding cache; returns how many erasures were applied."""
        from ingest.governance.erasure import purge_records

        applied = 0
        while erasures := self.ledger.erasures_since(self._erasures_applied, limit=500):
            record_ids = [record_id for _, record_id in erasures]
            if self.directory is not None:
                purge_records(self.directory, record_ids)
            else:
                for record_id in record_ids:
                    self.engine.dedup_index.remove(record_id)
            self._erasures_applied = erasures[-1][0]
            self._write_erasures_applied()
            applied += len(record_ids)
        return applied

    def _read_erasures_applied(self) -> int:
        if self.directory is None:
            return 0
        try:
            return int((self.directory / self.ERASURES_FILE).read_text(encoding="ascii"))
        except (OSError, ValueError):
            return 0

    def _write_erasures_applied(self) -> None:
        if self.directory is None:
            return
        path = self.directory / self.ERASURES_FILE
        staging = private_file(path.with_name(path.name + ".tmp"))
        staging.write_text(str(self._erasures_applied), encoding="ascii")
        os.replace(staging, path)

    def govern_batch(self, batch_id: str) -> dict[str, int]:
        """Decide one batch and record ``BatchGoverned``; returns accepted/rejected counts.

        Raises ``ConcurrencyConflict`` on the batch's stream when another worker decided it first.
        """
        from ingest.governance.engine import GovernanceInput

        stream = batch_stream(batch_id)
        version = self.ledger.log.stream_version(stream)
        self.ledger.sync()
        batch = self.ledger.batch(batch_id)
        live = self.ledger.live_records(batch_id)
        entries: list[RecordEntry] = [entry for entry, _ in live]
        inputs = [
            GovernanceInput.from_record(entry.record_id, view.record or {}, entry.redactions)
            for entry, view in live
        ]
        assessment = self.engine.assess(inputs)
        for attempt in range(1, self.DECIDE_ATTEMPTS + 1):
            indexed = self.sync_index()
            result = self.engine.decide(assessment)
            accepted = result.accepted_record_ids
            governed = BatchGoverned(
                batch_id=batch_id, institution_id=batch.institution_id, **result.event_fields()
            )
            appends = [StreamAppend(stream, [governed], expected_version=version)]
            if accepted:
                extended: list[DomainEvent] = [
                    CorpusIndexExtended(batch_id=batch_id, record_ids=accepted)
                ]
                appends.append(StreamAppend(CORPUS_INDEX_STREAM, extended, indexed))
            try:
                self.ledger.append_many(appends)
            except ConcurrencyConflict as exc:
                if exc.stream_id != CORPUS_INDEX_STREAM:
                    raise
                log.info(
                    "batch %s: the accepted corpus moved (version %d -> %d), deciding again"
                    " (attempt %d)",
                    batch_id,
                    exc.expected,
                    exc.actual,
                    attempt,
                )
                continue
            break
        else:
            raise GovernanceError(
                f"batch {batch_id}: the accepted corpus kept moving for {self.DECIDE_ATTEMPTS}"
                " decisions; governance will retry it"
            )
        crash_point("governance.after_decision")
        self.sync_index()
        log.info("governed batch %s: %d accepted of %d", batch_id, len(accepted), len(entries))
        return {"accepted": len(accepted), "rejected": len(entries) - len(accepted)}
