"""Evaluations: recorded ones (``byr eval``: which models were scored on which benchmark, the
sha256 of each report, item counts and headline numbers; readable by every role, nothing here is
corpus text), and starting one from the API (trainers and admins), performed by a thread of the
server (:mod:`api.evaluation_jobs`) and followed on its status URL."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.deps import AnyRole, PartsDep, PrincipalDep, StateDep, require
from api.errors import error_responses
from api.services.evaluation import EvaluationRequest
from api.services.keys import Role
from ledger.errors import NotFound

router = APIRouter(prefix="/evaluations", tags=["evaluations"])

ReportId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9_-]{1,100}$", description="An evaluation report id.")
]
JobId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,100}$", description="An evaluation job id.")]
Trainers = require(Role.TRAINER, Role.ADMIN)
ModelName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,100}$")]
CellName = Annotated[str, StringConstraints(min_length=3, max_length=100)]


class EvaluationCreate(BaseModel):
    """What to evaluate, as ``byr eval`` takes it (models by name: no folders of the server)."""

    model_config = ConfigDict(extra="forbid")

    models: list[ModelName] = Field(
        min_length=1,
        max_length=8,
        description="base and/or finished training run ids (or their request ids), compared "
        "side by side on the same items.",
    )
    base: str | None = Field(
        default=None,
        pattern=r"^(tiny(-[a-z0-9_]+)?|smollm2-135m)$",
        description="tiny, tiny-<family> or smollm2-135m (default: the first adapter's own base).",
    )
    cells: list[CellName] = Field(
        default_factory=list,
        max_length=100,
        description="DISCIPLINE:TASK cells, e.g. information_theory:knowledge_qa "
        "(default: every cell).",
    )
    language: Literal["zh", "en"] | None = Field(
        default=None, description="Only items in zh or en (default: both)."
    )
    limit: int | None = Field(
        default=None, ge=1, le=100_000, description="At most N items per cell (and N control)."
    )
    max_new_tokens: int = Field(default=128, ge=1, le=2048)
    glossary_terms: int = Field(
        default=16, ge=0, le=1000, description="Glossary terms per discipline to probe (0: none)."
    )

    def request(self) -> EvaluationRequest:
        return EvaluationRequest(
            models=list(self.models),
            base=self.base,
            cells=list(self.cells),
            languages=[self.language] if self.language else [],
            limit=self.limit,
            max_new_tokens=self.max_new_tokens,
            glossary_terms=self.glossary_terms,
            allow_paths=False,
        )


class EvaluationProgressPublic(BaseModel):
    model: str
    stage: str = Field(description="benchmark, control or glossary.")
    done: int
    total: int


class EvaluationJobPublic(BaseModel):
    """An evaluation started over HTTP: queued, running, done (with its report) or failed."""

    job_id: str
    status: Literal["queued", "running", "done", "failed"]
    models: list[str]
    created_at: str
    started_at: str | None
    finished_at: str | None
    progress: EvaluationProgressPublic | None
    report_id: str | None = Field(description="The recorded evaluation, once done.")
    http_status: int | None = Field(
        description="What a synchronous request would have answered: 201, or the error's status."
    )
    error: dict[str, Any] | None = Field(description="The error body of a failed evaluation.")
    status_url: str
    evaluation_url: str | None


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


@router.post(
    "",
    status_code=202,
    response_model=EvaluationJobPublic,
    dependencies=[Trainers],
    responses=error_responses(401, 403, 404, 409, 422),
)
def start_evaluation(
    body: EvaluationCreate, parts: PartsDep, who: PrincipalDep, request: Request
) -> JSONResponse:
    """Start an evaluation of the base and/or finished runs' adapters, as ``byr eval`` does;
    ``202`` with its status URL (``Location``). The server performs evaluations one at a time,
    in the order asked. Refused at once: a model that is not ``base`` or a finished run (404, or
    409 while the run has no adapter), a bad cell or option (422)."""
    evaluation = body.request()
    parts.evaluation.check(evaluation)
    job = request.app.state.byr_evaluations.submit(evaluation, requested_by=who.attribution)
    accepted = EvaluationJobPublic(**job.to_dict())
    return JSONResponse(
        accepted.model_dump(mode="json"), status_code=202, headers={"Location": accepted.status_url}
    )


@router.get(
    "/jobs/{job_id}",
    response_model=EvaluationJobPublic,
    dependencies=[Trainers],
    responses=error_responses(401, 403, 404),
)
def read_evaluation_job(job_id: JobId, request: Request) -> EvaluationJobPublic:
    """An evaluation started over HTTP: ``queued``, ``running`` (with its progress), ``done``
    (with its report id) or ``failed`` (with the error). 404 for a job this server process does
    not know (a restart forgets its jobs)."""
    job = request.app.state.byr_evaluations.get(job_id)
    if job is None:
        raise NotFound("evaluation job: not known to this server")
    return EvaluationJobPublic(**job.to_dict())


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
