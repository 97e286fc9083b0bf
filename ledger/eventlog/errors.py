"""The errors of the event log: the base class every backend raises from, and the common cases.

:class:`~ledger.eventlog.integrity.IntegrityError` (a failed verification) lives with the
verification report it carries. Both are re-exported by :mod:`ledger.eventlog.base`.
"""

from __future__ import annotations

from ledger.errors import LedgerError


class EventLogError(LedgerError):
    """Base class of every error raised by an event log backend."""


class EventLogClosed(EventLogError):
    """The log was used after :meth:`EventLog.close`."""


class EventLogURLError(EventLogError, ValueError):
    """An event log URL names an unknown scheme or is malformed."""


class ConcurrencyConflict(EventLogError):
    """A stream's current version differs from the version the writer expected.

    The writer read the stream at ``expected`` and someone else appended first (the stream is now at
    ``actual``): reload the stream, re-decide, and retry with the new version.
    """

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"stream {stream_id!r} is at version {actual}, the writer expected {expected}"
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual

    def __reduce__(self) -> tuple[type[ConcurrencyConflict], tuple[str, int, int]]:
        return (ConcurrencyConflict, (self.stream_id, self.expected, self.actual))
