"""Read models of training: runs and their lifecycle, requests waiting for a trainer; their queries.

Requests have a projection of their own (not a table of :class:`TrainingRunsProjection`) so that a
state database made before requests were projected builds the table from the start of the log on
its first catch-up, instead of starting past the requests already made.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from ledger.events import (
    CheckpointSaved,
    Envelope,
    TrainingProgressed,
    TrainingRunAnchored,
    TrainingRunCompleted,
    TrainingRunCreated,
    TrainingRunFailed,
    TrainingRunRequested,
    TrainingRunResumeRequested,
    TrainingRunStarted,
    TrainingRunStopped,
    TrainingRunStopRequested,
)
from ledger.projections.base import Projection, on
from ledger.views import TrainingRequestView, TrainingRunView


class TrainingRunStatus(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    STOPPING = "stopping"
    """A stop was asked; the trainer stops at its next step boundary."""
    STOPPED = "stopped"
    """Stopped with a checkpoint; a resume continues from it."""
    RESUMING = "resuming"
    """A resume was asked; a trainer picks the run up again."""
    COMPLETED = "completed"
    FAILED = "failed"
    ANCHORED = "anchored"


#: Statuses in which a stop may be asked, and in which a resume may.
STOPPABLE = (TrainingRunStatus.CREATED, TrainingRunStatus.RUNNING, TrainingRunStatus.RESUMING)
RESUMABLE = (TrainingRunStatus.STOPPING, TrainingRunStatus.STOPPED)


class TrainingRunsProjection(Projection):
    name = "training_runs"
    schema = """
    CREATE TABLE IF NOT EXISTS training_runs (
        run_id TEXT PRIMARY KEY,
        recipe TEXT NOT NULL,
        method TEXT NOT NULL,
        base_model TEXT NOT NULL,
        config TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        dataset_root TEXT,
        train_records INTEGER,
        last_step INTEGER,
        last_loss REAL,
        last_checkpoint TEXT,
        adapter_dir TEXT,
        adapter_hash TEXT,
        recipe_hash TEXT,
        base_model_hash TEXT,
        final_loss REAL,
        error TEXT,
        anchor_tx_hash TEXT,
        anchor_chain_id INTEGER,
        anchor_contract TEXT
    )
    """

    @on(TrainingRunCreated)
    def created(self, e: TrainingRunCreated, env: Envelope, conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO training_runs (run_id, recipe, method, base_model, config, status,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                e.run_id,
                e.recipe,
                e.method,
                e.base_model,
                json.dumps(e.config, sort_keys=True),
                TrainingRunStatus.CREATED,
                env.occurred_at,
            ),
        )

    @on(TrainingRunStarted)
    def started(self, e: TrainingRunStarted, env: Envelope, conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE training_runs SET status = ?, dataset_root = ?, train_records = ?"
            " WHERE run_id = ?",
            (TrainingRunStatus.RUNNING, e.dataset_root, e.train_records, e.run_id),
        )

    @on(TrainingProgressed)
    def progressed(self, e: TrainingProgressed, env: Envelope, conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE training_runs SET last_step = ?, last_loss = ? WHERE run_id = ?",
            (e.step, e.loss, e.run_id),
        )

    @on(CheckpointSaved)
    def checkpoint(self, e: CheckpointSaved, env: Envelope, conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE training_runs SET last_checkpoint = ? WHERE run_id = ?", (e.path, e.run_id)
        )

    @on(TrainingRunCompleted)
    def completed(self, e: TrainingRunCompleted, env: Envelope, conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE training_runs SET status = ?, adapter_dir = ?, adapter_hash = ?,"
            " recipe_hash = ?, base_model_hash = ?, final_loss = ? WHERE run_id = ?",
            (
                TrainingRunStatus.COMPLETED,
                e.adapter_dir,
                e.adapter_hash,
                e.recipe_hash,
                e.base_model_hash,
                e.final_loss,
                e.run_id,
            ),
        )

    @on(TrainingRunFailed)
    def failed(self, e: TrainingRunFailed, env: Envelope, conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE training_runs SET status = ?, error = ? WHERE run_id = ?",
            (TrainingRunStatus.FAILED, e.error, e.run_id),
        )

    @on(TrainingRunStopRequested)
    def stop_requested(
        self, e: TrainingRunStopRequested, env: Envelope, conn: sqlite3.Connection
    ) -> None:
        conn.execute(
            f"UPDATE training_runs SET status = ? WHERE run_id = ?"
            f" AND status IN ({', '.join('?' * len(STOPPABLE))})",
            (TrainingRunStatus.STOPPING, e.run_id, *STOPPABLE),
        )

    @on(TrainingRunStopped)
    def stopped(self, e: TrainingRunStopped, env: Envelope, conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE training_runs SET status = ?, last_step = ?, last_checkpoint = ?"
            " WHERE run_id = ?",
            (TrainingRunStatus.STOPPED, e.step, e.checkpoint, e.run_id),
        )

    @on(TrainingRunResumeRequested)
    def resume_requested(
        self, e: TrainingRunResumeRequested, env: Envelope, conn: sqlite3.Connection
    ) -> None:
        conn.execute(
            f"UPDATE training_runs SET status = ? WHERE run_id = ?"
            f" AND status IN ({', '.join('?' * len(RESUMABLE))})",
            (TrainingRunStatus.RESUMING, e.run_id, *RESUMABLE),
        )

    @on(TrainingRunAnchored)
    def anchored(self, e: TrainingRunAnchored, env: Envelope, conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE training_runs SET status = ?, anchor_tx_hash = ?,"
            " anchor_chain_id = ?, anchor_contract = ? WHERE run_id = ?",
            (TrainingRunStatus.ANCHORED, e.tx_hash, e.chain_id, e.contract_address, e.run_id),
        )


class TrainingRequestsProjection(Projection):
    """Every training request, with all it asked for; requests are never changed afterwards."""

    name = "training_requests"
    schema = """
    CREATE TABLE IF NOT EXISTS training_requests (
        request_id TEXT PRIMARY KEY,
        recipe TEXT NOT NULL,
        base_model TEXT NOT NULL,
        overrides TEXT NOT NULL,
        max_steps INTEGER,
        disciplines TEXT NOT NULL,
        languages TEXT NOT NULL,
        institutions TEXT NOT NULL,
        record_limit INTEGER,
        requested_at TEXT NOT NULL
    )
    """

    @on(TrainingRunRequested)
    def requested(self, e: TrainingRunRequested, env: Envelope, conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO training_requests (request_id, recipe, base_model, overrides, max_steps,"
            " disciplines, languages, institutions, record_limit, requested_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                e.request_id,
                e.recipe,
                e.base_model,
                json.dumps(e.overrides),  # in the order given: overrides apply in order
                e.max_steps,
                json.dumps(e.disciplines),
                json.dumps(e.languages),
                json.dumps(e.institutions),
                e.record_limit,
                env.occurred_at,
            ),
        )


# -- queries -------------------------------------------------------------------------------------

_RUN_COLUMNS = (
    "run_id, recipe, method, base_model, config, status, created_at, dataset_root, train_records,"
    " last_step, last_loss, last_checkpoint, adapter_dir, adapter_hash, recipe_hash,"
    " base_model_hash, final_loss, error, anchor_tx_hash, anchor_chain_id, anchor_contract"
)
_REQUEST_COLUMNS = (
    "request_id, recipe, base_model, overrides, max_steps, disciplines, languages, institutions,"
    " record_limit, requested_at"
)


def _run_view(row: Sequence[Any]) -> TrainingRunView:
    values = list(row)
    values[4] = json.loads(values[4])
    return TrainingRunView(*values)


def get_training_run(conn: sqlite3.Connection, run_id: str) -> TrainingRunView | None:
    """The run ``run_id``; ``None`` when it was never created."""
    row = conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM training_runs WHERE run_id = ?", (run_id,)
    ).fetchone()
    return _run_view(row) if row is not None else None


def list_training_runs(conn: sqlite3.Connection) -> list[TrainingRunView]:
    """Every training run, oldest first."""
    rows = conn.execute(f"SELECT {_RUN_COLUMNS} FROM training_runs ORDER BY created_at")
    return [_run_view(r) for r in rows.fetchall()]


def get_training_run_for_request(
    conn: sqlite3.Connection, request_id: str
) -> TrainingRunView | None:
    """The run a trainer created for request ``request_id``; ``None`` before it exists."""
    row = conn.execute(
        f"SELECT {_RUN_COLUMNS} FROM training_runs"
        " WHERE json_extract(config, '$.request_id') = ? ORDER BY created_at LIMIT 1",
        (request_id,),
    ).fetchone()
    return _run_view(row) if row is not None else None


def list_training_requests(conn: sqlite3.Connection) -> list[TrainingRequestView]:
    """Every training request, oldest first."""
    rows = conn.execute(
        f"SELECT {_REQUEST_COLUMNS} FROM training_requests ORDER BY requested_at, request_id"
    ).fetchall()
    return [_request_view(r) for r in rows]


def count_training_runs_by_status(conn: sqlite3.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT status, COUNT(*) FROM training_runs GROUP BY status").fetchall()
    return {str(k): int(v) for k, v in rows}


def get_training_request(conn: sqlite3.Connection, request_id: str) -> TrainingRequestView | None:
    """The request ``request_id``; ``None`` when it was never made."""
    row = conn.execute(
        f"SELECT {_REQUEST_COLUMNS} FROM training_requests WHERE request_id = ?", (request_id,)
    ).fetchone()
    if row is None:
        return None
    return _request_view(row)


def _request_view(row: Sequence[Any]) -> TrainingRequestView:
    return TrainingRequestView(
        request_id=row[0],
        recipe=row[1],
        base_model=row[2],
        overrides=json.loads(row[3]),
        max_steps=row[4],
        disciplines=json.loads(row[5]),
        languages=json.loads(row[6]),
        institutions=json.loads(row[7]),
        record_limit=row[8],
        requested_at=row[9],
    )
