"""The ledger's use cases: register institutions, record batches, answer queries, prove, replay.

:class:`CorpusLedger` writes only events (to the :class:`~ledger.eventlog.base.EventLog`) and reads
only projections (from the :class:`~ledger.projections.base.ProjectionStore`); after every write it
brings the projections up to date, so a caller reads its own writes. Chain effects (anchors, mints)
are not performed here but by the dispatchers in :mod:`ledger.dispatch`, driven by the outbox.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from ledger.audit import ProofBundle
from ledger.batching import RecordInput, build_batch
from ledger.errors import LedgerError
from ledger.eventlog.base import ConcurrencyConflict, EventLog, StreamAppend
from ledger.events import (
    DomainEvent,
    Envelope,
    InstitutionRegistered,
    RecordEntry,
    utcnow,
)
from ledger.ids import (
    BatchId,
    batch_stream,
    institution_stream,
    is_valid_institution_id,
    new_batch_id,
)
from ledger.merkle import StandardMerkleTree
from ledger.projections.balances import BalancesProjection
from ledger.projections.base import (
    Projection,
    ProjectionRunner,
    ProjectionStore,
)
from ledger.projections.batches import BatchesProjection
from ledger.projections.institutions import InstitutionsProjection
from ledger.projections.outbox import ATTEMPTS_TABLE, JobKind, JobStatus, OutboxProjection
from ledger.projections.training import TrainingRunsProjection
from ledger.replay import replay_projections
from ledger.views import (
    BatchView,
    InstitutionView,
    LedgerStatus,
    RecordView,
    ReplayReport,
    SubmittedBatch,
)

__all__ = [
    "BatchView",
    "CorpusLedger",
    "InstitutionView",
    "InvalidRequest",
    "LedgerStatus",
    "NotFound",
    "RecordView",
    "ReplayReport",
    "SubmittedBatch",
    "default_projections",
]


class NotFound(LedgerError):
    """The thing asked for (batch, record, institution) is not in the ledger."""


class InvalidRequest(LedgerError):
    """A request names something malformed or impossible (e.g. a bad institution id)."""


def default_projections() -> list[Projection]:
    """Every read model the ledger maintains."""
    return [
        InstitutionsProjection(),
        BatchesProjection(),
        OutboxProjection(),
        BalancesProjection(),
        TrainingRunsProjection(),
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
        if not is_valid_institution_id(institution_id):
            raise InvalidRequest(
                f"institution id {institution_id!r} must match [a-z0-9][a-z0-9_-]{{1,63}}"
            )
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
        from the outbox. Raises :class:`NotFound`, :class:`InvalidRequest` or ``EmptyBatch``.
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

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self.store.transaction() as conn:
            yield conn

    def institution(self, institution_id: str) -> InstitutionView:
        with self._read() as conn:
            row = conn.execute(
                "SELECT institution_id, name, account, active, registered_at, academic_tx_hash"
                " FROM institutions WHERE institution_id = ?",
                (institution_id,),
            ).fetchone()
        if row is None:
            raise NotFound(
                f"institution {institution_id!r} is not registered "
                "(see `byr institution list` / `byr institution add`)"
            )
        return InstitutionView(row[0], row[1], row[2], bool(row[3]), row[4], row[5])

    def institutions(self) -> list[InstitutionView]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT institution_id, name, account, active, registered_at, academic_tx_hash"
                " FROM institutions ORDER BY institution_id"
            ).fetchall()
        return [InstitutionView(r[0], r[1], r[2], bool(r[3]), r[4], r[5]) for r in rows]

    _BATCH_COLUMNS = (
        "batch_id, institution_id, source_name, merkle_root, metadata_hash, manifest,"
        " record_count, status, submitted_at, rejected_at_intake, policy_version, accepted_count,"
        " contribution_score, reward_wei, chain_id, contract_address, tx_hash, block_number,"
        " anchor_error, reward_tx_hash"
    )

    @staticmethod
    def _batch_view(row: Sequence[Any]) -> BatchView:
        values = list(row)
        values[5] = json.loads(values[5])
        values[9] = json.loads(values[9])
        return BatchView(*values)

    def batch(self, batch_id: str) -> BatchView:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {self._BATCH_COLUMNS} FROM batches WHERE batch_id = ?", (batch_id,)
            ).fetchone()
        if row is None:
            raise NotFound(f"batch {batch_id!r} is not in the ledger")
        return self._batch_view(row)

    def batches(self, *, institution_id: str | None = None) -> list[BatchView]:
        query = f"SELECT {self._BATCH_COLUMNS} FROM batches"
        params: tuple[Any, ...] = ()
        if institution_id is not None:
            query += " WHERE institution_id = ?"
            params = (institution_id,)
        with self._read() as conn:
            rows = conn.execute(query + " ORDER BY submitted_at, batch_id", params).fetchall()
        return [self._batch_view(r) for r in rows]

    _RECORD_COLUMNS = (
        "record_id, batch_id, idx, source_line, record, salt, record_hash, leaf, redactions,"
        " status, reasons, decision"
    )

    @staticmethod
    def _record_view(row: Sequence[Any]) -> RecordView:
        return RecordView(
            record_id=row[0],
            batch_id=row[1],
            index=row[2],
            source_line=row[3],
            record=json.loads(row[4]) if row[4] is not None else None,
            salt=row[5],
            record_hash=row[6],
            leaf=row[7],
            redactions=json.loads(row[8]),
            status=row[9],
            reasons=json.loads(row[10]) if row[10] else [],
            decision=json.loads(row[11]) if row[11] else None,
        )

    def record(self, record_id: str) -> RecordView:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {self._RECORD_COLUMNS} FROM records WHERE record_id = ?", (record_id,)
            ).fetchone()
        if row is None:
            raise NotFound(f"record {record_id!r} is not in the ledger")
        return self._record_view(row)

    def records(self, batch_id: str, *, status: str | None = None) -> list[RecordView]:
        query = f"SELECT {self._RECORD_COLUMNS} FROM records WHERE batch_id = ?"
        params: tuple[Any, ...] = (batch_id,)
        if status is not None:
            query += " AND status = ?"
            params += (status,)
        with self._read() as conn:
            rows = conn.execute(query + " ORDER BY idx", params).fetchall()
        return [self._record_view(r) for r in rows]

    def batch_entries(self, batch_id: str) -> list[RecordEntry]:
        """The stored record entries of a batch, as submitted (from the log, not the projection)."""
        from ledger.events import CorpusBatchSubmitted, decode

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
        their batches were governed, each with its batch."""
        self.sync()
        query = (
            f"SELECT {', '.join('r.' + c.strip() for c in self._RECORD_COLUMNS.split(','))}"
            " , r.batch_id FROM records r JOIN batches b ON b.batch_id = r.batch_id"
            " WHERE r.status = 'accepted' AND b.status IN ('anchored', 'rewarded')"
        )
        params: list[Any] = []
        for column, values in (
            ("json_extract(r.record, '$.discipline')", disciplines),
            ("json_extract(r.record, '$.language')", languages),
            ("b.institution_id", institutions),
        ):
            if values:
                query += f" AND {column} IN ({', '.join('?' for _ in values)})"
                params += list(values)
        query += " ORDER BY b.submitted_at, b.batch_id, r.idx"
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        with self._read() as conn:
            rows = conn.execute(query, params).fetchall()
        batches: dict[str, BatchView] = {}
        out = []
        for row in rows:
            record = self._record_view(row[:-1])
            if record.batch_id not in batches:
                batches[record.batch_id] = self.batch(record.batch_id)
            out.append((record, batches[record.batch_id]))
        return out

    def training_run(self, run_id: str) -> dict[str, Any]:
        """A training run as projected (status, hashes, adapter folder, anchor)."""
        with self._read() as conn:
            conn.row_factory = sqlite3.Row
            try:
                row = conn.execute(
                    "SELECT * FROM training_runs WHERE run_id = ?", (run_id,)
                ).fetchone()
            finally:
                conn.row_factory = None
        if row is None:
            raise NotFound(f"training run {run_id!r} is not in the ledger")
        return dict(row)

    def training_runs(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            conn.row_factory = sqlite3.Row
            try:
                rows = conn.execute("SELECT * FROM training_runs ORDER BY created_at").fetchall()
            finally:
                conn.row_factory = None
        return [dict(r) for r in rows]

    def corpus_index_since(
        self, version: int, *, limit: int = 1000
    ) -> list[tuple[int, list[tuple[str, dict[str, Any]]]]]:
        """Entries of the ``corpus-index`` stream after ``version``, oldest first, as projected:
        ``(version, [(record_id, canonical record), ...])``. Erased records are left out (their
        text is gone); ``limit`` bounds the entries returned."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT version, record_ids FROM corpus_index WHERE version > ?"
                " ORDER BY version LIMIT ?",
                (version, limit),
            ).fetchall()
            out: list[tuple[int, list[tuple[str, dict[str, Any]]]]] = []
            for entry_version, record_ids in rows:
                ids = json.loads(record_ids)
                marks = ",".join("?" * len(ids))
                stored = dict(
                    conn.execute(
                        f"SELECT record_id, record FROM records WHERE record_id IN ({marks})"
                        " AND record IS NOT NULL",
                        ids,
                    ).fetchall()
                    if ids
                    else []
                )
                out.append(
                    (entry_version, [(i, json.loads(stored[i])) for i in ids if i in stored])
                )
        return out

    def pending_jobs(self, kind: JobKind) -> list[str]:
        """Batch ids with an open job of ``kind``, oldest first."""
        self.sync()
        with self._read() as conn:
            rows = conn.execute(
                "SELECT batch_id FROM outbox WHERE kind = ? AND status = ?"
                " ORDER BY opened_at_position",
                (kind.value, JobStatus.PENDING.value),
            ).fetchall()
        return [r[0] for r in rows]

    def note_attempt(self, kind: JobKind, batch_id: str, *, error: str | None) -> int:
        """Count a delivery attempt of an outbox job (operational data, not replayed)."""
        with self.store.transaction() as conn:
            conn.execute(
                f"INSERT INTO {ATTEMPTS_TABLE} (job_id, attempts, last_error, last_attempt_at)"
                " VALUES (?, 1, ?, ?) ON CONFLICT (job_id) DO UPDATE SET"
                " attempts = attempts + 1, last_error = excluded.last_error,"
                " last_attempt_at = excluded.last_attempt_at",
                (f"{kind.value}:{batch_id}", error, self.clock().isoformat()),
            )
            row = conn.execute(
                f"SELECT attempts FROM {ATTEMPTS_TABLE} WHERE job_id = ?",
                (f"{kind.value}:{batch_id}",),
            ).fetchone()
        return int(row[0])

    def balances(self) -> list[dict[str, Any]]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT account, institution_id, amount_wei, rewards FROM balances"
                " ORDER BY institution_id, account"
            ).fetchall()
        return [
            {"account": r[0], "institution_id": r[1], "amount_wei": r[2], "rewards": r[3]}
            for r in rows
        ]

    def status(self) -> LedgerStatus:
        self.sync()
        with self._read() as conn:

            def grouped(query: str) -> dict[str, int]:
                return {str(k): int(v) for k, v in conn.execute(query).fetchall()}

            institutions = conn.execute("SELECT COUNT(*) FROM institutions").fetchone()[0]
            total = sum(int(r[0]) for r in conn.execute("SELECT amount_wei FROM balances"))
            status = LedgerStatus(
                head_position=self.log.head_position(),
                institutions=int(institutions),
                batches_by_status=grouped("SELECT status, COUNT(*) FROM batches GROUP BY status"),
                records_by_status=grouped("SELECT status, COUNT(*) FROM records GROUP BY status"),
                pending_jobs=grouped(
                    "SELECT kind, COUNT(*) FROM outbox WHERE status = 'pending' GROUP BY kind"
                ),
                failed_jobs=grouped(
                    "SELECT kind, COUNT(*) FROM outbox WHERE status = 'failed' GROUP BY kind"
                ),
                rewarded_wei_total=str(total),
                training_runs_by_status=grouped(
                    "SELECT status, COUNT(*) FROM training_runs GROUP BY status"
                ),
                projection_positions=self.runner.positions(),
            )
        return status

    # ------------------------------------------------------------------ replay

    def replay(self, *, replace: bool = False) -> ReplayReport:
        """Rebuild every projection from the log and compare with the live state; see
        :func:`ledger.replay.replay_projections`."""
        return replay_projections(self.log, self.runner, self.store, replace=replace)
