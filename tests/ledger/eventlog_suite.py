"""Behaviour every event log backend must show.

A backend's test module subclasses :class:`EventLogSuite` and implements :meth:`create_log` (and
:meth:`reopen_log` where the backend persists, :meth:`url_for_other_processes` where other processes
can open its storage), e.g.::

    class TestSQLiteEventLog(EventLogSuite):
        def create_log(self) -> EventLog:
            return open_event_log(f"sqlite:///{self.tmp_path}/events.db")
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import Field

from ledger.eventlog import (
    ConcurrencyConflict,
    EventLog,
    EventLogClosed,
    StreamAppend,
    open_event_log,
)
from ledger.events import (
    ZERO_HASH,
    DomainEvent,
    Envelope,
    Topic,
    UnknownEventType,
    decode,
    envelope_hash,
    event,
    upcaster,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

# -- test-only events ---------------------------------------------------------------------------


@event(topic=Topic.TRAINING, version=2)
class EventLogSuiteNoteTaken(DomainEvent):
    """A note; version 2 renamed ``note`` to ``text`` and added ``tags`` and ``extra``."""

    text: str
    tags: list[str] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)


@upcaster("EventLogSuiteNoteTaken", 1)
def _note_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    return {"text": payload["note"], "tags": ["from-v1"]}


class LegacyNoteTakenV1(DomainEvent):
    """What older code wrote: the same event type at schema version 1 (left unregistered)."""

    event_type: ClassVar[str] = "EventLogSuiteNoteTaken"
    topic: ClassVar[Topic] = Topic.TRAINING
    schema_version: ClassVar[int] = 1

    note: str


class NoteTakenV3(DomainEvent):
    """What newer code would write: a schema version this code does not know yet."""

    event_type: ClassVar[str] = "EventLogSuiteNoteTaken"
    topic: ClassVar[Topic] = Topic.TRAINING
    schema_version: ClassVar[int] = 3

    text: str


class FromNewerCodeHappened(DomainEvent):
    """An event type that newer code would register and this code does not know."""

    event_type: ClassVar[str] = "EventLogSuiteFromNewerCodeHappened"
    topic: ClassVar[Topic] = Topic.TRAINING
    schema_version: ClassVar[int] = 1

    detail: str


def note(text: str, **extra: Any) -> EventLogSuiteNoteTaken:
    return EventLogSuiteNoteTaken(text=text, extra=extra)


def notes(*texts: str) -> list[EventLogSuiteNoteTaken]:
    return [note(t) for t in texts]


def pos(envelope: Envelope) -> int:
    """The position of a stored envelope (always set once the log returned it)."""
    assert envelope.position is not None
    return envelope.position


def texts_of(envelopes: list[Envelope]) -> list[str]:
    out = []
    for envelope in envelopes:
        evt = decode(envelope)
        assert isinstance(evt, EventLogSuiteNoteTaken)
        out.append(evt.text)
    return out


# -- the suite ----------------------------------------------------------------------------------


class EventLogSuite(ABC):
    """Shared tests; subclasses provide the backend."""

    tmp_path: Path

    @abstractmethod
    def create_log(self) -> EventLog:
        """A new, empty log (storage under ``self.tmp_path`` where the backend needs files)."""

    def reopen_log(self) -> EventLog:
        """Another handle on the storage of the last :meth:`create_log`; skip if not persistent."""
        pytest.skip("backend does not persist")

    def url_for_other_processes(self) -> str:
        """The URL another process opens to reach the storage :meth:`create_log` uses; skip where
        that storage lives inside this process."""
        pytest.skip("the backend's storage lives in this process: no other process can open it")

    race_rounds: ClassVar[int] = 20
    """Streams the two writer processes race to create (one winner each)."""
    race_shared_appends: ClassVar[int] = 30
    """Events each writer process then appends to one shared stream, retrying on conflicts."""

    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    @pytest.fixture
    def log(self) -> Iterator[EventLog]:
        log = self.create_log()
        yield log
        log.close()

    # -- appending and reading -------------------------------------------------------------------

    def test_new_stream_is_empty_at_version_zero(self, log: EventLog) -> None:
        assert log.stream_version("batch-none") == 0
        assert list(log.read_stream("batch-none")) == []
        assert log.head_position() == 0
        assert list(log.read_all()) == []

    def test_append_returns_stored_envelopes_that_read_back_identically(
        self, log: EventLog
    ) -> None:
        appended = log.append("batch-a", notes("one", "two", "three"), expected_version=0)

        read = list(log.read_stream("batch-a"))
        assert read == appended
        assert [e.position for e in read] == [e.position for e in appended]
        assert [e.sequence for e in read] == [1, 2, 3]
        assert {e.stream_id for e in read} == {"batch-a"}
        assert texts_of(read) == ["one", "two", "three"]
        assert log.stream_version("batch-a") == 3
        assert len({e.event_id for e in read}) == 3

    def test_appends_continue_the_stream_and_read_stream_can_start_later(
        self, log: EventLog
    ) -> None:
        log.append("batch-a", notes("one", "two"), expected_version=0)
        log.append("batch-b", notes("other"), expected_version=0)
        log.append("batch-a", notes("three"), expected_version=2)

        assert texts_of(list(log.read_stream("batch-a"))) == ["one", "two", "three"]
        assert [e.sequence for e in log.read_stream("batch-a", from_sequence=2)] == [2, 3]
        assert list(log.read_stream("batch-a", from_sequence=4)) == []
        assert log.stream_version("batch-a") == 3
        assert log.stream_version("batch-b") == 1

    def test_append_many_stores_several_streams_in_position_order(self, log: EventLog) -> None:
        log.append("batch-a", notes("a1"), expected_version=0)
        stored = log.append_many(
            [
                StreamAppend("batch-a", notes("a2", "a3"), expected_version=1),
                StreamAppend("institution-x", notes("x1"), expected_version=0),
            ]
        )

        positions = [pos(e) for e in stored]
        assert positions == sorted(positions)
        assert [(e.stream_id, e.sequence) for e in stored] == [
            ("batch-a", 2),
            ("batch-a", 3),
            ("institution-x", 1),
        ]
        assert list(log.read_all())[1:] == stored
        assert log.stream_version("batch-a") == 3
        assert log.stream_version("institution-x") == 1

    def test_append_many_rejects_a_stream_named_twice_or_no_events(self, log: EventLog) -> None:
        with pytest.raises(ValueError, match="twice"):
            log.append_many(
                [
                    StreamAppend("batch-a", notes("1"), expected_version=0),
                    StreamAppend("batch-a", notes("2"), expected_version=1),
                ]
            )
        with pytest.raises(ValueError, match="no events"):
            log.append("batch-a", [], expected_version=0)
        assert log.head_position() == 0

    # -- optimistic concurrency ------------------------------------------------------------------

    def test_wrong_expected_version_raises_conflict_and_stores_nothing(self, log: EventLog) -> None:
        log.append("batch-a", notes("one", "two"), expected_version=0)
        head = log.head_position()

        for wrong in (0, 1, 3):
            with pytest.raises(ConcurrencyConflict) as caught:
                log.append("batch-a", notes("late"), expected_version=wrong)
            assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == (
                "batch-a",
                wrong,
                2,
            )
        with pytest.raises(ConcurrencyConflict):
            log.append("batch-new", notes("x"), expected_version=1)
        assert log.head_position() == head
        assert log.stream_version("batch-a") == 2
        assert log.stream_version("batch-new") == 0

    def test_append_many_is_all_or_nothing(self, log: EventLog) -> None:
        log.append("batch-a", notes("a1"), expected_version=0)
        head = log.head_position()

        with pytest.raises(ConcurrencyConflict) as caught:
            log.append_many(
                [
                    StreamAppend("batch-fresh", notes("f1", "f2"), expected_version=0),
                    StreamAppend("batch-a", notes("a2"), expected_version=0),
                ]
            )
        assert caught.value.stream_id == "batch-a"
        assert log.head_position() == head
        assert log.stream_version("batch-fresh") == 0
        assert list(log.read_stream("batch-fresh")) == []

    def test_concurrent_appends_to_one_stream_have_exactly_one_winner(self, log: EventLog) -> None:
        rounds = 8
        for version in range(rounds):
            barrier = threading.Barrier(2)
            outcomes: queue.Queue[object] = queue.Queue()

            def contend(
                name: str,
                version: int = version,
                barrier: threading.Barrier = barrier,
                outcomes: queue.Queue[object] = outcomes,
            ) -> None:
                barrier.wait(timeout=10)
                try:
                    outcomes.put(log.append("batch-hot", notes(name), expected_version=version))
                except ConcurrencyConflict as conflict:
                    outcomes.put(conflict)

            threads = [threading.Thread(target=contend, args=(n,)) for n in ("left", "right")]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
            results = [outcomes.get(timeout=1) for _ in threads]
            wins = [r for r in results if isinstance(r, list)]
            conflicts = [r for r in results if isinstance(r, ConcurrencyConflict)]
            assert len(wins) == 1 and len(conflicts) == 1, results
            assert (conflicts[0].expected, conflicts[0].actual) == (version, version + 1)
        assert log.stream_version("batch-hot") == rounds
        assert log.verify_integrity().ok

    def test_threads_retrying_on_conflict_lose_and_duplicate_nothing(self, log: EventLog) -> None:
        per_thread = 15

        def writer(name: str) -> None:
            for i in range(per_thread):
                while True:
                    version = log.stream_version("batch-shared")
                    try:
                        log.append("batch-shared", notes(f"{name}-{i}"), expected_version=version)
                        break
                    except ConcurrencyConflict:
                        continue

        threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)

        written = texts_of(list(log.read_stream("batch-shared")))
        assert sorted(written) == sorted(f"w{n}-{i}" for n in range(3) for i in range(per_thread))
        for n in range(3):
            mine = [t for t in written if t.startswith(f"w{n}-")]
            assert mine == [f"w{n}-{i}" for i in range(per_thread)]
        assert log.verify_integrity().ok

    # -- hashes and order ------------------------------------------------------------------------

    def test_envelopes_form_a_hash_chain_per_stream(self, log: EventLog) -> None:
        log.append("batch-a", notes("a1", "a2"), expected_version=0)
        log.append("batch-b", notes("b1"), expected_version=0)
        log.append("batch-a", notes("a3"), expected_version=2)

        for stream_id in ("batch-a", "batch-b"):
            previous = ZERO_HASH
            for envelope in log.read_stream(stream_id):
                assert envelope.prev_hash == previous
                assert envelope.hash == envelope.computed_hash()
                previous = envelope.hash

    def test_hashes_match_the_reference_encoder_for_awkward_payloads(self, log: EventLog) -> None:
        awkward = [
            note("floats", a=1.0, b=-0.0, c=0.1, d=1e-7, e=1e21, f=2.5e-5, g=123456.789),
            note("ints", big=2**53 - 1, neg=-(2**53) + 1, zero=0, flag=True, nothing=None),
            note("unicode 中文 ✓ 😀", **{"ключ": "значение", "\U0001f600": 1, "\ufb01": 2}),
            note('controls \x00\x01\x1f\x7f "quoted" \\ back / slash \u2028'),
            note("nested", deep={"z": [1, {"y": [2.0, "3"]}], "a": []}, empty={}),
        ]
        stored = log.append("batch-awkward", awkward, expected_version=0)

        for envelope in [*stored, *log.read_stream("batch-awkward")]:
            assert envelope.hash == envelope_hash(envelope.hashed_fields())
        decoded = [decode(e) for e in log.read_stream("batch-awkward")]
        assert decoded == awkward

    def test_read_all_is_in_strictly_increasing_position_order_and_resumable(
        self, log: EventLog
    ) -> None:
        for i in range(5):
            log.append(f"batch-{i % 2}", notes(f"n{i}"), expected_version=i // 2)
        everything = list(log.read_all())

        positions = [pos(e) for e in everything]
        assert len(everything) == 5
        assert all(p > 0 for p in positions)
        assert positions == sorted(set(positions))
        assert texts_of(everything) == [f"n{i}" for i in range(5)]
        assert log.head_position() == positions[-1]
        assert list(log.read_all(from_position=positions[2] + 1)) == everything[3:]
        assert list(log.read_all(from_position=positions[2])) == everything[2:]
        assert list(log.read_all(limit=2)) == everything[:2]
        assert list(log.read_all(from_position=positions[1], limit=2)) == everything[1:3]
        assert list(log.read_all(from_position=positions[-1] + 1)) == []

    # -- following -------------------------------------------------------------------------------

    def test_subscribe_yields_existing_events_then_new_ones_until_stopped(
        self, log: EventLog
    ) -> None:
        log.append("batch-a", notes("before"), expected_version=0)
        seen: queue.Queue[Envelope] = queue.Queue()
        stop = threading.Event()

        def consume() -> None:
            for envelope in log.subscribe(from_position=0, stop=stop, poll_interval=0.05):
                seen.put(envelope)

        consumer = threading.Thread(target=consume)
        consumer.start()
        try:
            assert texts_of([seen.get(timeout=10)]) == ["before"]
            log.append("batch-a", notes("after-1"), expected_version=1)
            log.append("batch-b", notes("after-2"), expected_version=0)
            assert texts_of([seen.get(timeout=10), seen.get(timeout=10)]) == [
                "after-1",
                "after-2",
            ]
        finally:
            stop.set()
            consumer.join(timeout=10)
        assert not consumer.is_alive()
        assert seen.empty()

    def test_subscribe_from_a_position_skips_earlier_events(self, log: EventLog) -> None:
        first = log.append("batch-a", notes("old", "new"), expected_version=0)
        stop = threading.Event()
        assert first[1].position is not None

        received = []
        for envelope in log.subscribe(from_position=first[1].position, stop=stop):
            received.append(envelope)
            stop.set()
        assert texts_of(received) == ["new"]

    def test_wait_for_reports_whether_the_log_reached_a_position(self, log: EventLog) -> None:
        assert not log.wait_for(1, timeout=0.05)
        stored = log.append("batch-a", notes("x"), expected_version=0)
        assert stored[0].position is not None
        assert log.wait_for(stored[0].position, timeout=1)

    # -- event types and versions ----------------------------------------------------------------

    def test_unknown_event_type_fails_loudly_on_decode(self, log: EventLog) -> None:
        log.append("batch-a", [FromNewerCodeHappened(detail="?")], expected_version=0)

        (envelope,) = log.read_stream("batch-a")
        assert envelope.event_type == "EventLogSuiteFromNewerCodeHappened"
        with pytest.raises(UnknownEventType, match="EventLogSuiteFromNewerCodeHappened"):
            decode(envelope)

    def test_old_schema_version_is_upcast_on_read(self, log: EventLog) -> None:
        log.append("batch-a", [LegacyNoteTakenV1(note="written by v1")], expected_version=0)

        (envelope,) = log.read_stream("batch-a")
        assert envelope.schema_version == 1
        assert envelope.payload == {"note": "written by v1"}
        assert decode(envelope) == EventLogSuiteNoteTaken(text="written by v1", tags=["from-v1"])

    def test_schema_version_newer_than_the_code_fails_loudly(self, log: EventLog) -> None:
        log.append("batch-a", [NoteTakenV3(text="from the future")], expected_version=0)

        (envelope,) = log.read_stream("batch-a")
        with pytest.raises(UnknownEventType, match="newer"):
            decode(envelope)

    # -- integrity and lifecycle -----------------------------------------------------------------

    def test_verify_integrity_of_an_untouched_log_is_clean(self, log: EventLog) -> None:
        log.append("batch-a", notes("a1", "a2"), expected_version=0)
        log.append_many(
            [
                StreamAppend("batch-a", notes("a3"), expected_version=2),
                StreamAppend("batch-b", notes("b1"), expected_version=0),
            ]
        )

        report = log.verify_integrity()
        assert report.ok, report.problems
        assert (report.events_checked, report.streams_checked) == (4, 2)
        report.raise_for_problems()

    def test_closed_log_refuses_use(self) -> None:
        log = self.create_log()
        log.append("batch-a", notes("x"), expected_version=0)
        with log:
            pass
        assert log.closed
        with pytest.raises(EventLogClosed):
            log.append("batch-a", notes("y"), expected_version=1)
        with pytest.raises(EventLogClosed):
            list(log.read_all())
        log.close()

    def test_events_survive_reopening(self) -> None:
        log = self.create_log()
        stored = log.append("batch-a", notes("kept", "too"), expected_version=0)
        log.close()

        with self.reopen_log() as again:
            assert list(again.read_all()) == stored
            assert again.stream_version("batch-a") == 2
            again.append("batch-a", notes("more"), expected_version=2)
            assert again.verify_integrity().ok

    def test_two_handles_on_one_store_see_each_other_and_conflict(self) -> None:
        first = self.create_log()
        try:
            second = self.reopen_log()
        except BaseException:
            first.close()
            raise
        with first, second:
            first.append("batch-a", notes("from first"), expected_version=0)
            assert second.stream_version("batch-a") == 1
            with pytest.raises(ConcurrencyConflict):
                second.append("batch-a", notes("stale"), expected_version=0)
            second.append("batch-a", notes("from second"), expected_version=1)
            assert texts_of(list(first.read_stream("batch-a"))) == ["from first", "from second"]

    # -- several processes -----------------------------------------------------------------------

    def test_two_processes_racing_have_one_winner_per_stream_and_lose_nothing(self) -> None:
        url = self.url_for_other_processes()
        self.create_log().close()  # the storage exists before the writers race to open it
        rounds, shared = self.race_rounds, self.race_shared_appends
        children = [_spawn_racer(url, name, rounds=rounds, shared=shared) for name in ("p1", "p2")]
        try:
            for child in children:
                assert child.stdout is not None and child.stdout.readline() == "ready\n"
            for child in children:
                assert child.stdin is not None
                child.stdin.write("go\n")
                child.stdin.flush()
            outputs = [child.communicate(timeout=240)[0].split("\n") for child in children]
        finally:
            for child in children:
                child.kill()
        assert [child.returncode for child in children] == [0, 0]

        for r in range(rounds):
            results = sorted(
                line.split()[0] for out in outputs for line in out if line.endswith(f" {r}")
            )
            assert results == ["conflict", "win"], (r, results)
        with open_event_log(url) as log:
            for r in range(rounds):
                assert log.stream_version(f"batch-race-{r}") == 1
            shared_texts = texts_of(list(log.read_stream("batch-shared")))
            assert sorted(shared_texts) == sorted(
                f"{p}-{i}" for p in ("p1", "p2") for i in range(shared)
            )
            for p in ("p1", "p2"):
                assert [t for t in shared_texts if t.startswith(f"{p}-")] == [
                    f"{p}-{i}" for i in range(shared)
                ]
            assert log.verify_integrity().ok


# -- the writer processes of the race ------------------------------------------------------------

_RACER = "import sys; from tests.ledger.eventlog_suite import racer_main; racer_main(sys.argv)"


def _spawn_racer(url: str, name: str, *, rounds: int, shared: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _RACER, url, name, str(rounds), str(shared)],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


def racer_main(argv: list[str]) -> None:
    """Entry point of a writer process: ``URL NAME ROUNDS SHARED``.

    Says ``ready`` once its log is open and warm, waits for a line on stdin, then tries to create
    each ``batch-race-R`` stream (printing ``win R`` or ``conflict R``) and appends ``NAME-I`` to
    ``batch-shared`` SHARED times, retrying each append on a conflict; ``done`` at the end.
    """
    url, name, rounds, shared = argv[1], argv[2], int(argv[3]), int(argv[4])
    out = sys.stdout
    with open_event_log(url) as log:
        log.stream_version("batch-warmup")  # connect now, not during the race
        out.write("ready\n")
        out.flush()
        sys.stdin.readline()
        for r in range(rounds):
            try:
                log.append(f"batch-race-{r}", notes(name), expected_version=0)
                out.write(f"win {r}\n")
            except ConcurrencyConflict:
                out.write(f"conflict {r}\n")
            out.flush()
        for i in range(shared):
            while True:
                try:
                    version = log.stream_version("batch-shared")
                    log.append("batch-shared", notes(f"{name}-{i}"), expected_version=version)
                    break
                except ConcurrencyConflict:
                    continue
        out.write("done\n")
