"""Evaluations started over HTTP (``POST /v1/evaluations``), answered ``202 Accepted``.

An evaluation takes from seconds (tiny models, one item per cell) to hours (SmolLM2 on the whole
benchmark), so the request only queues it; a thread of the server performs the queued ones one at
a time, with parts of its own on the same home (its own log and state connections, as the
in-process trainer has), and the status URL ``/v1/evaluations/jobs/{id}`` says ``queued``,
``running`` (with the runner's progress), ``done`` (with the report id) or ``failed`` (with the
error the request would have answered). Jobs live in the server's memory: a server that stops
loses the queued ones and stops the running one at its next item (the evaluation cache keeps
what was scored, so starting it again resumes). The server keeps the last :data:`KEEP` jobs.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from api.composition import Parts
from api.errors import status_and_body
from api.workers import name_writer, writer_name
from ledger.settings import LedgerSettings

if TYPE_CHECKING:
    from api.services.evaluation import EvaluationRequest
    from trainer.eval.results import Progress

KEEP = 200

log = logging.getLogger("byr.evaluations")


class EvaluationJobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class EvaluationInterrupted(Exception):
    """The server stopped while the evaluation ran (raised from its progress callback)."""


@dataclass(slots=True)
class EvaluationJob:
    job_id: str
    requested_by: str
    request: EvaluationRequest
    status: EvaluationJobStatus = EvaluationJobStatus.QUEUED
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    started_at: str | None = None
    finished_at: str | None = None
    progress: dict[str, Any] | None = None
    """The runner's last progress report: model, stage, done, total."""
    report_id: str | None = None
    http_status: int | None = None
    """What a synchronous request would have answered (201, or the error's status)."""
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status.value,
            "models": list(self.request.models),
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "progress": self.progress,
            "report_id": self.report_id,
            "http_status": self.http_status,
            "error": self.error,
            "status_url": f"/v1/evaluations/jobs/{self.job_id}",
            "evaluation_url": (
                f"/v1/evaluations/{self.report_id}" if self.report_id is not None else None
            ),
        }


class EvaluationJobs:
    """The evaluation jobs of one server process and the thread that performs them.

    The thread starts on the first job and keeps its parts open until :meth:`stop`."""

    def __init__(self, settings: LedgerSettings) -> None:
        self.settings = settings
        self._jobs: OrderedDict[str, EvaluationJob] = OrderedDict()
        self._queue: queue.Queue[EvaluationJob | None] = queue.Queue()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, request: EvaluationRequest, *, requested_by: str) -> EvaluationJob:
        job = EvaluationJob(
            job_id="evj_" + secrets.token_hex(10), requested_by=requested_by, request=request
        )
        with self._lock:
            self._jobs[job.job_id] = job
            while len(self._jobs) > KEEP:
                self._jobs.popitem(last=False)
            if (self._thread is None or not self._thread.is_alive()) and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="byr-evaluator", daemon=True)
                self._thread.start()
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> EvaluationJob | None:
        with self._lock:
            return self._jobs.get(job_id)

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        with Parts(self.settings) as parts:
            # Not the server's own name: the two write side by side.
            name_writer(parts, writer_name("server-evaluator", self.settings.home))
            while not self._stop.is_set():
                job = self._queue.get()
                if job is None:
                    break
                self._perform(parts, job)
        # what was still queued when the server stopped
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                self._finish(job, EvaluationInterrupted("the server stopped before it ran"))

    def _perform(self, parts: Parts, job: EvaluationJob) -> None:
        with self._lock:
            job.status = EvaluationJobStatus.RUNNING
            job.started_at = datetime.now(UTC).isoformat()

        def progress(p: Progress) -> None:
            if self._stop.is_set():
                raise EvaluationInterrupted("the server stopped during the evaluation")
            with self._lock:
                job.progress = {
                    "model": p.model,
                    "stage": p.stage,
                    "done": p.done,
                    "total": p.total,
                }

        try:
            result = parts.evaluation.evaluate(job.request, progress=progress)
        except Exception as exc:  # the job's outcome, answered on its status URL
            self._finish(job, exc)
            return
        with self._lock:
            job.status = EvaluationJobStatus.DONE
            job.http_status = 201
            job.report_id = str(result["report_id"])
            job.finished_at = datetime.now(UTC).isoformat()

    def _finish(self, job: EvaluationJob, exc: Exception) -> None:
        if isinstance(exc, EvaluationInterrupted):
            status, body = 503, {"error": "EvaluationInterrupted", "message": str(exc)}
        else:
            status, body = status_and_body(exc)
        with self._lock:
            job.status = EvaluationJobStatus.FAILED
            job.http_status = status
            job.error = body
            job.finished_at = datetime.now(UTC).isoformat()
