"""Recorded evaluations (``byr eval``): which models were scored on which benchmark, the sha256
of each report, item counts and headline numbers. Readable by every role: nothing here is
corpus text."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel

from api.deps import AnyRole, StateDep
from api.errors import error_responses

router = APIRouter(prefix="/evaluations", tags=["evaluations"])

ReportId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9_-]{1,100}$", description="An evaluation report id.")
]


class EvaluatedModelPublic(BaseModel):
    name: str
    adapter_hash: str | None
    run_id: str | None
    items_scored: int
    items_refused: int
    overall: float | None
    forgetting_flags: int


class EvaluationPublic(BaseModel):
    """One evaluation as ``EvaluationCompleted`` recorded it."""

    report_id: str
    report_sha256: str
    report_dir: str
    base_model: str
    base_model_hash: str
    models: list[EvaluatedModelPublic]
    benchmark_name: str
    benchmark_version: str
    benchmark_hash: str
    items: int
    cells: int
    control_items: int
    started_at: str
    seconds: float
    completed_at: str


@router.get("", dependencies=[AnyRole], responses=error_responses(401, 403))
def list_evaluations(state: StateDep) -> list[EvaluationPublic]:
    """Every recorded evaluation, oldest first."""
    return [EvaluationPublic(**e) for e in state.parts.evaluation.list_evaluations()]


@router.get("/{report_id}", dependencies=[AnyRole], responses=error_responses(401, 403, 404))
def read_evaluation(report_id: ReportId, state: StateDep) -> EvaluationPublic:
    """One recorded evaluation (404 when no such report was recorded)."""
    return EvaluationPublic(**state.parts.evaluation.describe(report_id))


@router.get(
    "/{report_id}/report", dependencies=[AnyRole], responses=error_responses(401, 403, 404, 409)
)
def read_evaluation_report(report_id: ReportId, state: StateDep) -> dict[str, Any]:
    """The evaluation's ``report.json``: per model its summary and its discipline x task cells
    (item counts, knowledge/teaching/application/overall, metric means), control set, glossary
    probes and contamination list (item and record ids); per adapter its deltas against the base
    and forgetting flags. Ids and numbers only: no corpus text, no answers. 404 when no such
    evaluation was recorded or its report file is not on this server, 409 when the file's sha256
    differs from the recorded one."""
    return state.parts.evaluation.report(report_id)
