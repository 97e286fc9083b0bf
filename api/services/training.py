"""Training on the accepted corpus, for the CLI, the API and the trainer worker.

:class:`TrainingService` records a request (``TrainingRunRequested``) for a worker, or trains now
on a snapshot of the accepted-corpus feed: every lifecycle event goes to the run's stream, and a
finished run is anchored on the academic chain with its dataset root, recipe and base-model hashes.

Runs are stopped and resumed through the log: a stop request (``TrainingRunStopRequested``) is
seen by whichever trainer runs the run (a worker process, the API's trainer thread, ``byr
train``) at its next step boundary, which checkpoints and records ``TrainingRunStopped``; the
request's ``train`` job stays open, deferred, until a resume request
(``TrainingRunResumeRequested``) lets a trainer continue it from the checkpoint. Recipe advice
(:mod:`trainer.advice`) is computed for every request and returned, never applied.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.application import CorpusLedger
from ledger.errors import Conflict, InvalidRequest, NotFound
from ledger.jobs import JobResult, Outcome, StageReport

if TYPE_CHECKING:
    from ledger.chain.clients import AcademicLedgerClient
    from ledger.views import TrainingRequestView, TrainingRunView
    from trainer.lineage import LineageReport
    from trainer.recipes import Recipe

#: A trainer's ``should_stop`` reads the log at most this often (seconds).
STOP_POLL_S = 0.2


class TrainingService:
    """Training requests, runs and adapter lineage; the handler of ``train`` jobs."""

    def __init__(
        self,
        *,
        ledger: CorpusLedger,
        runs_dir: Path,
        model_cache_dir: Path | None,
        anchor_runs: Callable[[], StageReport],
        academic: Callable[[], AcademicLedgerClient],
    ) -> None:
        self.ledger = ledger
        self.runs_dir = runs_dir
        self.model_cache_dir = model_cache_dir
        self._anchor_runs = anchor_runs
        self._academic = academic

    anchors_runs: bool = True
    """Whether :meth:`train` anchors the run it finished (off in the API's trainer thread, which
    leaves anchoring to the app that owns the chains)."""
    interrupt: threading.Event | None = None
    """When set, a run in progress stops at its next step boundary (a server shutting down)."""

    def check_request(self, request: TrainingRequest) -> tuple[Recipe, list[dict[str, Any]]]:
        """The recipe ``request`` resolves to and the advice on it (``field``, ``message``).

        Raises :class:`InvalidRequest` naming the bad recipe field (the value is left out)."""
        from trainer.advice import advise
        from trainer.errors import ConfigError, RecipeNotFound
        from trainer.recipes import load_recipe

        try:
            recipe = load_recipe(request.recipe, request.overrides)
            if request.max_steps is not None:
                recipe = recipe.with_overrides({"training.max_steps": request.max_steps})
        except RecipeNotFound as exc:
            raise NotFound(str(exc)) from exc
        except ConfigError as exc:
            raise InvalidRequest(without_value(str(exc))) from exc
        warnings = advise(recipe, records=request.record_limit)
        return recipe, [w.to_dict() for w in warnings]

    def submit(self, request: TrainingRequest) -> dict[str, Any]:
        """Check ``request``, record it for a trainer, and return its id with the advice."""
        _, warnings = self.check_request(request)
        request_id = self.request_training(request)
        return {"request_id": request_id, "status": "queued", "warnings": warnings}

    def request_training(self, request: TrainingRequest) -> str:
        """Record a training request for a trainer worker; returns its request id."""
        from ledger.events import TrainingRunRequested
        from ledger.ids import new_run_id, run_stream

        request_id = new_run_id()
        self.ledger.append(
            run_stream(f"request-{request_id}"),
            [TrainingRunRequested(request_id=request_id, **request.event_fields())],
            expected_version=0,
        )
        return request_id

    def train(
        self,
        request: TrainingRequest,
        *,
        output_dir: Path | None = None,
        resume: bool = False,
        request_id: str | None = None,
        progress: bool = True,
    ) -> dict[str, Any]:
        """Train on a snapshot of the accepted-corpus feed, record the run's lifecycle events and
        anchor the run on the academic chain; returns the adapter folder, run id and anchor."""
        from ledger.events import DomainEvent, TrainingRunCreated
        from ledger.ids import run_stream
        from trainer.errors import TrainingStopped
        from trainer.feed import snapshot_from_feed
        from trainer.job import run_training

        self.ledger.sync()
        recipe, warnings = self.check_request(request)
        snapshot = snapshot_from_feed(
            self.ledger,
            disciplines=request.disciplines or None,
            languages=request.languages or None,
            institutions=request.institutions or None,
            limit=request.record_limit,
        )
        current: dict[str, str] = {}

        def record(event: DomainEvent) -> None:
            if request_id is not None and isinstance(event, TrainingRunCreated):
                event = event.model_copy(
                    update={"config": {**event.config, "request_id": request_id}}
                )
            run_id = event.model_dump(include={"run_id"})["run_id"]  # every training event has one
            current["run_id"] = run_id
            self.ledger.append(run_stream(run_id), [event])

        target = output_dir or self.runs_dir / (request_id or _timestamped(request.recipe))
        try:
            result = run_training(
                base=request.base_model,
                recipe=recipe,
                dataset=snapshot,
                output_dir=target,
                resume=resume,
                on_event=record,
                progress=progress,
                cache_dir=self.model_cache_dir,
                should_stop=self._stop_check(current),
            )
        except TrainingStopped as stopped:
            return {
                "run_id": stopped.run_id,
                "status": "stopped",
                "step": stopped.step,
                "checkpoint": stopped.checkpoint,
                "run_dir": str(target),
                "warnings": warnings,
            }
        anchors = self._anchor_runs() if self.anchors_runs else StageReport(kind=_anchor_kind())
        run = self.ledger.training_run(result.run_id)
        return {
            "run_id": result.run_id,
            "adapter_dir": str(result.adapter_dir),
            "final_loss": result.final_loss,
            "losses": result.losses,
            "validation_loss": result.validation_loss,
            "dataset_root": snapshot.dataset_root,
            "records": len(snapshot.records),
            "status": run.status,
            "anchor_tx_hash": run.anchor_tx_hash,
            "anchor": anchors.to_dict(),
            "warnings": warnings,
            "run_dir": str(target),
        }

    def _stop_check(self, current: dict[str, str]) -> Callable[[], bool]:
        """``should_stop`` of a run: the service's interrupt, or a stop request in the log (read
        at most every :data:`STOP_POLL_S` seconds)."""
        import time

        from ledger.projections.training import TrainingRunStatus

        last = [0.0]

        def should_stop() -> bool:
            if self.interrupt is not None and self.interrupt.is_set():
                return True
            run_id = current.get("run_id")
            now = time.monotonic()
            if run_id is None or now - last[0] < STOP_POLL_S:
                return False
            last[0] = now
            if self.ledger.is_behind():
                self.ledger.sync()
            try:
                status = self.ledger.training_run(run_id).status
            except NotFound:
                return False
            return status == TrainingRunStatus.STOPPING

        return should_stop

    def perform(self, request_id: str) -> JobResult:
        """Run a requested training run (a ``train`` job), resuming an interrupted one; the run
        is anchored by the ``anchor_run`` job its completion opens."""
        from ledger.projections.training import RESUMABLE

        request = TrainingRequest.from_view(self.ledger.training_request(request_id))
        run = self.ledger.training_run_for_request(request_id)
        if run is not None and run.status in RESUMABLE:
            return JobResult(request_id, Outcome.DEFERRED, {"run_id": run.run_id, "stopped": True})
        target = self.runs_dir / request_id
        try:
            result = self.train(
                request,
                output_dir=target,
                resume=(target / "run.json").exists(),
                request_id=request_id,
                progress=False,
            )
        except (InvalidRequest, NotFound) as exc:
            # a recipe that cannot load never will: record the failure instead of retrying
            return self._refuse(request_id, exc)
        if result["status"] == "stopped":
            return JobResult(request_id, Outcome.DEFERRED, {"run_id": result["run_id"]})
        return JobResult(request_id, Outcome.DONE, result["run_id"])

    def _refuse(self, request_id: str, exc: Exception) -> JobResult:
        from ledger.events import TrainingRunCreated, TrainingRunFailed
        from ledger.ids import new_run_id, run_stream

        request = self.ledger.training_request(request_id)
        run_id = new_run_id()
        self.ledger.append(
            run_stream(run_id),
            [
                TrainingRunCreated(
                    run_id=run_id,
                    recipe=request.recipe,
                    method="",
                    base_model=request.base_model,
                    config={"request_id": request_id},
                ),
                TrainingRunFailed(run_id=run_id, error=f"{type(exc).__name__}: {exc}"),
            ],
        )
        return JobResult(request_id, Outcome.FAILED, str(exc))

    # ------------------------------------------------------------------ runs over HTTP

    def resolve(self, run_or_request_id: str) -> tuple[str | None, TrainingRunView | None]:
        """``(request_id, run)`` of a run id or a request id; raises :class:`NotFound`."""
        try:
            run = self.ledger.training_run(run_or_request_id)
            return run.config.get("request_id"), run
        except NotFound:
            pass
        request = self.ledger.training_request(run_or_request_id)  # NotFound when neither
        return request.request_id, self.ledger.training_run_for_request(request.request_id)

    def run_dir(self, run_or_request_id: str) -> Path:
        """The folder of a run (or of the run a request will create)."""
        request_id, run = self.resolve(run_or_request_id)
        recorded = run.config.get("run_dir") if run is not None else None
        if recorded:
            return Path(recorded)
        if request_id is None:
            raise NotFound(f"training run {run_or_request_id!r} has no known folder")
        return self.runs_dir / request_id

    def describe_run(self, run_or_request_id: str) -> dict[str, Any]:
        """A run (or a request not yet taken) as the API and CLI show it."""
        request_id, run = self.resolve(run_or_request_id)
        if run is None:
            assert request_id is not None
            return _queued(self.ledger.training_request(request_id))
        return self._run_document(run, detail=True)

    def list_runs(self) -> list[dict[str, Any]]:
        """Every run, then every request no trainer has taken yet."""
        runs = self.ledger.training_runs()
        taken = {r.config.get("request_id") for r in runs}
        documents = [self._run_document(r, detail=False) for r in runs]
        documents += [
            _queued(q) for q in self.ledger.training_requests() if q.request_id not in taken
        ]
        return documents

    def _run_document(self, run: TrainingRunView, *, detail: bool) -> dict[str, Any]:
        from trainer.checkpoint import list_checkpoints

        config = run.config
        folder = Path(config["run_dir"]) if config.get("run_dir") else None
        document: dict[str, Any] = {
            "run_id": run.run_id,
            "request_id": config.get("request_id"),
            "status": run.status,
            "recipe": run.recipe,
            "method": run.method,
            "base_model": run.base_model,
            "created_at": run.created_at,
            "dataset_root": run.dataset_root,
            "train_records": run.train_records,
            "last_step": run.last_step,
            "last_loss": run.last_loss,
            "final_loss": run.final_loss,
            "error": run.error,
        }
        if not detail:
            return document
        document["recipe_config"] = config.get("recipe")
        document["checkpoints"] = [
            {"step": int(p.name.split("-")[-1]), "name": p.name}
            for p in (list_checkpoints(folder) if folder is not None else [])
        ]
        document["lineage"] = self._lineage_summary(run)
        return document

    def _lineage_summary(self, run: TrainingRunView) -> dict[str, Any] | None:
        """Hashes and counts that tie a finished adapter to its data (no record text)."""
        if run.adapter_hash is None:
            return None
        summary: dict[str, Any] = {
            "adapter_hash": run.adapter_hash,
            "recipe_hash": run.recipe_hash,
            "base_model_hash": run.base_model_hash,
            "dataset_root": run.dataset_root,
            "anchor_tx_hash": run.anchor_tx_hash,
            "anchor_chain_id": run.anchor_chain_id,
            "anchor_contract": run.anchor_contract,
        }
        if run.adapter_dir:
            from trainer.errors import ManifestError
            from trainer.manifest import read_manifest

            try:
                manifest = read_manifest(Path(run.adapter_dir))
            except ManifestError:
                summary["manifest"] = None
            else:
                dataset = manifest.dataset
                summary["train_records"] = len(dataset.train_record_ids)
                summary["validation_records"] = len(dataset.validation_record_ids)
                summary["discipline_counts"] = dataset.discipline_counts
                summary["steps"] = manifest.metrics.get("steps")
                summary["validation_loss"] = manifest.metrics.get("validation_loss")
        return summary

    def stop(self, run_or_request_id: str, *, requested_by: str) -> dict[str, Any]:
        """Ask a run to stop at its next step boundary; 409 unless it is running."""
        from ledger.events import TrainingRunStopRequested
        from ledger.ids import run_stream
        from ledger.projections.training import STOPPABLE

        _, run = self.resolve(run_or_request_id)
        if run is None:
            raise Conflict(
                f"training request {run_or_request_id!r} has not started; nothing to stop"
            )
        if run.status not in STOPPABLE:
            raise Conflict(f"training run {run.run_id!r} is {run.status}; only a running run stops")
        self.ledger.append(
            run_stream(run.run_id),
            [TrainingRunStopRequested(run_id=run.run_id, requested_by=requested_by)],
        )
        return self.describe_run(run.run_id)

    def resume(self, run_or_request_id: str, *, requested_by: str) -> dict[str, Any]:
        """Let a trainer continue a stopped run from its last checkpoint; 409 unless stopped."""
        from ledger.events import TrainingRunResumeRequested
        from ledger.ids import run_stream
        from ledger.projections.training import RESUMABLE

        request_id, run = self.resolve(run_or_request_id)
        if run is None or run.status not in RESUMABLE:
            status = run.status if run is not None else "queued"
            raise Conflict(
                f"training run {run_or_request_id!r} is {status}; only a stopped run resumes"
            )
        if request_id is None:
            raise Conflict(
                f"training run {run.run_id!r} was started by `byr train`; continue it with "
                "`byr train --resume --output <run folder>`"
            )
        self.ledger.append(
            run_stream(run.run_id),
            [TrainingRunResumeRequested(run_id=run.run_id, requested_by=requested_by)],
        )
        return self.describe_run(run.run_id)

    def lineage(self, adapter_dir: Path) -> LineageReport:
        """Adapter hash -> run anchor -> dataset root -> records -> batches -> institutions."""
        from trainer.lineage import verify_lineage

        return verify_lineage(adapter_dir, ledger=self.ledger, academic=self._academic())


@dataclass(frozen=True, slots=True)
class TrainingRequest:
    """What to train: a recipe, a base model, overrides and a selection of the feed."""

    recipe: str
    base_model: str = "tiny"
    overrides: dict[str, Any] = field(default_factory=dict)
    max_steps: int | None = None
    disciplines: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    institutions: list[str] = field(default_factory=list)
    record_limit: int | None = None

    def event_fields(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "base_model": self.base_model,
            "overrides": dict(self.overrides),
            "max_steps": self.max_steps,
            "disciplines": list(self.disciplines),
            "languages": list(self.languages),
            "institutions": list(self.institutions),
            "record_limit": self.record_limit,
        }

    @classmethod
    def from_view(cls, view: TrainingRequestView) -> TrainingRequest:
        """The request a ``TrainingRunRequested`` event recorded."""
        return cls(
            recipe=view.recipe,
            base_model=view.base_model,
            overrides=dict(view.overrides),
            max_steps=view.max_steps,
            disciplines=list(view.disciplines),
            languages=list(view.languages),
            institutions=list(view.institutions),
            record_limit=view.record_limit,
        )


def _queued(request: TrainingRequestView) -> dict[str, Any]:
    return {
        "run_id": None,
        "request_id": request.request_id,
        "status": "queued",
        "recipe": request.recipe,
        "base_model": request.base_model,
        "created_at": request.requested_at,
        "max_steps": request.max_steps,
        "overrides": dict(request.overrides),
    }


def _anchor_kind() -> Any:
    from ledger.projections.outbox import JobKind

    return JobKind.ANCHOR_RUN


_GOT_VALUE = re.compile(r",? got .*$", re.DOTALL)


def without_value(message: str) -> str:
    """A recipe error without the offending value it ends with (``..., got 2.0``)."""
    return _GOT_VALUE.sub("", message)


def _timestamped(name: str) -> str:
    from datetime import UTC, datetime

    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{name}"
