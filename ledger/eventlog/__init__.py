"""Event log backends behind one interface, opened from a URL.

``open_event_log("sqlite:///var/events.db")`` (relative path) or ``"sqlite:////abs/events.db"``
(absolute), ``"memory://"``. A backend is a module of this package with an ``open_url(url) ->
EventLog`` function, listed in :data:`BACKENDS` under its URL scheme; it is imported only when a URL
names it, so optional client libraries (kafka-python) load only when used.
"""

from __future__ import annotations

import importlib
from typing import Protocol, cast
from urllib.parse import urlsplit

from ledger.eventlog.base import (
    ConcurrencyConflict,
    EventLog,
    EventLogClosed,
    EventLogError,
    EventLogURLError,
    IntegrityError,
    IntegrityIssue,
    IntegrityProblem,
    IntegrityReport,
    StreamAppend,
    StreamHead,
)

BACKENDS: dict[str, str] = {
    "sqlite": "ledger.eventlog.sqlite",
    "memory": "ledger.eventlog.memory",
    "kafka": "ledger.eventlog.kafka",
}
"""URL scheme -> module that provides ``open_url(url: str) -> EventLog``."""


class _Backend(Protocol):
    def open_url(self, url: str) -> EventLog: ...


def open_event_log(url: str) -> EventLog:
    """Open the event log ``url`` names; raises :class:`EventLogURLError` for an unknown scheme."""
    scheme = urlsplit(url).scheme
    module_name = BACKENDS.get(scheme)
    if module_name is None:
        known = ", ".join(f"{s}://" for s in sorted(BACKENDS))
        raise EventLogURLError(f"unknown event log URL scheme in {url!r}; known: {known}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise EventLogURLError(
            f"the {scheme}:// event log backend is not available ({module_name} is missing)"
        ) from exc
    return cast(_Backend, module).open_url(url)


__all__ = [
    "BACKENDS",
    "ConcurrencyConflict",
    "EventLog",
    "EventLogClosed",
    "EventLogError",
    "EventLogURLError",
    "IntegrityError",
    "IntegrityIssue",
    "IntegrityProblem",
    "IntegrityReport",
    "StreamAppend",
    "StreamHead",
    "open_event_log",
]
