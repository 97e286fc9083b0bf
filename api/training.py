"""Training on the accepted corpus, for the CLI, the API and the trainer worker.

:class:`TrainingService` records a request (``TrainingRunRequested``) for a worker, or trains now
on a snapshot of the accepted-corpus feed: every lifecycle event goes to the run's stream, and a
finished run is anchored on the academic chain with its dataset root, recipe and base-model hashes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.dispatch import DispatchReport

if TYPE_CHECKING:
    from api.runtime import Runtime


class TrainingService:
    """Training requests, runs, their anchors and adapter lineage on one :class:`Runtime`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def dispatch_run_anchors(self) -> DispatchReport:
        """Anchor finished training runs on the academic chain."""
        from ledger.dispatch import RunAnchorDispatcher

        rt = self.runtime
        return RunAnchorDispatcher(ledger=rt.ledger, academic=rt.trainer_academic).run_once()

    def request_training(self, request: TrainingRequest) -> str:
        """Record a training request for a trainer worker; returns its request id."""
        from ledger.events import TrainingRunRequested
        from ledger.ids import new_run_id, run_stream

        self.runtime.require_initialized()
        request_id = new_run_id()
        self.runtime.ledger.append(
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

        self.runtime.require_initialized()
        snapshot = snapshot_from_feed(
            self.runtime.ledger,
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
            self.runtime.ledger.append(run_stream(run_id), [event])

        runs_dir = self.runtime.settings.home / "runs"
        target = output_dir or runs_dir / (request_id or _timestamped(request.recipe))
        result = run_training(
            base=request.base_model,
            recipe=recipe,
            dataset=snapshot,
            output_dir=target,
            resume=resume,
            on_event=record,
            max_steps=request.max_steps,
            progress=progress,
            cache_dir=self.runtime.settings.model_cache_dir,
        )
        anchors = self.dispatch_run_anchors()
        run = self.runtime.ledger.training_run(result.run_id)
        return {
            "run_id": result.run_id,
            "adapter_dir": str(result.adapter_dir),
            "final_loss": result.final_loss,
            "losses": result.losses,
            "validation_loss": result.validation_loss,
            "dataset_root": snapshot.dataset_root,
            "records": len(snapshot.records),
            "status": run["status"],
            "anchor_tx_hash": run["anchor_tx_hash"],
            "anchor": anchors.to_dict(),
        }

    def run_pending_training(self) -> list[str]:
        """Run every requested training run not yet finished (resuming interrupted ones); anchor
        completed runs. Returns the run ids finished now."""
        from ledger.events import TrainingRunRequested, decode
        from ledger.ids import run_stream
        from ledger.projections.outbox import JobKind

        finished = []
        for request_id in self.runtime.ledger.pending_jobs(JobKind.TRAIN):
            envelope = next(iter(self.runtime.log.read_stream(run_stream(f"request-{request_id}"))))
            event = decode(envelope)
            assert isinstance(event, TrainingRunRequested)
            request = TrainingRequest.from_event(event)
            target = self.runtime.settings.home / "runs" / request_id
            result = self.train(
                request,
                output_dir=target,
                resume=(target / "run.json").exists(),
                request_id=request_id,
                progress=False,
            )
            finished.append(result["run_id"])
        if self.runtime.ledger.pending_jobs(JobKind.ANCHOR_RUN):
            self.dispatch_run_anchors()
        return finished

    def lineage(self, adapter_dir: Path) -> Any:
        from trainer.lineage import verify_lineage

        self.runtime.require_initialized()
        return verify_lineage(
            adapter_dir, ledger=self.runtime.ledger, academic=self.runtime.trainer_academic
        )


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
    def from_event(cls, event: Any) -> TrainingRequest:
        return cls(
            recipe=event.recipe,
            base_model=event.base_model,
            overrides=dict(event.overrides),
            max_steps=event.max_steps,
            disciplines=list(event.disciplines),
            languages=list(event.languages),
            institutions=list(event.institutions),
            record_limit=event.record_limit,
        )


def _timestamped(name: str) -> str:
    from datetime import UTC, datetime

    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{name}"
