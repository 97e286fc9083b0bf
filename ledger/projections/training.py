"""Read model of training runs and their lifecycle."""

from __future__ import annotations

import json
import sqlite3

from ledger.events import (
    CheckpointSaved,
    Envelope,
    TrainingProgressed,
    TrainingRunAnchored,
    TrainingRunCompleted,
    TrainingRunCreated,
    TrainingRunFailed,
    TrainingRunStarted,
)
from ledger.projections.base import Projection, on


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
            " created_at) VALUES (?, ?, ?, ?, ?, 'created', ?)",
            (
                e.run_id,
                e.recipe,
                e.method,
                e.base_model,
                json.dumps(e.config, sort_keys=True),
                env.occurred_at,
            ),
        )

    @on(TrainingRunStarted)
    def started(self, e: TrainingRunStarted, env: Envelope, conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE training_runs SET status = 'running', dataset_root = ?, train_records = ?"
            " WHERE run_id = ?",
            (e.dataset_root, e.train_records, e.run_id),
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
            "UPDATE training_runs SET status = 'completed', adapter_dir = ?, adapter_hash = ?,"
            " recipe_hash = ?, base_model_hash = ?, final_loss = ? WHERE run_id = ?",
            (
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
            "UPDATE training_runs SET status = 'failed', error = ? WHERE run_id = ?",
            (e.error, e.run_id),
        )

    @on(TrainingRunAnchored)
    def anchored(self, e: TrainingRunAnchored, env: Envelope, conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE training_runs SET status = 'anchored', anchor_tx_hash = ?,"
            " anchor_chain_id = ?, anchor_contract = ? WHERE run_id = ?",
            (e.tx_hash, e.chain_id, e.contract_address, e.run_id),
        )
