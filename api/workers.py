"""Long-running workers: governance, anchoring, rewards, the accepted-corpus feed, training.

Each worker repeats one step of the pipeline until it is asked to stop (SIGTERM or SIGINT finish
the current step, then exit 0). Between steps that found nothing to do it waits for the event log
to move instead of spinning. Every step logs what it did and the projection lag; with
``metrics_port`` the worker also serves Prometheus metrics (steps, items, errors, lag, last
success).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from api.runtime import Runtime

log = logging.getLogger("byr.worker")


class WorkerKind(StrEnum):
    GOVERNANCE = "governance"
    ANCHOR = "anchor"
    REWARDS = "rewards"
    FEED = "feed"
    TRAINER = "trainer"


@dataclass(frozen=True, slots=True)
class StepResult:
    items: int
    """Units of work completed (batches governed, anchors, mints, events projected, runs)."""
    detail: dict[str, Any]


def _step_function(kind: WorkerKind, runtime: Runtime) -> Callable[[], StepResult]:
    if kind is WorkerKind.GOVERNANCE:
        from ledger.eventlog.kafka import KafkaEventLog

        if isinstance(runtime.log, KafkaEventLog):
            # Several governance workers share the corpus topic through a consumer group.
            from api.kafka_workers import KafkaGovernanceStep

            return _KafkaStep(KafkaGovernanceStep(runtime))

        def govern() -> StepResult:
            report = runtime.governance.run_once()
            return StepResult(len(report.governed), report.to_dict())

        return govern
    if kind is WorkerKind.ANCHOR:

        def anchor() -> StepResult:
            report = runtime.dispatch_anchors()
            done = len(report.done) + len(report.recovered) + len(report.failed)
            return StepResult(done, report.to_dict())

        return anchor
    if kind is WorkerKind.REWARDS:

        def reward() -> StepResult:
            report = runtime.dispatch_rewards()
            return StepResult(len(report.done) + len(report.recovered), report.to_dict())

        return reward
    if kind is WorkerKind.FEED:

        def feed() -> StepResult:
            read = runtime.ledger.sync()
            return StepResult(read, {"events_projected": read})

        return feed
    if kind is WorkerKind.TRAINER:

        def train() -> StepResult:
            done = runtime.training.run_pending_training()
            return StepResult(len(done), {"runs": done})

        return train
    raise ValueError(f"unknown worker kind {kind}")


class _KafkaStep:
    """Adapts a Kafka consumer step (which blocks while idle and must leave its group)."""

    blocks_when_idle = True

    def __init__(self, step: Any) -> None:
        self._step = step

    def __call__(self) -> StepResult:
        items, detail = self._step()
        return StepResult(items, detail)

    def close(self) -> None:
        self._step.close()


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
    runtime: Runtime,
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
    runtime.require_initialized()
    step = _step_function(kind, runtime)
    metrics = Metrics(kind, metrics_port)
    log.info("worker %s started (home %s)", kind.value, runtime.settings.home)
    try:
        total, steps = _loop(
            kind, runtime, step, metrics, stop=stop, idle_wait_s=idle_wait_s, max_steps=max_steps
        )
    finally:
        close = getattr(step, "close", None)
        if close is not None:
            close()
    log.info("worker %s stopped after %d steps, %d items", kind.value, steps, total)
    return total


def _loop(
    kind: WorkerKind,
    runtime: Runtime,
    step: Callable[[], StepResult],
    metrics: Metrics,
    *,
    stop: threading.Event,
    idle_wait_s: float,
    max_steps: int | None,
) -> tuple[int, int]:
    """Run steps until stopped; returns (items done, steps run)."""
    total = 0
    steps = 0
    blocks_when_idle = bool(getattr(step, "blocks_when_idle", False))
    while not stop.is_set():
        started = time.monotonic()
        try:
            result = step()
        except Exception:
            metrics.errors.inc()
            log.exception("worker %s: step failed; retrying after %.1f s", kind.value, idle_wait_s)
            stop.wait(idle_wait_s)
            continue
        steps += 1
        total += result.items
        metrics.steps.inc()
        metrics.items.inc(result.items)
        metrics.last_success.set(time.time())
        head = runtime.log.head_position()
        lag = head - min(runtime.ledger.runner.positions().values(), default=head)
        metrics.lag.set(lag)
        if result.items:
            log.info(
                "worker %s: %d done in %.2f s (lag %d) %s",
                kind.value,
                result.items,
                time.monotonic() - started,
                lag,
                result.detail,
            )
        if max_steps is not None and steps >= max_steps:
            break
        if not result.items and not blocks_when_idle:
            runtime.log.wait_for(head + 1, timeout=idle_wait_s)
    return total, steps
