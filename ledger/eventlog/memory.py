"""The reference event log: plain Python lists behind one lock, gone when the process ends.

It defines the behaviour the other backends are tested against (the same shared suite runs on
all of them) and serves tests and demos that need no durability.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from ledger.eventlog.base import (
    ChainVerifier,
    ConcurrencyConflict,
    EventLog,
    EventLogURLError,
    IntegrityReport,
    StreamAppend,
    StreamHead,
    seal_fields,
    validate_appends,
)
from ledger.events import ZERO_HASH, Envelope


class MemoryEventLog(EventLog):
    """:class:`EventLog` in memory; positions are 1, 2, 3, ... in append order."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()
        self._envelopes: list[Envelope] = []
        self._streams: dict[str, list[Envelope]] = {}

    def append_many(self, appends: Sequence[StreamAppend]) -> list[Envelope]:
        validate_appends(appends)
        self._check_open()
        with self._lock:
            for item in appends:
                actual = len(self._streams.get(item.stream_id, ()))
                if actual != item.expected_version:
                    raise ConcurrencyConflict(item.stream_id, item.expected_version, actual)
            stored: list[Envelope] = []
            position = len(self._envelopes)
            for item in appends:
                stream = self._streams.get(item.stream_id, [])
                sealed = seal_fields(
                    item.events,
                    stream_id=item.stream_id,
                    after_sequence=item.expected_version,
                    prev_hash=stream[-1].hash if stream else ZERO_HASH,
                )
                for fields in sealed:
                    position += 1
                    stored.append(Envelope(*fields, position))
            # Sealing may fail (an unserializable payload); only mutate once all succeeded.
            for envelope in stored:
                self._envelopes.append(envelope)
                self._streams.setdefault(envelope.stream_id, []).append(envelope)
        self._notify_appended()
        return stored

    def read_stream(self, stream_id: str, *, from_sequence: int = 1) -> Iterator[Envelope]:
        self._check_open()
        with self._lock:
            stream = list(self._streams.get(stream_id, ()))
        yield from stream[max(from_sequence, 1) - 1 :]

    def read_all(self, *, from_position: int = 0, limit: int | None = None) -> Iterator[Envelope]:
        self._check_open()
        with self._lock:
            start = max(from_position, 1) - 1
            stop = None if limit is None else start + max(limit, 0)
            selected = self._envelopes[start:stop]
        yield from selected

    def stream_version(self, stream_id: str) -> int:
        self._check_open()
        with self._lock:
            return len(self._streams.get(stream_id, ()))

    def head_position(self) -> int:
        self._check_open()
        with self._lock:
            return len(self._envelopes)

    def verify_integrity(self) -> IntegrityReport:
        self._check_open()
        with self._lock:
            envelopes = list(self._envelopes)
            heads = {
                stream_id: StreamHead(len(stream), stream[-1].hash)
                for stream_id, stream in self._streams.items()
            }
        verifier = ChainVerifier(dense_positions=True)
        for envelope in envelopes:
            verifier.check(envelope)
        return verifier.finish(heads=heads, issued_position=len(envelopes))


def open_url(url: str) -> MemoryEventLog:
    """Open ``memory://``: a fresh, empty log on every call."""
    if url.rstrip("/") != "memory:":
        raise EventLogURLError(f"a memory event log URL is exactly 'memory://', got {url!r}")
    return MemoryEventLog()
