"""Reading submissions in a worker process, so that intake never holds the server's interpreter.

Intake (validation and PII desensitization with spaCy) is CPU-bound Python: run in a thread of the
HTTP server it holds the GIL most of the time, and every other request waits for it. The pool runs
it in a separate process (``spawn``ed, with its own PII pipelines, built once); the received bytes
travel to it and the desensitized :class:`~ingest.intake.IntakeResult` travels back through a pipe,
in memory: nothing is written to disk on the way.
"""

from __future__ import annotations

import asyncio
import copyreg
import multiprocessing
import types
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ingest.banks import ConversionOptions
    from ingest.intake import IntakeLimits, IntakeResult
    from ingest.records import Desensitizer


def _mappingproxy(items: dict[Any, Any]) -> types.MappingProxyType[Any, Any]:
    return types.MappingProxyType(items)


def _reduce_mappingproxy(proxy: types.MappingProxyType[Any, Any]) -> tuple[Any, ...]:
    return (_mappingproxy, (dict(proxy),))


# Intake results hold read-only mappings (redaction counts); let them cross the process boundary.
copyreg.pickle(types.MappingProxyType, _reduce_mappingproxy)

_desensitizer: Desensitizer | None = None


def _start_worker() -> None:
    global _desensitizer
    from api.environment import apply_process_defaults
    from ingest.governance.pii import PiiRedactor

    apply_process_defaults()
    _desensitizer = PiiRedactor()


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


class IntakePool:
    """One worker process that reads submissions (started on first use)."""

    def __init__(self, *, processes: int = 1) -> None:
        self._processes = processes
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self._processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
            )
        return self._executor

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
