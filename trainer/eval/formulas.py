"""Symbolic equivalence of a derived formula with the expected one (``math-verify``).

math-verify enforces its own time limit with Unix signals, which is wrong inside threads and
servers; it is called here with ``timeout_seconds=None`` in a separate worker process, and the
time limit is enforced from outside: a check that runs past it kills the worker (a fresh one
starts for the next check). The worker also runs under an address-space limit, so a check that
tries to build a gigantic expression fails instead of exhausting the host.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType

from trainer.eval.errors import EvaluationError

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_MEMORY_BYTES = 2 * 1024**3
_START_TIMEOUT_S = 120.0
_WORKER = Path(__file__).with_name("formula_worker.py")


class FormulaOutcome(StrEnum):
    EQUIVALENT = "equivalent"
    NOT_EQUIVALENT = "not_equivalent"
    NO_EXPRESSION = "no_expression"
    TIMEOUT = "timeout"
    ERROR = "error"


@dataclass(frozen=True)
class FormulaResult:
    outcome: FormulaOutcome
    seconds: float

    @property
    def passed(self) -> bool:
        return self.outcome is FormulaOutcome.EQUIVALENT


class FormulaChecker:
    """Checks answers against expected expressions in a killable worker process.

    Use as a context manager (or call :meth:`close`); one checker serves many checks. Not
    thread-safe: give each thread its own checker.
    """

    def __init__(
        self,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        memory_bytes: int = DEFAULT_MEMORY_BYTES,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.timeout_s = timeout_s
        self.memory_bytes = memory_bytes
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> FormulaChecker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _start(self) -> subprocess.Popen[str]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._stop()
        process = subprocess.Popen(
            [sys.executable, "-I", str(_WORKER), str(self.memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            encoding="utf-8",
            bufsize=1,
            start_new_session=True,
        )
        self._process = process
        if _read_line(process, _START_TIMEOUT_S) is None:
            self._stop()
            raise EvaluationError("the formula checker process did not start")
        return process

    def check(self, *, expected: str, answer: str) -> FormulaResult:
        """Whether ``answer`` (free text with LaTeX, ideally a final ``\\boxed{}``) states an
        expression equivalent to ``expected``; a check past :attr:`timeout_s` is ``timeout``."""
        process = self._start()
        assert process.stdin is not None
        started = time.monotonic()
        try:
            process.stdin.write(json.dumps({"expected": expected, "answer": answer}) + "\n")
            process.stdin.flush()
        except (BrokenPipeError, OSError):
            self._stop()
            return FormulaResult(FormulaOutcome.ERROR, time.monotonic() - started)
        line = _read_line(process, self.timeout_s)
        elapsed = time.monotonic() - started
        if line is None:
            timed_out = process.poll() is None
            self._stop()
            outcome = FormulaOutcome.TIMEOUT if timed_out else FormulaOutcome.ERROR
            return FormulaResult(outcome, elapsed)
        try:
            outcome = FormulaOutcome(json.loads(line)["outcome"])
        except (ValueError, KeyError, TypeError):
            self._stop()
            outcome = FormulaOutcome.ERROR
        return FormulaResult(outcome, elapsed)

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def close(self) -> None:
        """Stop the worker process."""
        self._stop()


def _read_line(process: subprocess.Popen[str], timeout_s: float) -> str | None:
    """One line from the worker within ``timeout_s``, or ``None`` (timeout or worker gone)."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            return None
    line = process.stdout.readline()
    return line or None
