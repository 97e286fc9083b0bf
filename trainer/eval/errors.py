"""Errors raised by :mod:`trainer.eval`; all derive from :class:`trainer.errors.TrainerError`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trainer.errors import TrainerError


class EvaluationError(TrainerError):
    """Base class of every error raised by :mod:`trainer.eval`."""


@dataclass(frozen=True)
class BenchmarkIssue:
    """One problem in a benchmark file. ``line`` is 0 for the manifest or a whole file; the
    message never quotes the offending value (benchmark files may be edited by hand)."""

    file: str
    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        if self.field:
            where += f": field '{self.field}'"
        return f"{where}: {self.message}"


class BenchmarkError(EvaluationError, ValueError):
    """A benchmark cannot be loaded; :attr:`issues` lists every located problem."""

    def __init__(self, issues: Sequence[BenchmarkIssue]) -> None:
        self.issues = tuple(issues)
        shown = "; ".join(str(i) for i in self.issues[:20])
        more = f" (and {len(self.issues) - 20} more)" if len(self.issues) > 20 else ""
        super().__init__(f"invalid benchmark: {shown}{more}")


class SandboxUnavailable(EvaluationError):
    """Code cannot be run at all (no interpreter, no temporary directory)."""
