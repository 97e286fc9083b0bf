"""Tamper evidence: what a verification found, the error that reports it, and the hash-chain
verifier backends share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from ledger.eventlog.errors import EventLogError
from ledger.events import ZERO_HASH, Envelope


@dataclass(frozen=True, slots=True)
class StreamHead:
    """The last stored envelope of a stream, as the log records it."""

    version: int
    last_hash: str


class IntegrityIssue(StrEnum):
    """What kind of tampering or loss a verification found."""

    HASH_MISMATCH = "hash_mismatch"
    """An envelope's stored hash is not the hash of its content: the row was edited."""
    UNREADABLE = "unreadable"
    """A stored row cannot be turned back into an envelope at all."""
    SEQUENCE_GAP = "sequence_gap"
    """A stream's sequence numbers are not 1, 2, 3, ...: an envelope was deleted or reordered."""
    BROKEN_LINK = "broken_link"
    """An envelope's ``prev_hash`` is not the previous envelope's hash."""
    POSITION_GAP = "position_gap"
    """Positions that the backend hands out densely are missing: an envelope was deleted."""
    HEAD_MISMATCH = "head_mismatch"
    """A stream's recorded head (version and last hash) disagrees with its stored envelopes."""


@dataclass(frozen=True, slots=True)
class IntegrityProblem:
    """One problem found by :meth:`EventLog.verify_integrity`."""

    issue: IntegrityIssue
    detail: str
    stream_id: str | None = None
    sequence: int | None = None
    position: int | None = None

    def __str__(self) -> str:
        where = []
        if self.stream_id is not None:
            where.append(f"stream={self.stream_id}")
        if self.sequence is not None:
            where.append(f"sequence={self.sequence}")
        if self.position is not None:
            where.append(f"position={self.position}")
        return f"{self.issue.value} ({', '.join(where)}): {self.detail}"


@dataclass(frozen=True, slots=True)
class IntegrityReport:
    """Outcome of a full verification: how much was checked and every problem found."""

    events_checked: int
    streams_checked: int
    problems: tuple[IntegrityProblem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def issues(self) -> set[IntegrityIssue]:
        """The distinct kinds of problem found."""
        return {p.issue for p in self.problems}

    def raise_for_problems(self) -> None:
        """Raise :class:`IntegrityError` unless the log verified clean."""
        if self.problems:
            raise IntegrityError(self)


class IntegrityError(EventLogError):
    """The stored log is not what was appended (see :attr:`report`)."""

    def __init__(self, report: IntegrityReport) -> None:
        shown = "; ".join(str(p) for p in report.problems[:5])
        more = len(report.problems) - 5
        super().__init__(
            f"event log integrity check found {len(report.problems)} problem(s): {shown}"
            + (f" (+{more} more)" if more > 0 else "")
        )
        self.report = report


@dataclass(slots=True)
class _StreamCursor:
    sequence: int
    last_hash: str


@dataclass(slots=True)
class ChainVerifier:
    """Checks envelopes fed in position order; shared by backends' :meth:`verify_integrity`.

    Feed every stored envelope with :meth:`check` (in position order), report rows that could not
    be read with :meth:`add_problem`, then call :meth:`finish` with the stream heads the backend
    recorded at write time. ``dense_positions`` says whether the backend hands out positions without
    gaps, so that a missing position means a deleted envelope.
    """

    dense_positions: bool
    problems: list[IntegrityProblem] = field(default_factory=list)
    events_checked: int = 0
    _streams: dict[str, _StreamCursor] = field(default_factory=dict)
    _last_position: int = 0

    def add_problem(self, problem: IntegrityProblem) -> None:
        self.problems.append(problem)

    def skip_position(self, position: int) -> None:
        """Account for a stored row at ``position`` that could not be read (already reported)."""
        self._check_position(position)

    def check(self, envelope: Envelope) -> None:
        self.events_checked += 1
        position = envelope.position
        if position is not None:
            self._check_position(position)
        stream_id = envelope.stream_id
        if envelope.computed_hash() != envelope.hash:
            self.problems.append(
                IntegrityProblem(
                    IntegrityIssue.HASH_MISMATCH,
                    "stored hash does not match the envelope's content",
                    stream_id=stream_id,
                    sequence=envelope.sequence,
                    position=position,
                )
            )
        cursor = self._streams.get(stream_id)
        expected_sequence = 1 if cursor is None else cursor.sequence + 1
        expected_prev = ZERO_HASH if cursor is None else cursor.last_hash
        if envelope.sequence != expected_sequence:
            self.problems.append(
                IntegrityProblem(
                    IntegrityIssue.SEQUENCE_GAP,
                    f"expected sequence {expected_sequence}, found {envelope.sequence}",
                    stream_id=stream_id,
                    sequence=envelope.sequence,
                    position=position,
                )
            )
        if envelope.prev_hash != expected_prev:
            self.problems.append(
                IntegrityProblem(
                    IntegrityIssue.BROKEN_LINK,
                    "prev_hash does not match the previous envelope of the stream",
                    stream_id=stream_id,
                    sequence=envelope.sequence,
                    position=position,
                )
            )
        self._streams[stream_id] = _StreamCursor(envelope.sequence, envelope.hash)

    def _check_position(self, position: int) -> None:
        if position <= self._last_position:
            self.problems.append(
                IntegrityProblem(
                    IntegrityIssue.POSITION_GAP,
                    f"position {position} does not follow {self._last_position}",
                    position=position,
                )
            )
        elif self.dense_positions and position != self._last_position + 1:
            self.problems.append(
                IntegrityProblem(
                    IntegrityIssue.POSITION_GAP,
                    f"positions {self._last_position + 1}..{position - 1} are missing",
                    position=position,
                )
            )
        self._last_position = max(self._last_position, position)

    def finish(
        self, *, heads: Mapping[str, StreamHead], issued_position: int | None = None
    ) -> IntegrityReport:
        """Compare what was read with the recorded ``heads`` and build the report.

        ``issued_position`` is the highest position the backend ever handed out (when it knows it):
        if it is beyond the last stored envelope, envelopes at the end of the log were deleted.
        """
        for stream_id, head in heads.items():
            cursor = self._streams.get(stream_id)
            if cursor is None:
                self.problems.append(
                    IntegrityProblem(
                        IntegrityIssue.HEAD_MISMATCH,
                        f"head says version {head.version} but the stream has no events",
                        stream_id=stream_id,
                    )
                )
            elif cursor.sequence != head.version or cursor.last_hash != head.last_hash:
                self.problems.append(
                    IntegrityProblem(
                        IntegrityIssue.HEAD_MISMATCH,
                        f"head says version {head.version}, stored events end at "
                        f"{cursor.sequence}"
                        + ("" if cursor.last_hash == head.last_hash else " with another hash"),
                        stream_id=stream_id,
                        sequence=cursor.sequence,
                    )
                )
        for stream_id in self._streams.keys() - heads.keys():
            self.problems.append(
                IntegrityProblem(
                    IntegrityIssue.HEAD_MISMATCH,
                    "stream has events but no recorded head",
                    stream_id=stream_id,
                )
            )
        if issued_position is not None and issued_position > self._last_position:
            self.problems.append(
                IntegrityProblem(
                    IntegrityIssue.POSITION_GAP,
                    f"positions {self._last_position + 1}..{issued_position} were issued "
                    "but are missing",
                    position=issued_position,
                )
            )
        return IntegrityReport(
            events_checked=self.events_checked,
            streams_checked=len(self._streams),
            problems=tuple(self.problems),
        )
