"""Outbox jobs and the one loop that performs them.

An outbox job (:class:`~ledger.projections.outbox.JobKind` plus a key: a batch, request or run id)
is performed by a :class:`JobHandler`, which does the work of ONE job and says how it went
(:class:`JobResult`). :func:`run_stage` is the only loop over jobs: every driver (a one-shot
``drain``, a worker on the SQLite log, a governance worker in a Kafka consumer group) hands it a
handler and the jobs it claimed, so retry, deferral and reporting rules exist once.

Handlers are idempotent per job: they check whether the effect already happened (on the chain, in
the log) before causing it, so a job performed twice — after a crash, or by two workers — has one
effect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from ledger.application import CorpusLedger
from ledger.projections.outbox import JobKind


class Outcome(StrEnum):
    DONE = "done"
    """The job's effect happened now."""
    RECOVERED = "recovered"
    """The effect had already happened (found on the chain or in the log) and is recorded now."""
    FAILED = "failed"
    """A refusal that retrying cannot fix, recorded as a failure event."""
    DEFERRED = "deferred"
    """Not possible now (a node unreachable, a transient refusal); the job stays open."""
    SKIPPED = "skipped"
    """Someone else performed the job first; nothing to do."""


@dataclass(frozen=True, slots=True)
class JobResult:
    key: str
    outcome: Outcome
    detail: Any = None
    """What the stage reports for the job: counts, a run id, or the error of a failure."""
    stop: bool = False
    """The stage cannot go on in this round (its node is unreachable): later jobs wait."""


class JobHandler(Protocol):
    """Performs one job of its kind."""

    def perform(self, key: str) -> JobResult: ...


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job a source handed out: its key, and what to do once it is performed."""

    key: str
    ack: Callable[[], None] = lambda: None
    """Called after the job was performed (whatever its outcome), never after a raise."""
    stale: bool = False
    """The source knows the job is closed already (a redelivery): it is skipped, then acked."""


@dataclass(slots=True)
class StageReport:
    """What one pass of a stage did, job by job."""

    kind: JobKind
    results: list[JobResult] = field(default_factory=list)
    detail_name: str | None = None
    """Name under which the details of performed jobs are reported (e.g. ``governed``)."""

    def _keys(self, outcome: Outcome) -> list[str]:
        return [r.key for r in self.results if r.outcome is outcome]

    def _details(self, outcome: Outcome) -> dict[str, Any]:
        return {r.key: r.detail for r in self.results if r.outcome is outcome}

    @property
    def done(self) -> list[str]:
        return self._keys(Outcome.DONE)

    @property
    def recovered(self) -> list[str]:
        return self._keys(Outcome.RECOVERED)

    @property
    def failed(self) -> dict[str, Any]:
        return self._details(Outcome.FAILED)

    @property
    def deferred(self) -> dict[str, Any]:
        return self._details(Outcome.DEFERRED)

    @property
    def skipped(self) -> list[str]:
        return self._keys(Outcome.SKIPPED)

    @property
    def items(self) -> int:
        """Jobs closed by this pass (done, recovered or failed)."""
        closing = (Outcome.DONE, Outcome.RECOVERED, Outcome.FAILED)
        return sum(1 for r in self.results if r.outcome in closing)

    @property
    def progressed(self) -> bool:
        """Whether the pass changed anything (a job closed, or was found closed by another)."""
        return any(r.outcome is not Outcome.DEFERRED for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "done": self.done,
            "recovered": self.recovered,
            "failed": self.failed,
            "deferred": self.deferred,
            "skipped": self.skipped,
        }
        if self.detail_name is not None:
            data[self.detail_name] = {
                r.key: r.detail
                for r in self.results
                if r.outcome in (Outcome.DONE, Outcome.RECOVERED)
            }
        return data


class JobSource(Protocol):
    """Where a driver gets the jobs of a stage from."""

    blocks_when_idle: bool
    """Claiming waits for work by itself (a consumer poll), so an idle driver need not wait."""

    def claim(self, kind: JobKind) -> Iterable[ClaimedJob]: ...

    def abandon(self) -> None:
        """A job raised: hand it (and whatever was claimed after it) out again later."""
        ...

    def close(self) -> None: ...


def run_stage(
    handler: JobHandler,
    jobs: Iterable[ClaimedJob],
    *,
    kind: JobKind,
    detail_name: str | None = None,
    on_error: Callable[[], None] | None = None,
) -> StageReport:
    """Perform ``jobs`` one by one with ``handler``; stop early when a result says so.

    A handler that raises stops the pass: ``on_error`` runs (so a source can redeliver) and the
    exception propagates to the driver, which logs it and retries later.
    """
    report = StageReport(kind=kind, detail_name=detail_name)
    for job in jobs:
        if job.stale:
            report.results.append(JobResult(job.key, Outcome.SKIPPED))
            job.ack()
            continue
        try:
            result = handler.perform(job.key)
        except BaseException:
            if on_error is not None:
                on_error()
            raise
        report.results.append(result)
        job.ack()
        if result.stop:
            break
    return report


class OutboxJobs:
    """Jobs as the outbox projection lists them: every open job of a kind, oldest first.

    Each claim first brings the projections up to the log, so a job opened by another process is
    seen and one closed meanwhile is not handed out again.
    """

    blocks_when_idle = False

    def __init__(self, ledger: CorpusLedger) -> None:
        self.ledger = ledger

    def claim(self, kind: JobKind) -> list[ClaimedJob]:
        self.ledger.sync()
        return [ClaimedJob(key) for key in self.ledger.pending_jobs(kind)]

    def abandon(self) -> None:
        """Nothing to do: an open job stays in the outbox until its outcome is in the log."""

    def close(self) -> None:
        """Nothing to release."""
