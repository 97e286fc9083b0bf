"""Long-running workers: governance, anchoring, rewards, the accepted-corpus feed, training.

Each worker repeats one step of the pipeline until it is asked to stop (SIGTERM or SIGINT finish
the current step, then exit 0). Between steps that found nothing to do it waits for the event log
to move instead of spinning. Every step logs what it did and the projection lag; with
``metrics_port`` the worker also serves Prometheus metrics (steps, items, errors, lag, last
success).
"""

from __future__ import annotations

import hashlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from api.composition import Parts
from api.pipeline import PipelineStep
from ledger.jobs import JobSource
from ledger.projections.outbox import JobKind
from ledger.settings import LedgerSettings

log = logging.getLogger("byr.worker")


class WorkerKind(StrEnum):
    GOVERNANCE = "governance"
    ANCHOR = "anchor"
    REWARDS = "rewards"
    FEED = "feed"
    TRAINER = "trainer"


#: The pipeline stages each worker runs, in order. The feed worker runs none: each of its steps
#: only brings the projections (the accepted-corpus feed among them) up to the log.
WORKER_STAGES: dict[WorkerKind, tuple[JobKind, ...]] = {
    WorkerKind.GOVERNANCE: (JobKind.GOVERN,),
    WorkerKind.ANCHOR: (JobKind.ANCHOR,),
    WorkerKind.REWARDS: (JobKind.REWARD,),
    WorkerKind.FEED: (),
    WorkerKind.TRAINER: (JobKind.TRAIN, JobKind.ANCHOR_RUN),
}


@dataclass(slots=True)
class WorkerStep:
    """One worker step: a pipeline step over the worker's stages, with its own job sources."""

    parts: Parts
    kinds: tuple[JobKind, ...]
    sources: dict[JobKind, JobSource]

    @property
    def blocks_when_idle(self) -> bool:
        return any(source.blocks_when_idle for source in self.sources.values())

    def __call__(self) -> tuple[int, PipelineStep]:
        step = self.parts.pipeline.step(self.kinds, sources=self.sources)
        return (step.items if self.kinds else step.events_projected), step

    def close(self) -> None:
        for source in self.sources.values():
            source.close()


def worker_step(kind: WorkerKind, parts: Parts) -> WorkerStep:
    """The step of a ``kind`` worker. Governance workers on a Kafka log share the corpus topic
    through a consumer group instead of reading the outbox."""
    sources: dict[JobKind, JobSource] = {}
    if kind is WorkerKind.GOVERNANCE:
        from ledger.eventlog.kafka import KafkaEventLog

        if isinstance(parts.log, KafkaEventLog):
            from api.consumer_group import ConsumerGroupJobs

            sources[JobKind.GOVERN] = ConsumerGroupJobs(event_log=parts.log, ledger=parts.ledger)
    return WorkerStep(parts=parts, kinds=WORKER_STAGES[kind], sources=sources)


def writer_name(role: str, home: Path) -> str:
    """The name a process writes the event log under: its role and its home, so the same worker
    started again in the same home takes the same name (see ``KafkaLogConfig.writer``)."""
    digest = hashlib.sha256(str(home.resolve()).encode("utf-8")).hexdigest()[:12]
    return f"{role}-{digest}"


def name_writer(parts: Parts, name: str) -> None:
    """Append to a Kafka log under ``name`` (other logs have no writer names)."""
    if not parts.settings.event_log_url.startswith("kafka:"):
        return
    from ledger.eventlog.kafka import KafkaEventLog

    if isinstance(parts.log, KafkaEventLog):
        parts.log.name_writer(name)


class Metrics:
    """Prometheus metrics of one worker (served only when a port is given)."""

    def __init__(self, kind: WorkerKind, port: int | None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

        self.registry = CollectorRegistry()
        self.steps = Counter("byr_worker_steps", "Steps run", registry=self.registry)
        self.items = Counter("byr_worker_items", "Units of work done", registry=self.registry)
        self.errors = Counter("byr_worker_errors", "Steps that raised", registry=self.registry)
        self.lag = Gauge(
            "byr_projection_lag_events",
            "Events in the log not yet projected",
            registry=self.registry,
        )
        self.last_success = Gauge(
            "byr_worker_last_success_timestamp_seconds",
            "Unix time of the last successful step",
            registry=self.registry,
        )
        self.worker_info = Gauge(
            "byr_worker_info", "The worker kind", ["kind"], registry=self.registry
        )
        self.worker_info.labels(kind=kind.value).set(1)
        if port is not None:
            start_http_server(port, registry=self.registry)


def run_worker(
    kind: WorkerKind,
    parts: Parts,
    *,
    stop: threading.Event | None = None,
    idle_wait_s: float = 1.0,
    metrics_port: int | None = None,
    max_steps: int | None = None,
    install_signal_handlers: bool = True,
) -> int:
    """Run ``kind`` until ``stop`` is set (or a signal arrives); returns the items done."""
    stop = stop or threading.Event()
    if install_signal_handlers:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: stop.set())
    parts.require_initialized()
    name_writer(parts, writer_name(kind.value, parts.settings.home))
    step = worker_step(kind, parts)
    metrics = Metrics(kind, metrics_port)
    log.info("worker %s started (home %s)", kind.value, parts.settings.home)
    try:
        total, steps = _loop(
            kind, parts, step, metrics, stop=stop, idle_wait_s=idle_wait_s, max_steps=max_steps
        )
    finally:
        step.close()
    log.info("worker %s stopped after %d steps, %d items", kind.value, steps, total)
    return total


def _loop(
    kind: WorkerKind,
    parts: Parts,
    step: WorkerStep,
    metrics: Metrics,
    *,
    stop: threading.Event,
    idle_wait_s: float,
    max_steps: int | None,
) -> tuple[int, int]:
    """Run steps until stopped; returns (items done, steps run)."""
    total = 0
    steps = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            items, result = step()
        except Exception:
            metrics.errors.inc()
            log.exception("worker %s: step failed; retrying after %.1f s", kind.value, idle_wait_s)
            stop.wait(idle_wait_s)
            continue
        steps += 1
        total += items
        metrics.steps.inc()
        metrics.items.inc(items)
        metrics.last_success.set(time.time())
        head = parts.log.head_position()
        lag = head - min(parts.ledger.runner.positions().values(), default=head)
        metrics.lag.set(lag)
        if items:
            log.info(
                "worker %s: %d done in %.2f s (lag %d) %s",
                kind.value,
                items,
                time.monotonic() - started,
                lag,
                result.to_dict() or {"events_projected": result.events_projected},
            )
        if max_steps is not None and steps >= max_steps:
            break
        if not items and not step.blocks_when_idle:
            parts.log.wait_for(head + 1, timeout=idle_wait_s)
    return total, steps


class TrainerThread:
    """The trainer of ``byr serve`` (``BYR_API_TRAINER``): a thread in the API process that
    performs queued training runs, one at a time.

    It opens parts of its own on the same home (its own log and state connections, like a
    ``byr worker trainer`` process) and runs only ``train`` jobs: anchoring a finished run needs
    the chains, which the app owns, so it calls ``on_run_finished`` and the app anchors. Stopping
    the thread (server shutdown) stops a run in progress at its next step boundary with a
    checkpoint (status ``stopped``; ``POST /v1/training/runs/{id}/resume`` continues it).
    """

    def __init__(
        self,
        settings: LedgerSettings,
        *,
        on_run_finished: Callable[[], None],
        idle_wait_s: float = 1.0,
    ) -> None:
        self.settings = settings
        self.on_run_finished = on_run_finished
        self.idle_wait_s = idle_wait_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """Start the thread if needed and have it look for work now."""
        with self._lock:
            if not self.running and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="byr-trainer", daemon=True)
                self._thread.start()
        self._wake.set()

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        with Parts(self.settings) as parts:
            # Not the server's own name: the two write side by side.
            name_writer(parts, writer_name("server-trainer", self.settings.home))
            training = parts.training
            training.anchors_runs = False
            training.interrupt = self._stop
            log.info("in-process trainer started (home %s)", self.settings.home)
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    step = parts.pipeline.step((JobKind.TRAIN,))
                except Exception:
                    log.exception("in-process trainer: step failed; retrying")
                    self._wake.wait(self.idle_wait_s)
                    continue
                if step.items:
                    try:
                        self.on_run_finished()
                    except Exception:
                        log.exception("in-process trainer: anchoring the finished run failed")
                    continue
                self._wake.wait(self.idle_wait_s)
        log.info("in-process trainer stopped")
