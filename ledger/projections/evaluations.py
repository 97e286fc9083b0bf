"""Read model of evaluations: one row per written report (``EvaluationCompleted``); its queries.

A row holds what the event holds (ids, hashes, counts and headline numbers), never the report
itself: the report stays a file on the evaluating machine, and its sha256 here lets anyone check
a copy of it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from ledger.events import Envelope, EvaluationCompleted
from ledger.projections.base import Projection, on


@dataclass(frozen=True, slots=True)
class EvaluationView:
    report_id: str
    report_sha256: str
    report_dir: str
    base_model: str
    base_model_hash: str
    models: list[dict[str, Any]]
    benchmark_name: str
    benchmark_version: str
    benchmark_hash: str
    items: int
    cells: int
    control_items: int
    started_at: str
    seconds: float
    completed_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class EvaluationsProjection(Projection):
    name = "evaluations"
    schema = """
    CREATE TABLE IF NOT EXISTS evaluations (
        report_id TEXT PRIMARY KEY,
        report_sha256 TEXT NOT NULL,
        report_dir TEXT NOT NULL,
        base_model TEXT NOT NULL,
        base_model_hash TEXT NOT NULL,
        models TEXT NOT NULL,
        benchmark_name TEXT NOT NULL,
        benchmark_version TEXT NOT NULL,
        benchmark_hash TEXT NOT NULL,
        items INTEGER NOT NULL,
        cells INTEGER NOT NULL,
        control_items INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        seconds REAL NOT NULL,
        completed_at TEXT NOT NULL
    )
    """

    @on(EvaluationCompleted)
    def completed(self, e: EvaluationCompleted, env: Envelope, conn: sqlite3.Connection) -> None:
        conn.execute(
            f"INSERT OR IGNORE INTO evaluations ({_COLUMNS})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                e.report_id,
                e.report_sha256,
                e.report_dir,
                e.base_model,
                e.base_model_hash,
                json.dumps([m.model_dump() for m in e.models], sort_keys=True),
                e.benchmark_name,
                e.benchmark_version,
                e.benchmark_hash,
                e.items,
                e.cells,
                e.control_items,
                e.started_at,
                e.seconds,
                env.occurred_at,
            ),
        )


# -- queries -------------------------------------------------------------------------------------

_COLUMNS = (
    "report_id, report_sha256, report_dir, base_model, base_model_hash, models, benchmark_name,"
    " benchmark_version, benchmark_hash, items, cells, control_items, started_at, seconds,"
    " completed_at"
)


def _view(row: Sequence[Any]) -> EvaluationView:
    values = list(row)
    values[5] = json.loads(values[5])
    return EvaluationView(*values)


def get_evaluation(conn: sqlite3.Connection, report_id: str) -> EvaluationView | None:
    """The evaluation ``report_id``; ``None`` when no such report was recorded."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM evaluations WHERE report_id = ?", (report_id,)
    ).fetchone()
    return _view(row) if row is not None else None


def list_evaluations(conn: sqlite3.Connection) -> list[EvaluationView]:
    """Every recorded evaluation, oldest first."""
    rows = conn.execute(f"SELECT {_COLUMNS} FROM evaluations ORDER BY completed_at, report_id")
    return [_view(r) for r in rows.fetchall()]
