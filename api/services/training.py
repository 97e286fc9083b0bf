"""Training on the accepted corpus, for the CLI, the API and the trainer worker.

:class:`TrainingService` records a request (``TrainingRunRequested``) for a worker, or trains now
on a snapshot of the accepted-corpus feed: every lifecycle event goes to the run's stream, and a
finished run is anchored on the academic chain with its dataset root, recipe and base-model hashes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.application import CorpusLedger
from ledger.jobs import JobResult, Outcome, StageReport

if TYPE_CHECKING:
    from ledger.chain.clients import AcademicLedgerClient
    from ledger.views import TrainingRequestView
    from trainer.lineage import LineageReport


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
        from trainer.feed import snapshot_from_feed
        from trainer.job import run_training
        from trainer.recipes import load_recipe

        self.ledger.sync()
        snapshot = snapshot_from_feed(
            self.ledger,
            disciplines=request.disciplines or None,
            languages=request.languages or None,
            institutions=request.institutions or None,
            limit=request.record_limit,
        )
        recipe = load_recipe(request.recipe, request.overrides)

        def record(event: DomainEvent) -> None:
            if request_id is not None and isinstance(event, TrainingRunCreated):
                event = event.model_copy(
                    update={"config": {**event.config, "request_id": request_id}}
                )
            run_id = event.model_dump(include={"run_id"})["run_id"]  # every training event has one
            self.ledger.append(run_stream(run_id), [event])

        target = output_dir or self.runs_dir / (request_id or _timestamped(request.recipe))
        result = run_training(
            base=request.base_model,
            recipe=recipe,
            dataset=snapshot,
            output_dir=target,
            resume=resume,
            on_event=record,
            max_steps=request.max_steps,
            progress=progress,
            cache_dir=self.model_cache_dir,
        )
        anchors = self._anchor_runs()
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
        }

    def perform(self, request_id: str) -> JobResult:
        """Run a requested training run (a ``train`` job), resuming an interrupted one; the run
        is anchored by the ``anchor_run`` job its completion opens."""
        request = TrainingRequest.from_view(self.ledger.training_request(request_id))
        target = self.runs_dir / request_id
        result = self.train(
            request,
            output_dir=target,
            resume=(target / "run.json").exists(),
            request_id=request_id,
            progress=False,
        )
        return JobResult(request_id, Outcome.DONE, result["run_id"])

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


def _timestamped(name: str) -> str:
    from datetime import UTC, datetime

    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{name}"
