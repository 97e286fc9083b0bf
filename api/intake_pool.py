"""Reading (and recording) submissions in a worker process, so that the server's interpreter stays
free for requests.

Intake (validation and PII desensitization with spaCy) is CPU-bound Python: run in a thread of the
HTTP server it holds the GIL most of the time, and every other request waits for it. Recording a
large batch is too (salting and hashing each record, the event's canonical JSON, the projection
rows). The pool runs this in a separate process (``spawn``ed, with its own PII pipelines, built
once); the received bytes travel to it through a pipe, in memory, and nothing unredacted is
written to disk on the way.

Two modes:

- *read*: the worker runs intake only and the desensitized
  :class:`~ingest.intake.IntakeResult` travels back; the server records it. Used when the event
  log is not shared safely between processes of the home (Kafka: one writer identity per log).
- *record* (``settings`` given; the embedded SQLite log, which serializes writers of any process
  with its write lock): the worker opens the same home, reads **and** records the batch, and
  sends back only the submission document
  (:class:`~api.services.submission.SubmissionReport`). The server then catches its projections
  up, which reads nothing: catch-up positions live in the shared state database and each event
  is applied once per projection (:mod:`ledger.projections.base`).
"""

from __future__ import annotations

import asyncio
import atexit
import copyreg
import multiprocessing
import types
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from api.services.submission import SubmissionReport, SubmissionService
    from ingest.banks import ConversionOptions
    from ingest.intake import IntakeLimits, IntakeResult
    from ingest.records import Desensitizer
    from ledger.settings import LedgerSettings


def _mappingproxy(items: dict[Any, Any]) -> types.MappingProxyType[Any, Any]:
    return types.MappingProxyType(items)


def _reduce_mappingproxy(proxy: types.MappingProxyType[Any, Any]) -> tuple[Any, ...]:
    return (_mappingproxy, (dict(proxy),))


# Intake results hold read-only mappings (redaction counts); let them cross the process boundary.
copyreg.pickle(types.MappingProxyType, _reduce_mappingproxy)

_desensitizer: Desensitizer | None = None
_service: SubmissionService | None = None
"""The home's submission service, in a worker that records (``None``: it only reads)."""


def _start_worker(settings: LedgerSettings | None = None) -> None:
    global _desensitizer, _service
    from api.environment import apply_process_defaults
    from ingest.governance.pii import PiiRedactor

    apply_process_defaults()
    redactor = PiiRedactor()
    _desensitizer = redactor
    if settings is not None:
        _service = _recording_service(settings, redactor)


def _recording_service(settings: LedgerSettings, redactor: Desensitizer) -> SubmissionService:
    """The submission service of the home of ``settings``, built from its storage alone: the
    worker never talks to a chain, and importing what does (web3) would slow its start by
    seconds."""
    from api.services.submission import SubmissionService, intake_limits
    from ingest.governance.policy import load_policy
    from ledger.application import CorpusLedger
    from ledger.eventlog import open_event_log
    from ledger.projections.base import ProjectionStore
    from ledger.recordstore.open import open_record_store

    event_log = open_event_log(settings.event_log_url)
    store = ProjectionStore(settings.state_path)
    records = open_record_store(settings)
    for closer in (event_log.close, store.close, records.close):
        atexit.register(closer)
    ledger = CorpusLedger(log=event_log, store=store, records=records)
    ledger.sync()

    def no_pipeline() -> list[dict[str, Any]]:
        raise RuntimeError("the intake worker records only; the server runs the pipeline")

    return SubmissionService(
        ledger=ledger,
        limits=intake_limits(settings),
        desensitizer=lambda: redactor,
        drain=no_pipeline,
        policy_version=lambda: load_policy().version,
    )


def _ready(load_models: bool) -> bool:
    if load_models:
        assert _desensitizer is not None  # set by the initializer
        for language in ("en", "zh"):
            _desensitizer.redact("warm-up 预热", language=language)
    return True


def _read(
    data: bytes,
    source_name: str,
    institution_id: str,
    discipline: str | None,
    limits: IntakeLimits,
    conversion: ConversionOptions | None = None,
) -> IntakeResult:
    from ingest.intake import read_batch_bytes

    assert _desensitizer is not None  # set by the initializer
    return read_batch_bytes(
        data,
        source_name=source_name,
        institution_id=institution_id,
        default_discipline=discipline,
        limits=limits,
        desensitizer=_desensitizer,
        conversion=conversion,
    )


def _record(
    data: bytes,
    source_name: str,
    institution_id: str,
    discipline: str | None,
    conversion: ConversionOptions | None,
    strict: bool,
    submitted_by: str | None,
) -> SubmissionReport:
    assert _service is not None  # set by the initializer
    outcome = _service.submit_bytes(
        data,
        source_name=source_name,
        institution_id=institution_id,
        discipline=discipline,
        strict=strict,
        submitted_by=submitted_by,
        conversion=conversion,
    )
    return outcome.report()


class IntakePool:
    """Worker processes that read submissions, or read and record them when ``settings`` (of a
    home whose event log is SQLite) are given; started on first use."""

    def __init__(self, *, processes: int = 1, settings: LedgerSettings | None = None) -> None:
        self._processes = processes
        self._settings = settings
        self._executor: ProcessPoolExecutor | None = None

    def start(self, *, load_models: bool = False) -> Future[bool]:
        """Start a worker now (its imports and the home's storage take seconds), so that the
        first submission does not wait for it; with ``load_models`` it loads the PII pipelines
        too. Returns at once: the future is done when the worker is ready."""
        return self._pool().submit(_ready, load_models)

    @property
    def records(self) -> bool:
        """Whether the workers record the batches they read (:meth:`submit`)."""
        return self._settings is not None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self._processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self._settings,),
            )
        return self._executor

    async def submit(
        self,
        data: bytes,
        *,
        source_name: str,
        institution_id: str,
        discipline: str | None,
        conversion: ConversionOptions | None,
        strict: bool,
        submitted_by: str | None,
    ) -> SubmissionReport:
        """Read and record ``data`` as one batch in a worker (only when :attr:`records`); the
        ledger's errors raised there (an unknown or inactive institution) are raised here."""
        if not self.records:
            raise RuntimeError("this pool reads only; record what it reads in the server")
        future = self._pool().submit(
            _record,
            data,
            source_name,
            institution_id,
            discipline,
            conversion,
            strict,
            submitted_by,
        )
        return await asyncio.wrap_future(future)

    async def read(
        self,
        data: bytes,
        *,
        source_name: str,
        institution_id: str,
        discipline: str | None,
        limits: IntakeLimits,
        conversion: ConversionOptions | None = None,
    ) -> IntakeResult:
        """Intake of ``data`` in the worker (``conversion``: a question bank's column mapping
        and sheet); exceptions raised there (an unreadable workbook) are raised here."""
        future = self._pool().submit(
            _read, data, source_name, institution_id, discipline, limits, conversion
        )
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
