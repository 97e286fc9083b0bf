"""The pipeline: one table of stages, from each outbox job kind to the handler that performs it.

Every driver runs the pipeline through :class:`Pipeline`: ``byr submit --wait``, ``byr dispatch``
and ``POST /v1/dispatch`` call :meth:`Pipeline.drain`; each ``byr worker`` calls
:meth:`Pipeline.step` for its kinds, with the outbox as its source of jobs or, for governance
workers on Kafka, the consumer group (:mod:`api.consumer_group`). The table itself is built by the
composition root (:func:`api.composition.pipeline_stages`); adding a stage is one handler and one
entry there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.application import CorpusLedger
from ledger.errors import LedgerError
from ledger.jobs import JobHandler, JobSource, OutboxJobs, StageReport, run_stage
from ledger.projections.outbox import JobKind


class UnknownJobKind(LedgerError, LookupError):
    """The pipeline has no stage for a job kind."""


@dataclass(frozen=True, slots=True)
class Stage:
    """One entry of the pipeline table."""

    kind: JobKind
    name: str
    """The stage's key in pipeline reports (``governance``, ``anchor``, ...)."""
    handler: Callable[[], JobHandler]
    """Builds (or returns the already built) handler; called when the stage first runs."""
    detail_name: str | None = None
    """Name under which the stage reports what each performed job produced."""


@dataclass(slots=True)
class PipelineStep:
    """One pass over some stages: the events projected first, then each stage's report."""

    events_projected: int
    stages: dict[str, StageReport] = field(default_factory=dict)

    @property
    def items(self) -> int:
        return sum(report.items for report in self.stages.values())

    @property
    def progressed(self) -> bool:
        return any(report.progressed for report in self.stages.values())

    def to_dict(self) -> dict[str, Any]:
        """Each stage that had jobs, by name (the round document of ``byr dispatch``)."""
        return {name: r.to_dict() for name, r in self.stages.items() if r.results}


class Pipeline:
    """Runs the stages of one ledger's outbox."""

    DRAIN_KINDS: tuple[JobKind, ...] = (
        JobKind.GOVERN,
        JobKind.ANCHOR,
        JobKind.REWARD,
        JobKind.ANCHOR_RUN,
    )
    """What a drain runs: everything but training, which only trainer workers take on."""

    def __init__(self, *, ledger: CorpusLedger, stages: Sequence[Stage]) -> None:
        kinds = [stage.kind for stage in stages]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"the pipeline table names a job kind twice: {kinds}")
        self.ledger = ledger
        self.stages: Mapping[JobKind, Stage] = {stage.kind: stage for stage in stages}
        self.outbox = OutboxJobs(ledger)

    def stage(self, kind: JobKind) -> Stage:
        try:
            return self.stages[kind]
        except KeyError:
            raise UnknownJobKind(f"no pipeline stage performs {kind!r} jobs") from None

    def run_once(self, kind: JobKind, *, source: JobSource | None = None) -> StageReport:
        """Perform the jobs of ``kind`` that ``source`` (default: the outbox) hands out now."""
        stage = self.stage(kind)
        jobs = source or self.outbox
        return run_stage(
            stage.handler(),
            jobs.claim(kind),
            kind=kind,
            detail_name=stage.detail_name,
            on_error=jobs.abandon,
        )

    def step(
        self, kinds: Sequence[JobKind], *, sources: Mapping[JobKind, JobSource] | None = None
    ) -> PipelineStep:
        """Catch the projections up, then run each of ``kinds`` once, in order."""
        for kind in kinds:
            self.stage(kind)  # an unknown kind fails before anything runs
        step = PipelineStep(events_projected=self.ledger.sync())
        for kind in kinds:
            source = (sources or {}).get(kind)
            step.stages[self.stages[kind].name] = self.run_once(kind, source=source)
        return step

    def drain(self, *, max_rounds: int = 20) -> list[dict[str, Any]]:
        """Run :attr:`DRAIN_KINDS` until a round changes nothing; returns each round's
        document."""
        rounds: list[dict[str, Any]] = []
        for _ in range(max_rounds):
            step = self.step(self.DRAIN_KINDS)
            if document := step.to_dict():
                rounds.append(document)
            if not step.progressed:
                break
        return rounds
