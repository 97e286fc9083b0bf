"""Outbox jobs derived from the log: governance, anchoring and minting still to be done.

A job opens when the event that calls for it is projected and closes when the event that records
its outcome is projected, so the outbox can never disagree with the log (and is rebuilt by replay).
Delivery attempts are operational data kept in a separate, non-replayed table.
"""

from __future__ import annotations

import sqlite3
from enum import StrEnum

from ledger.events import (
    BatchAnchored,
    BatchAnchorFailed,
    BatchGoverned,
    ContributionRewarded,
    CorpusBatchSubmitted,
    Envelope,
    TrainingRunAnchored,
    TrainingRunCompleted,
    TrainingRunCreated,
    TrainingRunFailed,
    TrainingRunRequested,
)
from ledger.projections.base import Projection, on

ATTEMPTS_TABLE = "outbox_attempts"


class JobKind(StrEnum):
    GOVERN = "govern"
    ANCHOR = "anchor"
    REWARD = "reward"
    TRAIN = "train"
    """Keyed by request id: a requested training run not yet completed or failed."""
    ANCHOR_RUN = "anchor_run"
    """Keyed by run id: a completed training run not yet anchored."""


class JobStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


def job_id(kind: JobKind, batch_id: str) -> str:
    return f"{kind.value}:{batch_id}"


class OutboxProjection(Projection):
    name = "outbox"
    schema = f"""
    CREATE TABLE IF NOT EXISTS outbox (
        job_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        batch_id TEXT NOT NULL,
        status TEXT NOT NULL,
        opened_at_position INTEGER NOT NULL,
        closed_at_position INTEGER
    );
    CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (kind, status, opened_at_position);
    CREATE TABLE IF NOT EXISTS outbox_runs (
        run_id TEXT PRIMARY KEY,
        request_id TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS outbox_rewards (
        batch_id TEXT PRIMARY KEY,
        reward_wei TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS {ATTEMPTS_TABLE} (
        job_id TEXT PRIMARY KEY,
        attempts INTEGER NOT NULL,
        last_error TEXT,
        last_attempt_at TEXT
    )
    """

    @staticmethod
    def _open(conn: sqlite3.Connection, kind: JobKind, batch_id: str, position: int) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO outbox (job_id, kind, batch_id, status, opened_at_position)"
            " VALUES (?, ?, ?, ?, ?)",
            (job_id(kind, batch_id), kind.value, batch_id, JobStatus.PENDING.value, position),
        )

    @staticmethod
    def _close(
        conn: sqlite3.Connection, kind: JobKind, batch_id: str, position: int, status: JobStatus
    ) -> None:
        conn.execute(
            "UPDATE outbox SET status = ?, closed_at_position = ? WHERE job_id = ?",
            (status.value, position, job_id(kind, batch_id)),
        )

    @on(CorpusBatchSubmitted)
    def submitted(
        self, event: CorpusBatchSubmitted, envelope: Envelope, conn: sqlite3.Connection
    ) -> None:
        self._open(conn, JobKind.GOVERN, event.batch_id, envelope.position or 0)

    @on(BatchGoverned)
    def governed(self, event: BatchGoverned, envelope: Envelope, conn: sqlite3.Connection) -> None:
        position = envelope.position or 0
        self._close(conn, JobKind.GOVERN, event.batch_id, position, JobStatus.DONE)
        self._open(conn, JobKind.ANCHOR, event.batch_id, position)
        conn.execute(
            "INSERT OR REPLACE INTO outbox_rewards (batch_id, reward_wei) VALUES (?, ?)",
            (event.batch_id, event.reward_wei),
        )

    @on(BatchAnchored)
    def anchored(self, event: BatchAnchored, envelope: Envelope, conn: sqlite3.Connection) -> None:
        position = envelope.position or 0
        self._close(conn, JobKind.ANCHOR, event.batch_id, position, JobStatus.DONE)
        reward = conn.execute(
            "SELECT reward_wei FROM outbox_rewards WHERE batch_id = ?", (event.batch_id,)
        ).fetchone()
        if reward is not None and int(reward[0]) > 0:
            self._open(conn, JobKind.REWARD, event.batch_id, position)

    @on(BatchAnchorFailed)
    def anchor_failed(
        self, event: BatchAnchorFailed, envelope: Envelope, conn: sqlite3.Connection
    ) -> None:
        self._close(conn, JobKind.ANCHOR, event.batch_id, envelope.position or 0, JobStatus.FAILED)

    @on(ContributionRewarded)
    def rewarded(
        self, event: ContributionRewarded, envelope: Envelope, conn: sqlite3.Connection
    ) -> None:
        self._close(conn, JobKind.REWARD, event.batch_id, envelope.position or 0, JobStatus.DONE)

    # -- training: a request opens a TRAIN job closed by the run it created completing or failing
    @on(TrainingRunRequested)
    def training_requested(
        self, event: TrainingRunRequested, envelope: Envelope, conn: sqlite3.Connection
    ) -> None:
        self._open(conn, JobKind.TRAIN, event.request_id, envelope.position or 0)

    @on(TrainingRunCreated)
    def training_created(
        self, event: TrainingRunCreated, envelope: Envelope, conn: sqlite3.Connection
    ) -> None:
        request_id = event.config.get("request_id")
        if request_id:
            conn.execute(
                "INSERT OR REPLACE INTO outbox_runs (run_id, request_id) VALUES (?, ?)",
                (event.run_id, request_id),
            )

    @on(TrainingRunCompleted)
    def training_completed(
        self, event: TrainingRunCompleted, envelope: Envelope, conn: sqlite3.Connection
    ) -> None:
        position = envelope.position or 0
        self._close_request(conn, event.run_id, position, JobStatus.DONE)
        self._open(conn, JobKind.ANCHOR_RUN, event.run_id, position)

    @on(TrainingRunFailed)
    def training_failed(
        self, event: TrainingRunFailed, envelope: Envelope, conn: sqlite3.Connection
    ) -> None:
        self._close_request(conn, event.run_id, envelope.position or 0, JobStatus.FAILED)

    @on(TrainingRunAnchored)
    def training_anchored(
        self, event: TrainingRunAnchored, envelope: Envelope, conn: sqlite3.Connection
    ) -> None:
        self._close(conn, JobKind.ANCHOR_RUN, event.run_id, envelope.position or 0, JobStatus.DONE)

    def _close_request(
        self, conn: sqlite3.Connection, run_id: str, position: int, status: JobStatus
    ) -> None:
        row = conn.execute(
            "SELECT request_id FROM outbox_runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        if row is not None:
            self._close(conn, JobKind.TRAIN, row[0], position, status)


# -- queries -------------------------------------------------------------------------------------


def list_jobs(
    conn: sqlite3.Connection, kind: JobKind, *, status: JobStatus = JobStatus.PENDING
) -> list[str]:
    """The keys (batch, request or run ids) of ``kind`` jobs in ``status``, oldest first."""
    rows = conn.execute(
        "SELECT batch_id FROM outbox WHERE kind = ? AND status = ? ORDER BY opened_at_position",
        (kind.value, status.value),
    ).fetchall()
    return [r[0] for r in rows]


def count_jobs_by_kind(conn: sqlite3.Connection, status: JobStatus) -> dict[str, int]:
    """Job kind -> how many jobs of that kind are in ``status`` (kinds with none left out)."""
    rows = conn.execute(
        "SELECT kind, COUNT(*) FROM outbox WHERE status = ? GROUP BY kind", (status.value,)
    ).fetchall()
    return {str(k): int(v) for k, v in rows}


def record_attempt(
    conn: sqlite3.Connection, kind: JobKind, key: str, *, error: str | None, attempted_at: str
) -> int:
    """Count one delivery attempt of the job ``kind``/``key``; returns its attempts so far.

    Writes the operational attempts table only (never replayed, never compared by replay).
    """
    job = job_id(kind, key)
    conn.execute(
        f"INSERT INTO {ATTEMPTS_TABLE} (job_id, attempts, last_error, last_attempt_at)"
        " VALUES (?, 1, ?, ?) ON CONFLICT (job_id) DO UPDATE SET"
        " attempts = attempts + 1, last_error = excluded.last_error,"
        " last_attempt_at = excluded.last_attempt_at",
        (job, error, attempted_at),
    )
    row = conn.execute(f"SELECT attempts FROM {ATTEMPTS_TABLE} WHERE job_id = ?", (job,))
    return int(row.fetchone()[0])
