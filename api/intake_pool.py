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
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from api.composition import Parts
    from api.services.submission import SubmissionReport
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
_parts: Parts | None = None
"""The home's parts, in a worker that records (``None``: it only reads)."""


def _start_worker(settings: LedgerSettings | None = None) -> None:
    global _desensitizer, _parts
    from api.environment import apply_process_defaults
    from ingest.governance.pii import PiiRedactor

    apply_process_defaults()
    if settings is None:
        _desensitizer = PiiRedactor()
        return
    from api.composition import Parts

    _parts = Parts(settings)
    atexit.register(_parts.close)
    _desensitizer = _parts.redactor


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
    assert _parts is not None  # set by the initializer
    service = _parts.submission
    outcome = service.submit_bytes(
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
