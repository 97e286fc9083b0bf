"""The ingest package's error tree.

Problems *inside* a submitted batch (a bad line, a missing field) are not exceptions: they are
reported as :class:`ingest.records.IntakeIssue` values so that one bad line never hides the others.
Exceptions are for callers that misuse the API (an invalid institution id) or for a batch that
cannot be read at all.
"""

from __future__ import annotations


class IngestError(Exception):
    """Base class of every error raised by the ingest package."""


class IntakeError(IngestError):
    """Base class of errors raised while reading a submitted batch."""


class BatchUnreadable(IntakeError):
    """The batch file could not be opened or read (missing, a directory, no permission)."""


class InvalidIntakeArgument(IntakeError, ValueError):
    """A caller passed an argument that intake cannot work with (bad institution id, unknown default
    discipline, inconsistent limits)."""
