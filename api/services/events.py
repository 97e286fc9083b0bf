"""The event log as the console's overview watches it: summaries of events, and how many records
each pipeline stage moved over a recent window.

Both read the event log itself (never the projections), so they are exact at any position and
need no catch-up. A summary names an event (type, stream, position, time) and the institution and
batch it concerns, never its payload: payloads hold manifests, intake problems and erasure
reasons, and the texts and salts live elsewhere. An event is a contributor's when it concerns its
institution, directly (``institution_id`` in the payload) or through its batch; the other roles
see every summary.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from api.services.keys import Principal, Role
from ledger.errors import InvalidRequest
from ledger.eventlog.base import EventLog
from ledger.events import (
    BatchAnchored,
    BatchGoverned,
    ContributionRewarded,
    CorpusBatchSubmitted,
    Envelope,
)
from ledger.ids import batch_stream

MAX_RECENT = 200
"""The most past events ``recent`` asks a stream to start with."""
MIN_WINDOW_SECONDS = 10
MAX_WINDOW_SECONDS = 86_400
DEFAULT_WINDOW_SECONDS = 300
PAGE = 200
"""Envelopes one read of the log takes."""
RECENT_SCAN_LIMIT = 20_000
"""How far back (in envelopes) ``recent`` looks for a contributor's own events."""
_BATCH_CACHE = 4096
_BATCH_PREFIX = batch_stream("")


class Stage(StrEnum):
    """The pipeline's stages, in order, and the event that says a stage moved records."""

    INTAKE = "intake"
    """``CorpusBatchSubmitted``: the records of the batch entered the ledger."""
    GOVERNANCE = "governance"
    """``BatchGoverned``: records decided (accepted or rejected)."""
    ANCHOR = "anchor"
    """``BatchAnchored``: every record of the batch is under an anchored Merkle root."""
    REWARD = "reward"
    """``ContributionRewarded``: the accepted records a reward was minted for."""
    FEED = "feed"
    """``BatchAnchored``: the accepted records of the batch entered the trainer's feed."""


@dataclass(frozen=True, slots=True)
class EventSummary:
    """What anyone allowed to see an event learns of it: no payload."""

    position: int
    type: str
    stream: str
    time: str
    institution_id: str | None
    batch_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "position": self.position,
            "type": self.type,
            "stream": self.stream,
            "time": self.time,
            "institution_id": self.institution_id,
            "batch_id": self.batch_id,
        }


@dataclass(frozen=True, slots=True)
class EventPage:
    """Summaries after a position, the position to continue after, and whether the log ends."""

    items: list[EventSummary]
    last_position: int
    at_head: bool


@dataclass(frozen=True, slots=True)
class StageThroughput:
    stage: Stage
    batches: int
    records: int
    records_per_second: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage.value,
            "batches": self.batches,
            "records": self.records,
            "records_per_second": self.records_per_second,
        }


@dataclass(frozen=True, slots=True)
class Throughput:
    window_seconds: int
    since: str
    until: str
    institution_id: str | None
    """The only institution counted (a contributor's); ``None``: every institution."""
    stages: list[StageThroughput]

    def to_dict(self) -> dict[str, Any]:
        return {
            "window_seconds": self.window_seconds,
            "since": self.since,
            "until": self.until,
            "institution_id": self.institution_id,
            "stages": [s.to_dict() for s in self.stages],
        }


@dataclass(slots=True)
class _BatchFacts:
    """What the stage counts need of a batch: whose it is, its records, how many accepted."""

    institution_id: str | None = None
    records: int = 0
    accepted: int = 0


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def check_window(window: int) -> int:
    """``window`` if it is a valid throughput window; raises :class:`InvalidRequest`."""
    if not MIN_WINDOW_SECONDS <= window <= MAX_WINDOW_SECONDS:
        raise InvalidRequest(
            f"window: expected {MIN_WINDOW_SECONDS} to {MAX_WINDOW_SECONDS} seconds"
        )
    return window


def check_recent(recent: int) -> int:
    """``recent`` if it is a valid count of past events; raises :class:`InvalidRequest`."""
    if not 0 <= recent <= MAX_RECENT:
        raise InvalidRequest(f"recent: expected 0 to {MAX_RECENT}")
    return recent


class EventService:
    """Summaries and stage throughput of one event log, as ``who`` may see them.

    An instance remembers the batches it has looked up (their institution and record counts):
    keep one per stream or request.
    """

    def __init__(self, *, log: EventLog, who: Principal) -> None:
        self.log = log
        self.who = who
        self._batches: OrderedDict[str, _BatchFacts] = OrderedDict()

    # -- who sees what ---------------------------------------------------------------------------

    @property
    def institution_scope(self) -> str | None:
        """The one institution ``who`` sees events of; ``None``: all of them."""
        if self.who.local or self.who.role is not Role.CONTRIBUTOR:
            return None
        return self.who.institution_id or ""

    def visible(self, summary: EventSummary) -> bool:
        scope = self.institution_scope
        return scope is None or summary.institution_id == scope

    # -- batches ---------------------------------------------------------------------------------

    def _learn(self, envelope: Envelope, batch_id: str | None) -> None:
        """Keep what a batch's own events say about it: a submission starts what is known of a
        batch (it is the stream's first event), a later decision completes it."""
        update = _BATCH_FACTS.get(envelope.event_type)
        if batch_id is None or update is None:
            return
        facts = self._batches.get(batch_id)
        if facts is None:
            if envelope.event_type != CorpusBatchSubmitted.event_type:
                return  # read from the batch's stream when asked for
            facts = self._remember(batch_id, _BatchFacts())
        update(facts, envelope.payload)

    def _remember(self, batch_id: str, facts: _BatchFacts) -> _BatchFacts:
        self._batches[batch_id] = facts
        self._batches.move_to_end(batch_id)
        while len(self._batches) > _BATCH_CACHE:
            self._batches.popitem(last=False)
        return facts

    def batch_facts(self, batch_id: str) -> _BatchFacts:
        """The batch's institution and record counts, from its stream in the log."""
        facts = self._batches.get(batch_id)
        if facts is not None:
            return facts
        facts = _BatchFacts()
        for envelope in self.log.read_stream(batch_stream(batch_id)):
            update = _BATCH_FACTS.get(envelope.event_type)
            if update is not None:
                update(facts, envelope.payload)
        return self._remember(batch_id, facts)

    # -- summaries -------------------------------------------------------------------------------

    def summarize(self, envelope: Envelope) -> EventSummary:
        payload = envelope.payload
        batch_id = payload.get("batch_id")
        if not isinstance(batch_id, str) and envelope.stream_id.startswith(_BATCH_PREFIX):
            batch_id = envelope.stream_id.removeprefix(_BATCH_PREFIX)
        if not isinstance(batch_id, str) or not batch_id:
            batch_id = None
        self._learn(envelope, batch_id)
        institution = payload.get("institution_id")
        if not isinstance(institution, str):
            institution = self.batch_facts(batch_id).institution_id if batch_id else None
        assert envelope.position is not None
        return EventSummary(
            position=envelope.position,
            type=envelope.event_type,
            stream=envelope.stream_id,
            time=envelope.occurred_at,
            institution_id=institution,
            batch_id=batch_id,
        )

    def page(self, *, after: int, limit: int = PAGE) -> EventPage:
        """The visible summaries of at most ``limit`` envelopes after position ``after``."""
        items: list[EventSummary] = []
        last = after
        read = 0
        for envelope in self.log.read_all(from_position=after + 1, limit=limit):
            read += 1
            summary = self.summarize(envelope)
            last = summary.position
            if self.visible(summary):
                items.append(summary)
        return EventPage(items=items, last_position=last, at_head=read < limit)

    def recent_start(self, recent: int) -> int:
        """The position to stream after so that the first events are the last ``recent`` ones
        ``who`` may see (looking back at most :data:`RECENT_SCAN_LIMIT` envelopes)."""
        head = self.log.head_position()
        if recent <= 0:
            return head
        scoped = self.institution_scope is not None
        found: list[int] = []
        end = head
        chunk = max(recent, PAGE)
        while end > 0 and head - end < RECENT_SCAN_LIMIT and len(found) < recent:
            start = max(end - chunk, 0)
            visible: list[int] = []
            for envelope in self.log.read_all(from_position=start + 1, limit=end - start):
                assert envelope.position is not None
                if envelope.position > end:
                    break
                if not scoped or self.visible(self.summarize(envelope)):
                    visible.append(envelope.position)
            found = visible + found
            end = start
        return found[-recent] - 1 if len(found) >= recent else end

    # -- throughput ------------------------------------------------------------------------------

    def first_position_since(self, moment: datetime) -> int:
        """The first position whose envelope occurred at or after ``moment`` (``head + 1`` when
        none did); positions follow commit order, and times with it."""
        low, high = 0, self.log.head_position() + 1
        while low < high:
            middle = (low + high) // 2
            probe = next(iter(self.log.read_all(from_position=middle, limit=1)), None)
            if probe is None or _moment(probe.occurred_at) >= moment:
                high = middle
            else:
                assert probe.position is not None
                low = probe.position + 1
        return low

    def _since(self, moment: datetime) -> Iterator[Envelope]:
        position = self.first_position_since(moment)
        while True:
            read = 0
            for envelope in self.log.read_all(from_position=position, limit=PAGE):
                read += 1
                assert envelope.position is not None
                position = envelope.position + 1
                yield envelope
            if read < PAGE:
                return

    def throughput(self, *, window: int, now: datetime | None = None) -> Throughput:
        """Records each stage moved over the ``window`` seconds up to ``now``."""
        check_window(window)
        until = now or datetime.now(UTC)
        since = until - timedelta(seconds=window)
        batches = dict.fromkeys(Stage, 0)
        records = dict.fromkeys(Stage, 0)
        for envelope in self._since(since):
            if _moment(envelope.occurred_at) > until:
                break
            summary = self.summarize(envelope)
            counts = _STAGE_RECORDS.get(envelope.event_type)
            if counts is None or summary.batch_id is None or not self.visible(summary):
                continue
            moved = counts(envelope.payload, self.batch_facts(summary.batch_id))
            for stage, count in moved.items():
                batches[stage] += 1
                records[stage] += count
        return Throughput(
            window_seconds=window,
            since=since.isoformat(),
            until=until.isoformat(),
            institution_id=self.institution_scope,
            stages=[
                StageThroughput(
                    stage=stage,
                    batches=batches[stage],
                    records=records[stage],
                    records_per_second=round(records[stage] / window, 6),
                )
                for stage in Stage
            ],
        )


def _submitted(facts: _BatchFacts, payload: Mapping[str, Any]) -> None:
    facts.institution_id = payload.get("institution_id")
    facts.records = len(payload.get("records", ()))


def _governed(facts: _BatchFacts, payload: Mapping[str, Any]) -> None:
    facts.institution_id = facts.institution_id or payload.get("institution_id")
    facts.accepted = len(payload.get("accepted_record_ids", ()))


_BATCH_FACTS: dict[str, Callable[[_BatchFacts, Mapping[str, Any]], None]] = {
    CorpusBatchSubmitted.event_type: _submitted,
    BatchGoverned.event_type: _governed,
}
"""What each event of a batch's stream tells of the batch."""


def _intake(payload: Mapping[str, Any], facts: _BatchFacts) -> dict[Stage, int]:
    return {Stage.INTAKE: len(payload.get("records", ()))}


def _governance(payload: Mapping[str, Any], facts: _BatchFacts) -> dict[Stage, int]:
    decided = len(payload.get("accepted_record_ids", ())) + len(payload.get("rejected", {}))
    return {Stage.GOVERNANCE: decided}


def _anchor(payload: Mapping[str, Any], facts: _BatchFacts) -> dict[Stage, int]:
    return {Stage.ANCHOR: facts.records, Stage.FEED: facts.accepted}


def _reward(payload: Mapping[str, Any], facts: _BatchFacts) -> dict[Stage, int]:
    return {Stage.REWARD: facts.accepted}


_STAGE_RECORDS: dict[str, Callable[[Mapping[str, Any], _BatchFacts], dict[Stage, int]]] = {
    CorpusBatchSubmitted.event_type: _intake,
    BatchGoverned.event_type: _governance,
    BatchAnchored.event_type: _anchor,
    ContributionRewarded.event_type: _reward,
}
"""The records each stage moved by an event of these types (from its payload and its batch)."""
