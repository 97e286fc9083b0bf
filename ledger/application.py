"""The ledger's use cases: register institutions, record batches, answer queries, prove, replay.

:class:`CorpusLedger` writes only events (to the :class:`~ledger.eventlog.base.EventLog`) and reads
only projections (from the :class:`~ledger.projections.base.ProjectionStore`), through the queries
each projection keeps next to its tables. After every write it brings the projections up to date,
so a caller reads its own writes; a read never catches up on its own, so a caller that must see
what other processes appended calls :meth:`CorpusLedger.sync` first. Chain effects (anchors, mints)
are not performed here but by the job handlers in :mod:`ledger.chain_jobs`, driven by the outbox.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
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
    RecordErased,
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
    RecordStatus,
    count_batches_by_status,
    count_records_by_status,
    get_batch,
    get_erasure,
    get_record,
    list_accepted_feed,
    list_batches,
    list_corpus_index_since,
    list_erasures_since,
    list_records,
)
from ledger.projections.evaluations import (
    EvaluationsProjection,
    EvaluationView,
    get_evaluation,
    list_evaluations,
)
from ledger.projections.feed import (
    EntryKind,
    FeedCursor,
    FeedFilter,
    FeedItem,
    FeedPage,
    FeedProjection,
    entry_cursors,
    feed_position,
    list_feed,
)
from ledger.projections.institutions import (
    InstitutionsProjection,
    count_institutions,
    get_institution,
    list_institutions,
)
from ledger.projections.keys import ApiKeysProjection, ApiKeyView, get_api_key, list_api_keys
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
    get_training_run_for_request,
    list_training_requests,
    list_training_runs,
)
from ledger.recordstore import MemoryRecordStore, RecordBody, RecordStore, SqliteRecordStore
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
    "ErasedRecord",
    "Erasure",
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


class ErasedRecord(NotFound):
    """The record was erased: its text, salt and hash are gone, so no bundle can be built."""

    def __init__(self, record_id: str, erased_at: str) -> None:
        super().__init__(
            f"record {record_id!r} was erased at {erased_at}; its text and salt are gone and only "
            "its salted leaf remains in the batch tree and on chain"
        )
        self.record_id = record_id
        self.erased_at = erased_at


@dataclass(frozen=True, slots=True)
class Erasure:
    """What erasing one record did."""

    record_id: str
    batch_id: str
    erased_at: str
    requested_by: str
    key_id: str | None
    """The API key of the request that erased it (``None``: on the server's home)."""
    reason: str
    already_erased: bool
    """The record had been erased before; nothing was appended (the stores were swept again)."""
    body_removed: bool
    """A body (text, salt, unsalted hash) was deleted from the record store now."""
    legacy_text_in_log: bool
    """The record was submitted before the record store: its text also sits in the old log until
    the home is re-sealed (``byr reseal``)."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def default_projections() -> list[Projection]:
    """Every read model the ledger maintains."""
    return [
        InstitutionsProjection(),
        BatchesProjection(),
        OutboxProjection(),
        BalancesProjection(),
        TrainingRunsProjection(),
        TrainingRequestsProjection(),
        ApiKeysProjection(),
        FeedProjection(),
        EvaluationsProjection(),
    ]


class CorpusLedger:
    """Use cases over one event log and one state database."""

    APPEND_RETRIES = 5

    def __init__(
        self,
        *,
        log: EventLog,
        store: ProjectionStore,
        records: RecordStore | None = None,
        projections: Sequence[Projection] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """``records`` defaults to ``records.db`` next to the state database (in memory when
        the state database is)."""
        self.log = log
        self.store = store
        if records is None:
            in_memory = str(store.path) in ("", ":memory:")
            records = (
                MemoryRecordStore()
                if in_memory
                else SqliteRecordStore(store.path.with_name("records.db"))
            )
        self.bodies = records
        self._forgotten_through = 0
        """The last erasure (in this state database's order) whose local body copy is gone."""
        self.clock = clock
        self.runner = ProjectionRunner(
            log=log, store=store, projections=list(projections or default_projections())
        )

    # ------------------------------------------------------------------ writing

    def sync(self) -> int:
        """Bring every projection up to the log's head, and drop this process's copies of the
        bodies of records erased meanwhile (by any process); returns the events read."""
        events = self.runner.catch_up().events_read
        while erased := self.erasures_since(self._forgotten_through, limit=1000):
            self.bodies.forget_local([record_id for _, record_id in erased])
            self._forgotten_through = erased[-1][0]
        return events

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
        submitted_by: str | None = None,
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
            submitted_by=submitted_by,
            **kwargs,
        )
        # The bodies go first: whoever reads the event finds them. A failed append leaves no body.
        self.bodies.put_many(built.bodies)
        try:
            stored = self.append(batch_stream(batch_id), [built.event], expected_version=0)
        except BaseException:
            self.bodies.erase([b.record_id for b in built.bodies])
            raise
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
        """A record as projected, with its body from the record store (``None`` once erased)."""
        with self._read() as conn:
            view = get_record(conn, record_id)
        if view is None:
            raise NotFound(f"record {record_id!r} is not in the ledger")
        return self._with_bodies([view])[0]

    def records(self, batch_id: str, *, status: str | None = None) -> list[RecordView]:
        with self._read() as conn:
            views = list_records(conn, batch_id, status=status)
        return self._with_bodies(views)

    def _with_bodies(self, views: Sequence[RecordView]) -> list[RecordView]:
        """``views`` with text, salt and unsalted hash joined from the record store; erased
        records keep ``None``. A body missing for a live record is looked for again after the
        store catches up (a backend with local copies), then in a schema-1 log entry."""
        wanted = [v.record_id for v in views if v.status != RecordStatus.ERASED]
        bodies = self.bodies.get_many(wanted)
        missing = [i for i in wanted if i not in bodies]
        if missing:
            self.bodies.refresh()
            bodies.update(self.bodies.get_many(missing))
            missing = [i for i in missing if i not in bodies]
        if missing:
            bodies.update(self._legacy_bodies(views, set(missing)))
            missing = [i for i in missing if i not in bodies]
        if missing:
            raise LedgerError(
                f"the record store has no body for {len(missing)} live record(s), e.g. "
                f"{missing[0]}: it was deleted outside `byr erase`, or this process's copy of a "
                "shared store is behind"
            )
        out = []
        for view in views:
            body = bodies.get(view.record_id)
            if body is not None:
                view = dataclasses.replace(
                    view, record=body.record, salt=body.salt, record_hash=body.record_hash
                )
            out.append(view)
        return out

    def _legacy_bodies(
        self, views: Sequence[RecordView], missing: set[str]
    ) -> dict[str, RecordBody]:
        found: dict[str, RecordBody] = {}
        for batch_id in dict.fromkeys(v.batch_id for v in views if v.record_id in missing):
            for entry in self.batch_entries(batch_id):
                if entry.record_id in missing and entry.legacy is not None:
                    found[entry.record_id] = RecordBody(
                        record_id=entry.record_id,
                        batch_id=batch_id,
                        record=dict(entry.legacy.record),
                        salt=entry.legacy.salt,
                        record_hash=entry.legacy.record_hash,
                    )
        return found

    def live_records(self, batch_id: str) -> list[tuple[RecordEntry, RecordView]]:
        """The batch's records that are not erased, in batch order, each with its log entry and
        its view (body included): what governance reads."""
        entries = {e.record_id: e for e in self.batch_entries(batch_id)}
        return [
            (entries[view.record_id], view)
            for view in self.records(batch_id)
            if view.status != RecordStatus.ERASED
        ]

    def batch_entries(self, batch_id: str) -> list[RecordEntry]:
        """The stored record entries of a batch, as submitted (from the log, not the projection)."""
        for envelope in self.log.read_stream(batch_stream(batch_id)):
            event = decode(envelope)
            if isinstance(event, CorpusBatchSubmitted):
                return list(event.records)
        raise NotFound(f"batch {batch_id!r} is not in the ledger")

    def batch_tree(self, batch_id: str) -> StandardMerkleTree:
        """The batch's Merkle tree, rebuilt from its records' leaves as the log holds them (no
        text or salt is needed, so erased records still count)."""
        entries = sorted(self.batch_entries(batch_id), key=lambda e: e.index)
        tree = StandardMerkleTree.from_leaves([e.leaf for e in entries])
        root = self.batch(batch_id).merkle_root
        if tree.root_hex != root:
            raise LedgerError(f"batch {batch_id}: rebuilt root {tree.root_hex} != recorded {root}")
        return tree

    def proof(self, record_id: str) -> ProofBundle:
        """The record's proof bundle, with the anchor transaction once the batch is anchored."""
        record = self.record(record_id)
        if record.record is None or record.salt is None:
            raise ErasedRecord(record_id, record.erased_at or "an unknown time")
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
            feed = list_accepted_feed(
                conn,
                disciplines=disciplines,
                languages=languages,
                institutions=institutions,
                limit=limit,
            )
        views = self._with_bodies([record for record, _ in feed])
        return [(view, batch) for view, (_, batch) in zip(views, feed, strict=True)]

    def feed_page(self, *, after: FeedCursor, limit: int, where: FeedFilter) -> FeedPage:
        """A page of the accepted-corpus feed after ``after`` (see :mod:`ledger.projections.feed`):
        live records with their canonical fields, and tombstones of erased ones. A record erased
        while the page is read is left out (its tombstone follows on a later page)."""
        with self._read() as conn:
            rows = list_feed(conn, after=after, limit=limit + 1, where=where)
            projected = feed_position(conn)
            entries, following = rows[:limit], (rows[limit] if len(rows) > limit else None)
            views = [
                view
                for e in entries
                if e.kind is EntryKind.RECORD and (view := get_record(conn, e.record_id))
            ]
        texts = self._feed_texts(views)
        cursors = entry_cursors(entries, following=following)
        items = [
            FeedItem(entry=e, cursor=c, record=texts.get(e.record_id))
            for e, c in zip(entries, cursors, strict=True)
            if e.kind is EntryKind.ERASED or e.record_id in texts
        ]
        if following is not None:
            next_cursor = cursors[-1]
        else:  # at the head: whatever the feed adds later comes after its projected position
            next_cursor = FeedCursor(projected) if projected >= after.position else after
        return FeedPage(
            items=items, next_cursor=next_cursor, at_head=following is None, feed_position=projected
        )

    def _feed_texts(self, views: Sequence[RecordView]) -> dict[str, dict[str, Any]]:
        """Canonical fields of ``views`` by record id; a record whose body went because it was
        erased after the page was read is left out."""
        found = self.bodies.get_many([v.record_id for v in views])
        bodies = {record_id: body.record for record_id, body in found.items()}
        missing = [v for v in views if v.record_id not in bodies]
        if missing:
            erased = {v.record_id for v in missing if self.erasure(v.record_id) is not None}
            for view in self._with_bodies([v for v in missing if v.record_id not in erased]):
                if view.record is not None:  # _with_bodies raises for a live one without a body
                    bodies[view.record_id] = view.record
        return bodies

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

    def training_requests(self) -> list[TrainingRequestView]:
        """Every training request, oldest first."""
        with self._read() as conn:
            return list_training_requests(conn)

    def training_run_for_request(self, request_id: str) -> TrainingRunView | None:
        """The run created for training request ``request_id``; ``None`` before it exists."""
        with self._read() as conn:
            return get_training_run_for_request(conn, request_id)

    def evaluation(self, report_id: str) -> EvaluationView:
        """An evaluation as recorded (``EvaluationCompleted``): ids, hashes and counts."""
        with self._read() as conn:
            view = get_evaluation(conn, report_id)
        if view is None:
            raise NotFound(f"evaluation {report_id!r} is not in the ledger")
        return view

    def evaluations(self) -> list[EvaluationView]:
        """Every recorded evaluation, oldest first."""
        with self._read() as conn:
            return list_evaluations(conn)

    def corpus_index_since(
        self, version: int, *, limit: int = 1000
    ) -> list[tuple[int, list[tuple[str, dict[str, Any]]]]]:
        """Entries of the ``corpus-index`` stream after ``version``, oldest first, as projected:
        ``(version, [(record_id, canonical record), ...])``. Erased records are left out (their
        text is gone); ``limit`` bounds the entries returned."""
        with self._read() as conn:
            entries = list_corpus_index_since(conn, version, limit=limit)
            views = [
                view
                for _, ids in entries
                for record_id in ids
                if (view := get_record(conn, record_id)) is not None
            ]
        bodies: dict[str, dict[str, Any]] = {
            v.record_id: v.record for v in self._with_bodies(views) if v.record is not None
        }
        return [
            (entry_version, [(i, bodies[i]) for i in ids if i in bodies])
            for entry_version, ids in entries
        ]

    def erasures_since(self, seq: int, *, limit: int = 1000) -> list[tuple[int, str]]:
        """Erasures this process's state database applied after ``seq``, oldest first:
        ``(seq, record_id)``. A process that keeps copies of record text purges them following
        this (see ``GovernanceService.sync_index``)."""
        with self._read() as conn:
            return list_erasures_since(conn, seq, limit=limit)

    def erasure(self, record_id: str) -> dict[str, Any] | None:
        with self._read() as conn:
            return get_erasure(conn, record_id)

    # ------------------------------------------------------------------ erasing

    def erase(
        self, record_id: str, *, reason: str, requested_by: str, key_id: str | None = None
    ) -> Erasure:
        """Erase one record: append ``RecordErased`` (who and why) to its batch's stream, then
        delete its body from the record store.

        Idempotent: a record already erased appends nothing, and its body is deleted again in
        case an earlier erasure stopped between the two steps. Raises :class:`NotFound` for a
        record the ledger does not know.
        """
        self.sync()
        view = self.record(record_id)
        legacy = any(
            e.record_id == record_id and e.legacy is not None
            for e in self.batch_entries(view.batch_id)
        )
        already = view.status == RecordStatus.ERASED
        had_body = bool(self.bodies.get_many([record_id]))
        if not already:
            self.append(
                batch_stream(view.batch_id),
                [
                    RecordErased(
                        batch_id=view.batch_id,
                        record_id=record_id,
                        reason=reason,
                        requested_by=requested_by,
                        key_id=key_id,
                    )
                ],
            )
        # Appending made this process's sync forget its copy; erasing also reaches the copies
        # the store keeps elsewhere (a Kafka topic), and sweeps again after an interrupted erasure.
        removed = self.bodies.erase([record_id])
        erasure = self.erasure(record_id)
        assert erasure is not None  # appended above, or found erased
        return Erasure(
            record_id=record_id,
            batch_id=view.batch_id,
            erased_at=erasure["erased_at"],
            requested_by=erasure["requested_by"],
            key_id=erasure["key_id"],
            reason=erasure["reason"],
            already_erased=already,
            body_removed=had_body or bool(removed),
            legacy_text_in_log=legacy,
        )

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

    def api_key(self, key_id: str) -> ApiKeyView | None:
        """The API key ``key_id`` as projected (revoked ones included); ``None`` when unknown."""
        with self._read() as conn:
            return get_api_key(conn, key_id)

    def api_keys(self) -> list[ApiKeyView]:
        with self._read() as conn:
            return list_api_keys(conn)

    def is_behind(self) -> bool:
        """Whether the log holds events this process's projections have not applied yet."""
        positions = self.runner.positions()
        return bool(positions) and self.log.head_position() > min(positions.values())

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
