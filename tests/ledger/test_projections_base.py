"""Projection machinery: positions and state in one transaction, idempotency, replay equals live."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.eventlog import EventLog, StreamAppend, open_event_log
from ledger.eventlog.sqlite import sqlite_url
from ledger.events import (
    DomainEvent,
    Envelope,
    InstitutionDeactivated,
    InstitutionRegistered,
    UnknownEventType,
)
from ledger.projections import (
    CatchUpReport,
    Projection,
    ProjectionError,
    ProjectionFailed,
    ProjectionRunner,
    ProjectionStore,
    diff_states,
    dump_state,
    on,
)
from tests.ledger.eventlog_suite import (
    EventLogSuiteNoteTaken,
    FromNewerCodeHappened,
    LegacyNoteTakenV1,
    notes,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

# -- example projections ------------------------------------------------------------------------


class InstitutionDirectory(Projection):
    """Institutions by id, with whether they are active."""

    name = "example_institutions"
    schema = """
        CREATE TABLE IF NOT EXISTS example_institutions (
            institution_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            account TEXT NOT NULL,
            active INTEGER NOT NULL,
            reason TEXT
        )
    """

    @on(InstitutionRegistered)
    def registered(
        self, event: InstitutionRegistered, envelope: Envelope, conn: sqlite3.Connection
    ) -> None:
        conn.execute(
            "INSERT INTO example_institutions VALUES (?, ?, ?, 1, NULL)",
            (event.institution_id, event.name, event.account),
        )

    @on(InstitutionDeactivated)
    def deactivated(
        self, event: InstitutionDeactivated, envelope: Envelope, conn: sqlite3.Connection
    ) -> None:
        conn.execute(
            "UPDATE example_institutions SET active = 0, reason = ? WHERE institution_id = ?",
            (event.reason, event.institution_id),
        )


class NoteCounter(Projection):
    """Notes per stream and their texts; the counter is not idempotent on its own, on purpose."""

    name = "example_notes"
    schema = """
        CREATE TABLE IF NOT EXISTS example_note_counts (
            stream_id TEXT PRIMARY KEY, notes INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS example_note_texts (
            stream_id TEXT NOT NULL, sequence INTEGER NOT NULL, text TEXT NOT NULL)
    """

    @on(EventLogSuiteNoteTaken)
    def taken(
        self, event: EventLogSuiteNoteTaken, envelope: Envelope, conn: sqlite3.Connection
    ) -> None:
        if event.text == "poison" and os.environ.get("EXAMPLE_NOTES_POISON") == "raise":
            raise RuntimeError("poisoned note")
        if event.text == "poison" and os.environ.get("EXAMPLE_NOTES_POISON") == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        conn.execute(
            "INSERT INTO example_note_counts VALUES (?, 1) "
            "ON CONFLICT (stream_id) DO UPDATE SET notes = notes + 1",
            (envelope.stream_id,),
        )
        conn.execute(
            "INSERT INTO example_note_texts VALUES (?, ?, ?)",
            (envelope.stream_id, envelope.sequence, event.text),
        )


class EventTypeCounter(Projection):
    """Declares ``handles`` and overrides ``apply`` instead of using :func:`on`."""

    name = "example_event_types"
    handles = (InstitutionRegistered, EventLogSuiteNoteTaken)
    schema = """
        CREATE TABLE IF NOT EXISTS example_event_types (
            event_type TEXT PRIMARY KEY, seen INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS example_event_repeats (event_type TEXT, seen INTEGER);
        CREATE TRIGGER IF NOT EXISTS example_event_types_seen AFTER UPDATE ON example_event_types
        BEGIN
            INSERT INTO example_event_repeats VALUES (NEW.event_type, NEW.seen);
        END
    """

    def apply(self, event: DomainEvent, envelope: Envelope, conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO example_event_types VALUES (?, 1) "
            "ON CONFLICT (event_type) DO UPDATE SET seen = seen + 1",
            (envelope.event_type,),
        )


def register(institution_id: str) -> InstitutionRegistered:
    return InstitutionRegistered(
        institution_id=institution_id, name=institution_id.upper(), account="0x" + "ab" * 20
    )


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "memory"])
def log(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventLog]:
    url = sqlite_url(tmp_path / "events.db") if request.param == "sqlite" else "memory://"
    with open_event_log(url) as log:
        yield log


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ProjectionStore]:
    with ProjectionStore(tmp_path / "state.db") as store:
        yield store


@pytest.fixture
def runner(log: EventLog, store: ProjectionStore) -> ProjectionRunner:
    return ProjectionRunner(
        log=log, store=store, projections=[InstitutionDirectory(), NoteCounter()], chunk_size=3
    )


def fill(log: EventLog) -> None:
    """Seven events over four streams."""
    log.append("institution-bupt", [register("bupt")], expected_version=0)
    log.append("batch-1", notes("a", "b", "c"), expected_version=0)
    log.append_many(
        [
            StreamAppend("institution-pku", [register("pku")], expected_version=0),
            StreamAppend("batch-2", notes("d"), expected_version=0),
        ]
    )
    log.append(
        "institution-bupt",
        [InstitutionDeactivated(institution_id="bupt", reason="merged")],
        expected_version=1,
    )


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    return dict(conn.execute("SELECT stream_id, notes FROM example_note_counts").fetchall())


# -- catching up --------------------------------------------------------------------------------


def test_on_decorators_define_what_a_projection_handles() -> None:
    assert set(InstitutionDirectory.handles) == {InstitutionRegistered, InstitutionDeactivated}
    assert NoteCounter.handles == (EventLogSuiteNoteTaken,)


def test_a_projection_may_declare_handles_and_override_apply(
    log: EventLog, store: ProjectionStore
) -> None:
    fill(log)

    ProjectionRunner(log=log, store=store, projections=[EventTypeCounter()]).catch_up()

    assert dict(store.conn.execute("SELECT * FROM example_event_types").fetchall()) == {
        "InstitutionRegistered": 2,
        "EventLogSuiteNoteTaken": 4,
    }
    # The trigger in the schema was created whole (its body holds a ';').
    assert store.conn.execute("SELECT COUNT(*) FROM example_event_repeats").fetchone() == (4,)


def test_two_handlers_for_one_event_type_are_refused() -> None:
    with pytest.raises(TypeError, match="two methods"):

        class Ambiguous(Projection):
            name = "ambiguous"

            @on(InstitutionRegistered)
            def first(self, event: DomainEvent, envelope: Envelope, conn: sqlite3.Connection):
                pass

            @on(InstitutionRegistered)
            def second(self, event: DomainEvent, envelope: Envelope, conn: sqlite3.Connection):
                pass


def test_catch_up_applies_every_event_and_stores_the_position(
    log: EventLog, runner: ProjectionRunner, store: ProjectionStore
) -> None:
    fill(log)

    report = runner.catch_up()

    assert report.events_read == 7
    assert report.applied == {"example_institutions": 3, "example_notes": 4}
    assert report.position == log.head_position()
    assert runner.positions() == {
        "example_institutions": log.head_position(),
        "example_notes": log.head_position(),
    }
    assert store.conn.execute(
        "SELECT institution_id, active, reason FROM example_institutions ORDER BY 1"
    ).fetchall() == [("bupt", 0, "merged"), ("pku", 1, None)]
    assert counts(store.conn) == {"batch-1": 3, "batch-2": 1}


def test_catch_up_resumes_after_its_position(
    log: EventLog, runner: ProjectionRunner, store: ProjectionStore
) -> None:
    fill(log)
    runner.catch_up()
    assert runner.catch_up() == CatchUpReport(
        events_read=0,
        applied={"example_institutions": 0, "example_notes": 0},
        position=log.head_position(),
    )

    log.append("batch-1", notes("e"), expected_version=3)
    report = runner.catch_up()

    assert (report.events_read, report.applied["example_notes"]) == (1, 1)
    assert counts(store.conn) == {"batch-1": 4, "batch-2": 1}


def test_catch_up_can_stop_at_a_position(
    log: EventLog, runner: ProjectionRunner, store: ProjectionStore
) -> None:
    fill(log)
    third = [e.position for e in log.read_all()][2]
    assert third is not None

    report = runner.catch_up(until_position=third)

    assert report.events_read == 3
    assert set(runner.positions().values()) == {third}
    assert counts(store.conn) == {"batch-1": 2}


def test_an_event_delivered_again_is_applied_once(
    log: EventLog, runner: ProjectionRunner, store: ProjectionStore
) -> None:
    fill(log)
    runner.catch_up()
    before = dump_state(store.conn)
    # Rewind as a redelivering backend would: every event comes again.
    with store.transaction() as conn:
        conn.execute("UPDATE projection_positions SET position = 0")

    report = runner.catch_up()

    assert report.events_read == 7
    assert report.applied == {"example_institutions": 0, "example_notes": 0}
    assert dump_state(store.conn) == before
    assert set(runner.positions().values()) == {log.head_position()}


def test_a_projection_added_later_replays_from_the_start_alone(
    log: EventLog, store: ProjectionStore
) -> None:
    fill(log)
    ProjectionRunner(log=log, store=store, projections=[NoteCounter()]).catch_up()

    both = ProjectionRunner(
        log=log, store=store, projections=[NoteCounter(), InstitutionDirectory()]
    )
    report = both.catch_up()

    assert report.applied == {"example_notes": 0, "example_institutions": 3}
    assert counts(store.conn) == {"batch-1": 3, "batch-2": 1}


def test_old_schema_versions_reach_handlers_upcast(
    log: EventLog, runner: ProjectionRunner, store: ProjectionStore
) -> None:
    log.append("batch-old", [LegacyNoteTakenV1(note="from v1")], expected_version=0)

    runner.catch_up()

    assert store.conn.execute("SELECT text FROM example_note_texts").fetchall() == [("from v1",)]


def test_an_unknown_event_type_stops_the_runner_loudly(
    log: EventLog, runner: ProjectionRunner
) -> None:
    log.append("batch-1", notes("a"), expected_version=0)
    log.append("batch-x", [FromNewerCodeHappened(detail="?")], expected_version=0)

    with pytest.raises(UnknownEventType):
        runner.catch_up()
    assert set(runner.positions().values()) == {0}


# -- failures and crashes -----------------------------------------------------------------------


def test_a_failing_handler_rolls_back_its_chunk_state_and_position_together(
    log: EventLog, runner: ProjectionRunner, store: ProjectionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    log.append("batch-1", notes("a", "b", "c", "d", "poison", "f"), expected_version=0)
    monkeypatch.setenv("EXAMPLE_NOTES_POISON", "raise")

    with pytest.raises(ProjectionFailed) as caught:
        runner.catch_up()

    assert caught.value.projection == "example_notes"
    assert caught.value.position == [e.position for e in log.read_all()][4]
    # chunk_size=3: the first chunk (a, b, c) committed, the second (d, poison, f) did not.
    third = [e.position for e in log.read_all()][2]
    assert runner.positions()["example_notes"] == third
    assert counts(store.conn) == {"batch-1": 3}

    monkeypatch.delenv("EXAMPLE_NOTES_POISON")
    runner.catch_up()
    assert counts(store.conn) == {"batch-1": 6}


def crash_child_main(argv: list[str]) -> None:
    """Run by the crash test in a new process: catch up until the handler kills the process."""
    log_path, state_path = argv[1], argv[2]
    with open_event_log(sqlite_url(log_path)) as log, ProjectionStore(state_path) as store:
        ProjectionRunner(log=log, store=store, projections=[NoteCounter()], chunk_size=4).catch_up()


def test_a_runner_killed_mid_chunk_leaves_state_and_position_consistent(tmp_path: Path) -> None:
    log_path, state_path = tmp_path / "events.db", tmp_path / "state.db"
    with open_event_log(sqlite_url(log_path)) as log:
        for i in range(10):
            log.append(f"batch-{i}", notes(f"n{i}"), expected_version=0)
        log.append("batch-10", notes("poison"), expected_version=0)
        log.append("batch-11", notes("after"), expected_version=0)

    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from tests.ledger.test_projections_base import crash_child_main; "
            "crash_child_main(sys.argv)",
            str(log_path),
            str(state_path),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "EXAMPLE_NOTES_POISON": "kill"},
        timeout=120,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL

    with open_event_log(sqlite_url(log_path)) as log, ProjectionStore(state_path) as store:
        position = store.position("example_notes")
        # Chunks of 4: positions 1-4 and 5-8 committed; the kill hit the chunk 9-12.
        assert position == 8
        assert counts(store.conn) == {f"batch-{i}": 1 for i in range(8)}
        runner = ProjectionRunner(log=log, store=store, projections=[NoteCounter()])
        runner.catch_up()
        assert counts(store.conn) == {f"batch-{i}": 1 for i in range(12)}


# -- following ----------------------------------------------------------------------------------


def test_follow_applies_new_events_until_stopped(
    log: EventLog, runner: ProjectionRunner, store: ProjectionStore
) -> None:
    log.append("batch-1", notes("a"), expected_version=0)
    stop = threading.Event()
    reached: dict[int, threading.Event] = {1: threading.Event(), 3: threading.Event()}

    def progressed(report: CatchUpReport) -> None:
        for target, flag in reached.items():
            if report.position >= target:
                flag.set()

    follower = threading.Thread(
        target=runner.follow,
        kwargs={"stop": stop, "poll_interval": 0.05, "on_progress": progressed},
    )
    follower.start()
    try:
        assert reached[1].wait(timeout=10)
        log.append("batch-1", notes("b", "c"), expected_version=1)
        assert reached[3].wait(timeout=10)
    finally:
        stop.set()
        follower.join(timeout=10)
    assert not follower.is_alive()
    reader = store.reader()
    try:
        assert counts(reader) == {"batch-1": 3}
    finally:
        reader.close()


# -- replay -------------------------------------------------------------------------------------


def test_rebuild_into_reproduces_the_live_state(
    log: EventLog, runner: ProjectionRunner, store: ProjectionStore, tmp_path: Path
) -> None:
    # Live state built incrementally, interleaved with appends.
    fill(log)
    runner.catch_up()
    log.append("batch-2", notes("e", "f"), expected_version=1)
    runner.catch_up()
    log.append("institution-tsinghua", [register("tsinghua")], expected_version=0)
    runner.catch_up()

    with runner.rebuild_into(tmp_path / "replayed.db") as replayed:
        live_state, replayed_state = dump_state(store.conn), dump_state(replayed.conn)
        assert replayed.positions() == store.positions()

    assert set(live_state) == {"example_institutions", "example_note_counts", "example_note_texts"}
    assert live_state == replayed_state
    assert diff_states(live_state, replayed_state) == {}
    assert live_state["example_note_texts"] == sorted(live_state["example_note_texts"])


def test_a_drifted_live_state_shows_up_in_the_diff(
    log: EventLog, runner: ProjectionRunner, store: ProjectionStore, tmp_path: Path
) -> None:
    fill(log)
    runner.catch_up()
    with store.transaction() as conn:
        conn.execute("UPDATE example_institutions SET active = 1 WHERE institution_id = 'bupt'")

    with runner.rebuild_into(tmp_path / "replayed.db") as replayed:
        diff = diff_states(dump_state(store.conn), dump_state(replayed.conn))

    assert diff == {
        "example_institutions": (
            [("bupt", "BUPT", "0x" + "ab" * 20, 1, "merged")],
            [("bupt", "BUPT", "0x" + "ab" * 20, 0, "merged")],
        )
    }


def test_rebuild_into_refuses_an_existing_file(
    runner: ProjectionRunner, store: ProjectionStore
) -> None:
    with pytest.raises(ProjectionError, match="existing file"):
        runner.rebuild_into(store.path)


def test_projection_names_must_be_unique(log: EventLog, store: ProjectionStore) -> None:
    with pytest.raises(ValueError, match="unique"):
        ProjectionRunner(log=log, store=store, projections=[NoteCounter(), NoteCounter()])
