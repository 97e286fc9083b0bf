"""The event log contract every backend implements, with its errors and helpers re-exported.

An :class:`EventLog` stores :class:`~ledger.events.Envelope` objects in *streams* (``batch-<id>``,
``institution-<id>``, ``run-<id>``). Within a stream, envelopes carry consecutive sequence numbers
starting at 1 and a hash chain (``prev_hash`` is the previous envelope's ``hash``). Across streams,
the log gives every envelope a *position*: an integer assigned at commit, strictly increasing in
commit order, whose spacing is backend specific (dense in SQLite, possibly sparse in Kafka).
Positions are only compared and stored; the one arithmetic a consumer does is ``position + 1`` to
resume after an envelope it has processed.

The interface is shaped so a Kafka backend fits behind it: an event's :class:`~ledger.events.Topic`
is its family (one Kafka topic each), the stream id is its key, and the position is the backend's
opaque ordered offset.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

# The errors, ChainVerifier, the integrity report types and the sealing helpers are re-exported:
# backends import everything they build on from this module.
from ledger.eventlog.errors import (
    ConcurrencyConflict,
    EventLogClosed,
    EventLogError,
    EventLogURLError,
)
from ledger.eventlog.integrity import (
    ChainVerifier,
    IntegrityError,
    IntegrityIssue,
    IntegrityProblem,
    IntegrityReport,
    StreamHead,
)
from ledger.eventlog.sealing import SealedFields, fast_envelope_hash, new_event_id, seal_fields
from ledger.events import DomainEvent, Envelope

DEFAULT_POLL_INTERVAL = 0.1
"""Seconds between checks for events appended by *other* processes while waiting."""


@dataclass(frozen=True, slots=True)
class StreamAppend:
    """Events to append to one stream, with the version the writer read it at (0 = new stream)."""

    stream_id: str
    events: Sequence[DomainEvent]
    expected_version: int

    def __post_init__(self) -> None:
        if not self.stream_id:
            raise ValueError("stream_id must not be empty")
        if self.expected_version < 0:
            raise ValueError(f"expected_version must be >= 0, got {self.expected_version}")
        if not self.events:
            raise ValueError(f"no events to append to {self.stream_id!r}")


def validate_appends(appends: Sequence[StreamAppend]) -> None:
    """Reject a batch that names a stream twice (its versions would be ambiguous)."""
    seen: set[str] = set()
    for item in appends:
        if item.stream_id in seen:
            raise ValueError(f"stream {item.stream_id!r} appears twice in one append_many")
        seen.add(item.stream_id)


class EventLog(ABC):
    """An append-only, hash-chained, totally ordered store of envelopes.

    Contracts every backend keeps (checked by ``tests/ledger/eventlog_suite.py``):

    - appends are all-or-nothing, per call, across every stream of the call;
    - a stream's sequence numbers are 1, 2, 3, ... and its hash chain starts at
      :data:`~ledger.events.ZERO_HASH`;
    - optimistic concurrency: of concurrent appends that expect the same version of a stream,
      exactly one succeeds and the others raise :class:`ConcurrencyConflict`;
    - positions are strictly increasing in commit order, and an envelope returned by an append is
      durable once the call returns;
    - an instance may be shared between threads.

    A backend calls ``super().__init__()``, implements the abstract methods, seals with
    :func:`seal_fields` (so every backend hashes alike), calls :meth:`_notify_appended` after each
    commit, checks :meth:`_check_open` on entry, and registers its module under a URL scheme in
    ``ledger.eventlog.BACKENDS``.
    """

    def __init__(self) -> None:
        self._appended = threading.Condition()
        self._append_generation = 0
        self._closed = False

    # -- writing ---------------------------------------------------------------------------------

    def append(
        self, stream_id: str, events: Sequence[DomainEvent], *, expected_version: int
    ) -> list[Envelope]:
        """Append ``events`` to ``stream_id`` whose current version must be ``expected_version``.

        Returns the stored envelopes (with positions). Raises :class:`ConcurrencyConflict` when the
        stream is at another version; nothing is stored then.
        """
        return self.append_many([StreamAppend(stream_id, tuple(events), expected_version)])

    @abstractmethod
    def append_many(self, appends: Sequence[StreamAppend]) -> list[Envelope]:
        """Append to several streams in one all-or-nothing transaction.

        Returns the stored envelopes in position order. If any stream's version differs from its
        ``expected_version``, raises :class:`ConcurrencyConflict` for that stream and stores
        nothing.
        """

    # -- reading ---------------------------------------------------------------------------------

    @abstractmethod
    def read_stream(self, stream_id: str, *, from_sequence: int = 1) -> Iterator[Envelope]:
        """The envelopes of ``stream_id`` with sequence >= ``from_sequence``, in order."""

    @abstractmethod
    def read_all(self, *, from_position: int = 0, limit: int | None = None) -> Iterator[Envelope]:
        """Every envelope with position >= ``from_position`` (inclusive), in position order.

        To resume after an envelope at position ``p``, pass ``from_position=p + 1``. At most
        ``limit`` envelopes are yielded when it is given. Envelopes appended while iterating may or
        may not be included.
        """

    @abstractmethod
    def stream_version(self, stream_id: str) -> int:
        """The sequence number of the stream's last envelope; 0 for a stream with no events."""

    @abstractmethod
    def head_position(self) -> int:
        """The position of the last stored envelope; 0 for an empty log."""

    # -- following -------------------------------------------------------------------------------

    def wait_for(
        self, position: int, *, timeout: float, poll_interval: float = DEFAULT_POLL_INTERVAL
    ) -> bool:
        """Block until an envelope at ``position`` or later is stored, or ``timeout`` elapses.

        Returns whether the log reached ``position``. Appends made through this instance wake the
        waiter at once; appends from other processes are noticed within ``poll_interval``.
        """
        deadline = time.monotonic() + timeout
        while not self._closed:
            # Read the generation before looking at the log, so an append that commits between the
            # look and the wait changes it and the wait returns at once instead of missing it.
            with self._appended:
                generation = self._append_generation
            if self.head_position() >= position:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._appended:
                if generation == self._append_generation and not self._closed:
                    self._appended.wait(min(remaining, poll_interval))
        return False

    def subscribe(
        self,
        *,
        from_position: int = 0,
        stop: threading.Event | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> Iterator[Envelope]:
        """Yield stored envelopes from ``from_position`` on, then new ones as they are appended.

        The iterator returns once ``stop`` is set (checked before every envelope and at least every
        ``poll_interval`` seconds while idle) or the log is closed; without ``stop`` it runs until
        the consumer stops iterating.
        """
        next_position = from_position
        try:
            while not self._closed and not (stop is not None and stop.is_set()):
                for envelope in self.read_all(from_position=next_position):
                    if stop is not None and stop.is_set():
                        return
                    yield envelope
                    if stop is not None and stop.is_set():
                        return
                    assert envelope.position is not None
                    next_position = envelope.position + 1
                self.wait_for(next_position, timeout=poll_interval, poll_interval=poll_interval)
        except EventLogClosed:
            return

    def _notify_appended(self) -> None:
        """Wake waiters of :meth:`wait_for` and :meth:`subscribe`; backends call it after commit."""
        with self._appended:
            self._append_generation += 1
            self._appended.notify_all()

    # -- checking and lifecycle ------------------------------------------------------------------

    @abstractmethod
    def verify_integrity(self) -> IntegrityReport:
        """Re-hash every envelope and check every stream's chain, sequence and recorded head.

        Reports problems instead of raising; call :meth:`IntegrityReport.raise_for_problems` to
        fail on them.
        """

    def close(self) -> None:
        """Release the backend's resources; waiting subscribers return. Idempotent."""
        self._closed = True
        self._notify_appended()

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise EventLogClosed(f"{type(self).__name__} is closed")

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


__all__ = [
    "DEFAULT_POLL_INTERVAL",
    "ChainVerifier",
    "ConcurrencyConflict",
    "EventLog",
    "EventLogClosed",
    "EventLogError",
    "EventLogURLError",
    "IntegrityError",
    "IntegrityIssue",
    "IntegrityProblem",
    "IntegrityReport",
    "SealedFields",
    "StreamAppend",
    "StreamHead",
    "fast_envelope_hash",
    "new_event_id",
    "seal_fields",
    "validate_appends",
]
