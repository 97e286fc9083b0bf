"""The ledger's use cases: register institutions, record batches, answer queries, prove, replay.

:class:`CorpusLedger` writes only events (to the :class:`~ledger.eventlog.base.EventLog`) and reads
only projections (from the :class:`~ledger.projections.base.ProjectionStore`), through the queries
each projection keeps next to its tables. After every write it brings the projections up to date,
so a caller reads its own writes; a read never catches up on its own, so a caller that must see
what other processes appended calls :meth:`CorpusLedger.sync` first. Chain effects (anchors, mints)
are not performed here but by the job handlers in :mod:`ledger.chain_jobs`, driven by the outbox.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from ledger.audit import ProofBundle
from ledger.batching import RecordInput, build_batch
from ledger.errors import InvalidRequest, LedgerError, NotFound
from ledger.eventlog.base import ConcurrencyConflict, EventLog, StreamAppend
from ledger.events import (
    CorpusBatchSubmitted,
    DomainEvent,
    Envelope,
    InstitutionRegistered,
    RecordEntry,
    decode,
    utcnow,
)
from ledger.ids import (
    BatchId,
    batch_stream,
    institution_stream,
    new_batch_id,
    require_institution_id,
)
from ledger.merkle import StandardMerkleTree
from ledger.projections.balances import BalancesProjection, list_balances, total_rewarded_wei
from ledger.projections.base import (
    Projection,
    ProjectionRunner,
    ProjectionStore,
)
from ledger.projections.batches import (
    BatchesProjection,
    count_batches_by_status,
    count_records_by_status,
    get_batch,
    get_record,
    list_accepted_feed,
    list_batches,
    list_corpus_index_since,
    list_records,
)
from ledger.projections.institutions import (
    InstitutionsProjection,
    count_institutions,
    get_institution,
    list_institutions,
)
from ledger.projections.outbox import (
    JobKind,
    JobStatus,
    OutboxProjection,
    count_jobs_by_kind,
    list_jobs,
    record_attempt,
)
from ledger.projections.training import (
    TrainingRequestsProjection,
    TrainingRunsProjection,
    count_training_runs_by_status,
    get_training_request,
    get_training_run,
    list_training_runs,
)
from ledger.replay import replay_projections
from ledger.views import (
    BalanceView,
    BatchView,
    InstitutionView,
    LedgerStatus,
    RecordView,
    ReplayReport,
    SubmittedBatch,
    TrainingRequestView,
    TrainingRunView,
)

__all__ = [
    "BalanceView",
    "BatchView",
    "CorpusLedger",
    "InstitutionView",
    "InvalidRequest",
    "LedgerStatus",
    "NotFound",
    "RecordView",
    "ReplayReport",
    "SubmittedBatch",
    "TrainingRequestView",
    "TrainingRunView",
    "default_projections",
]


def default_projections() -> list[Projection]:
    """Every read model the ledger maintains."""
    return [
        InstitutionsProjection(),
        BatchesProjection(),
        OutboxProjection(),
        BalancesProjection(),
        TrainingRunsProjection(),
        TrainingRequestsProjection(),
    ]


class CorpusLedger:
    """Use cases over one event log and one state database."""

    APPEND_RETRIES = 5

    def __init__(
        self,
        *,
        log: EventLog,
        store: ProjectionStore,
        projections: Sequence[Projection] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.log = log
        self.store = store
        self.clock = clock
        self.runner = ProjectionRunner(
            log=log, store=store, projections=list(projections or default_projections())
        )

    # ------------------------------------------------------------------ writing

    def sync(self) -> int:
        """Bring every projection up to the log's head; returns the events read."""
        return self.runner.catch_up().events_read

    def append(
        self,
        stream_id: str,
        events: Sequence[DomainEvent],
        *,
        expected_version: int | None = None,
    ) -> list[Envelope]:
        """Append ``events`` to ``stream_id`` and update the projections.

        With ``expected_version`` the append is conditional (raises ``ConcurrencyConflict``);
        without it, the events go after whatever the stream holds, retrying on a race.
        """
        if expected_version is not None:
            stored = self.log.append(stream_id, events, expected_version=expected_version)
        else:
            for attempt in range(self.APPEND_RETRIES):
                try:
                    version = self.log.stream_version(stream_id)
                    stored = self.log.append(stream_id, events, expected_version=version)
                    break
                except ConcurrencyConflict:
                    if attempt == self.APPEND_RETRIES - 1:
                        raise
        self.sync()
        return stored

    def append_many(self, appends: Sequence[StreamAppend]) -> list[Envelope]:
        """Append to several streams at once, all or nothing, each conditional on its expected
        version (raises ``ConcurrencyConflict`` naming the stream that moved); then update the
        projections."""
        stored = self.log.append_many(appends)
        self.sync()
        return stored

    def register_institution(
        self,
        *,
        institution_id: str,
        name: str,
        account: str,
        academic_tx_hash: str | None = None,
    ) -> InstitutionView:
        """Record an institution (already registered on the academic chain by the caller)."""
        require_institution_id(institution_id)
        self.append(
            institution_stream(institution_id),
            [
                InstitutionRegistered(
                    institution_id=institution_id,
                    name=name,
                    account=account,
                    academic_tx_hash=academic_tx_hash,
                )
            ],
        )
        return self.institution(institution_id)

    def submit_batch(
        self,
        *,
        institution_id: str,
        source_name: str,
        records: Sequence[RecordInput],
        rejected_at_intake: Sequence[dict[str, Any]] = (),
        policy_version: str,
        batch_id: BatchId | None = None,
        salt: Callable[[], bytes] | None = None,
    ) -> SubmittedBatch:
        """Salt and hash ``records`` into a Merkle batch and record ``CorpusBatchSubmitted``.

        The institution must be registered and active. Governance, anchoring and rewards follow
        from the outbox. Raises :class:`NotFound`, :class:`InvalidRequest` or
        :class:`~ledger.batching.NoValidRecords`.
        """
        institution = self.institution(institution_id)
        if not institution.active:
            raise InvalidRequest(f"institution {institution_id!r} is not active")
        batch_id = batch_id or new_batch_id()
        kwargs: dict[str, Any] = {"salt": salt} if salt is not None else {}
        built = build_batch(
            batch_id=batch_id,
            institution_id=institution_id,
            source_name=Path(source_name).name,
            records=records,
            rejected_at_intake=rejected_at_intake,
            policy_version=policy_version,
            submitted_at=self.clock(),
            **kwargs,
        )
        stored = self.append(batch_stream(batch_id), [built.event], expected_version=0)
        self.sync()
        return SubmittedBatch(
            batch_id=batch_id,
            merkle_root=built.event.merkle_root,
            metadata_hash=built.event.metadata_hash,
            record_ids=[r.record_id for r in built.event.records],
            position=stored[-1].position or 0,
        )

    # ------------------------------------------------------------------ reading
    # Reads query the projections as they stand: none of them catches up (see ``sync``).

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self.store.transaction() as conn:
            yield conn

    def institution(self, institution_id: str) -> InstitutionView:
        with self._read() as conn:
            view = get_institution(conn, institution_id)
        if view is None:
            raise NotFound(
                "the institution is not registered "
                "(see `byr institution list` / `byr institution add`)"
            )
        return view

    def institutions(self) -> list[InstitutionView]:
        with self._read() as conn:
            return list_institutions(conn)

    def batch(self, batch_id: str) -> BatchView:
        with self._read() as conn:
            view = get_batch(conn, batch_id)
        if view is None:
            raise NotFound(f"batch {batch_id!r} is not in the ledger")
        return view

    def batches(self, *, institution_id: str | None = None) -> list[BatchView]:
        with self._read() as conn:
            return list_batches(conn, institution_id=institution_id)

    def record(self, record_id: str) -> RecordView:
        with self._read() as conn:
            view = get_record(conn, record_id)
        if view is None:
            raise NotFound(f"record {record_id!r} is not in the ledger")
        return view

    def records(self, batch_id: str, *, status: str | None = None) -> list[RecordView]:
        with self._read() as conn:
            return list_records(conn, batch_id, status=status)

    def batch_entries(self, batch_id: str) -> list[RecordEntry]:
        """The stored record entries of a batch, as submitted (from the log, not the projection)."""
        for envelope in self.log.read_stream(batch_stream(batch_id)):
            event = decode(envelope)
            if isinstance(event, CorpusBatchSubmitted):
                return list(event.records)
        raise NotFound(f"batch {batch_id!r} is not in the ledger")

    def batch_tree(self, batch_id: str) -> StandardMerkleTree:
        """The batch's Merkle tree, rebuilt from its records' hashes and salts (leaves only are
        needed, so erased records still count)."""
        records = self.records(batch_id)
        if not records:
            raise NotFound(f"batch {batch_id!r} is not in the ledger")
        entries = self.batch_entries(batch_id)
        tree = StandardMerkleTree.of([(e.record_hash, e.salt) for e in entries])
        root = self.batch(batch_id).merkle_root
        if tree.root_hex != root:
            raise LedgerError(f"batch {batch_id}: rebuilt root {tree.root_hex} != recorded {root}")
        return tree

    def proof(self, record_id: str) -> ProofBundle:
        """The record's proof bundle, with the anchor transaction once the batch is anchored."""
        record = self.record(record_id)
        if record.record is None or record.salt is None:
            raise NotFound(f"record {record_id!r} was erased; only its leaf remains on chain")
        batch = self.batch(record.batch_id)
        tree = self.batch_tree(record.batch_id)
        return ProofBundle.for_record(
            tree=tree,
            index=record.index,
            record=record.record,
            salt=bytes.fromhex(record.salt[2:]),
            batch_id=record.batch_id,
            metadata_hash=bytes.fromhex(batch.metadata_hash[2:]),
            chain_id=batch.chain_id,
            contract_address=batch.contract_address,
            tx_hash=batch.tx_hash,
            block_number=batch.block_number,
        )

    def accepted_feed(
        self,
        *,
        disciplines: Sequence[str] | None = None,
        languages: Sequence[str] | None = None,
        institutions: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[tuple[RecordView, BatchView]]:
        """The accepted-corpus feed: accepted, not erased records of anchored batches, in the order
        their batches were submitted, each with its batch."""
        with self._read() as conn:
            return list_accepted_feed(
                conn,
                disciplines=disciplines,
                languages=languages,
                institutions=institutions,
                limit=limit,
            )

    def training_run(self, run_id: str) -> TrainingRunView:
        """A training run as projected (status, hashes, adapter folder, anchor)."""
        with self._read() as conn:
            view = get_training_run(conn, run_id)
        if view is None:
            raise NotFound(f"training run {run_id!r} is not in the ledger")
        return view

    def training_runs(self) -> list[TrainingRunView]:
        with self._read() as conn:
            return list_training_runs(conn)

    def training_request(self, request_id: str) -> TrainingRequestView:
        """A training request as recorded (``TrainingRunRequested``), done or not."""
        with self._read() as conn:
            view = get_training_request(conn, request_id)
        if view is None:
            raise NotFound(f"training request {request_id!r} is not in the ledger")
        return view

    def corpus_index_since(
        self, version: int, *, limit: int = 1000
    ) -> list[tuple[int, list[tuple[str, dict[str, Any]]]]]:
        """Entries of the ``corpus-index`` stream after ``version``, oldest first, as projected:
        ``(version, [(record_id, canonical record), ...])``. Erased records are left out (their
        text is gone); ``limit`` bounds the entries returned."""
        with self._read() as conn:
            return list_corpus_index_since(conn, version, limit=limit)

    def pending_jobs(self, kind: JobKind) -> list[str]:
        """Keys (batch, request or run ids) of the open jobs of ``kind``, oldest first."""
        with self._read() as conn:
            return list_jobs(conn, kind, status=JobStatus.PENDING)

    def note_attempt(self, kind: JobKind, batch_id: str, *, error: str | None) -> int:
        """Count a delivery attempt of an outbox job (operational data, not replayed)."""
        with self.store.transaction() as conn:
            return record_attempt(
                conn, kind, batch_id, error=error, attempted_at=self.clock().isoformat()
            )

    def balances(self) -> list[BalanceView]:
        with self._read() as conn:
            return list_balances(conn)

    def status(self) -> LedgerStatus:
        with self._read() as conn:
            return LedgerStatus(
                head_position=self.log.head_position(),
                institutions=count_institutions(conn),
                batches_by_status=count_batches_by_status(conn),
                records_by_status=count_records_by_status(conn),
                pending_jobs=count_jobs_by_kind(conn, JobStatus.PENDING),
                failed_jobs=count_jobs_by_kind(conn, JobStatus.FAILED),
                rewarded_wei_total=str(total_rewarded_wei(conn)),
                training_runs_by_status=count_training_runs_by_status(conn),
                projection_positions=self.runner.positions(),
            )

    # ------------------------------------------------------------------ replay

    def replay(self, *, replace: bool = False) -> ReplayReport:
        """Rebuild every projection from the log and compare with the live state; see
        :func:`ledger.replay.replay_projections`."""
        return replay_projections(self.log, self.runner, self.store, replace=replace)
