"""The SQLite backend: the shared suite (two racing processes included), tamper detection, a
killed writer."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.eventlog import (
    BACKENDS,
    ConcurrencyConflict,
    EventLog,
    EventLogError,
    EventLogURLError,
    IntegrityError,
    IntegrityIssue,
    IntegrityReport,
    StreamAppend,
    open_event_log,
)
from ledger.eventlog.sqlite import SQLiteEventLog, open_url, sqlite_url
from ledger.events import envelope_hash
from tests.ledger.eventlog_suite import EventLogSuite, notes

REPO_ROOT = Path(__file__).resolve().parents[2]


class TestSQLiteEventLog(EventLogSuite):
    def create_log(self) -> EventLog:
        return open_event_log(sqlite_url(self.tmp_path / "events.db"))

    def reopen_log(self) -> EventLog:
        return open_event_log(sqlite_url(self.tmp_path / "events.db"))

    def url_for_other_processes(self) -> str:
        return sqlite_url(self.tmp_path / "events.db")


# -- URLs ---------------------------------------------------------------------------------------


def test_urls_name_relative_and_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    with open_event_log("sqlite:///var/events.db") as relative:
        assert isinstance(relative, SQLiteEventLog)
        assert relative.path == Path("var/events.db")
        assert relative.synchronous == "FULL"
    assert (tmp_path / "var" / "events.db").exists()

    absolute = tmp_path / "abs" / "events.db"
    assert sqlite_url(absolute).startswith("sqlite:////")
    with open_event_log(sqlite_url(absolute, synchronous="NORMAL")) as log:
        assert isinstance(log, SQLiteEventLog)
        assert log.path == absolute
        assert log.synchronous == "NORMAL"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgres://db/events", "unknown event log URL scheme"),
        ("events.db", "unknown event log URL scheme"),
        ("sqlite://host/events.db", "take no host"),
        ("sqlite:///", "needs a file path"),
        ("sqlite:///:memory:", "needs a file path"),
        ("sqlite:///e.db?synchronous=off", "synchronous must be"),
        ("sqlite:///e.db?journal=delete", "unknown sqlite URL option"),
    ],
)
def test_bad_urls_are_refused_with_a_clear_error(url: str, message: str) -> None:
    with pytest.raises(EventLogURLError, match=message):
        open_event_log(url)


def test_backends_are_found_by_scheme_and_a_missing_one_is_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert BACKENDS["kafka"] == "ledger.eventlog.kafka"
    monkeypatch.setitem(BACKENDS, "nowhere", "ledger.eventlog.nowhere")
    with pytest.raises(EventLogURLError, match="nowhere:// event log backend is not available"):
        open_event_log("nowhere://host")


def test_a_file_that_is_not_an_event_log_is_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "events.db"
    garbage.write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(EventLogError, match="cannot open event log"):
        SQLiteEventLog(garbage)


def test_open_url_rejects_other_schemes() -> None:
    with pytest.raises(EventLogURLError):
        open_url("memory://")


# -- tampering ----------------------------------------------------------------------------------

Populated = tuple[SQLiteEventLog, sqlite3.Connection]


@pytest.fixture
def populated(tmp_path: Path) -> Iterator[Populated]:
    """A log with two streams (a: 4 events, b: 2 events) and a raw connection to tamper with.

    Positions: a1=1 a2=2 b1=3 a3=4 b2=5 a4=6.
    """
    log = SQLiteEventLog(tmp_path / "events.db")
    log.append("batch-a", notes("a1", "a2"), expected_version=0)
    log.append_many(
        [
            StreamAppend("batch-b", notes("b1"), expected_version=0),
            StreamAppend("batch-a", notes("a3"), expected_version=2),
        ]
    )
    log.append("batch-b", notes("b2"), expected_version=1)
    log.append("batch-a", notes("a4"), expected_version=3)
    raw = sqlite3.connect(tmp_path / "events.db", isolation_level=None)
    assert [r[0] for r in raw.execute("SELECT stream_id FROM events ORDER BY position")] == [
        "batch-a",
        "batch-a",
        "batch-b",
        "batch-a",
        "batch-b",
        "batch-a",
    ]
    assert log.verify_integrity().ok
    yield log, raw
    raw.close()
    log.close()


def _issues_at(report: IntegrityReport) -> set[tuple[IntegrityIssue, int | None]]:
    return {(p.issue, p.position) for p in report.problems}


def test_an_edited_payload_is_a_hash_mismatch(populated: Populated) -> None:
    log, raw = populated
    raw.execute(
        "UPDATE events SET payload = ? WHERE position = 2",
        (json.dumps({"text": "rewritten", "tags": [], "extra": {}}),),
    )

    report = log.verify_integrity()
    assert _issues_at(report) == {(IntegrityIssue.HASH_MISMATCH, 2)}
    with pytest.raises(IntegrityError, match="hash_mismatch"):
        report.raise_for_problems()


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(populated: Populated) -> None:
    log, raw = populated
    (envelope,) = [e for e in log.read_all() if e.position == 2]
    fields = envelope.hashed_fields()
    fields["payload"] = {"text": "forged", "tags": [], "extra": {}}
    raw.execute(
        "UPDATE events SET payload = ?, hash = ? WHERE position = 2",
        (json.dumps(fields["payload"]), envelope_hash(fields)),
    )

    report = log.verify_integrity()
    assert _issues_at(report) == {(IntegrityIssue.BROKEN_LINK, 4)}


def test_a_forged_last_event_disagrees_with_the_stream_head(populated: Populated) -> None:
    log, raw = populated
    (envelope,) = [e for e in log.read_all() if e.position == 6]
    fields = envelope.hashed_fields()
    fields["payload"] = {"text": "forged", "tags": [], "extra": {}}
    raw.execute(
        "UPDATE events SET payload = ?, hash = ? WHERE position = 6",
        (json.dumps(fields["payload"]), envelope_hash(fields)),
    )

    report = log.verify_integrity()
    assert report.issues() == {IntegrityIssue.HEAD_MISMATCH}
    assert [p.stream_id for p in report.problems] == ["batch-a"]


def test_a_deleted_middle_event_is_detected(populated: Populated) -> None:
    log, raw = populated
    raw.execute("DELETE FROM events WHERE position = 2")

    report = log.verify_integrity()
    assert report.issues() == {
        IntegrityIssue.POSITION_GAP,
        IntegrityIssue.SEQUENCE_GAP,
        IntegrityIssue.BROKEN_LINK,
    }
    assert {p.position for p in report.problems} == {3, 4}


def test_a_deleted_last_event_of_a_stream_is_detected(populated: Populated) -> None:
    log, raw = populated
    raw.execute("DELETE FROM events WHERE position = 5")  # b2: last of batch-b, not of the log

    report = log.verify_integrity()
    assert IntegrityIssue.HEAD_MISMATCH in report.issues()
    assert any(
        p.issue is IntegrityIssue.HEAD_MISMATCH and p.stream_id == "batch-b"
        for p in report.problems
    )


def test_a_deleted_last_event_of_the_log_is_detected(populated: Populated) -> None:
    log, raw = populated
    raw.execute("DELETE FROM events WHERE position = 6")

    report = log.verify_integrity()
    assert report.issues() == {IntegrityIssue.HEAD_MISMATCH, IntegrityIssue.POSITION_GAP}


def test_an_unreadable_row_is_reported_not_raised(populated: Populated) -> None:
    log, raw = populated
    raw.execute("UPDATE events SET payload = '{not json' WHERE position = 3")

    report = log.verify_integrity()
    assert (IntegrityIssue.UNREADABLE, 3) in _issues_at(report)
    assert IntegrityIssue.POSITION_GAP not in report.issues()


def test_unique_stream_sequence_index_backs_up_a_wrong_stream_head(populated: Populated) -> None:
    log, raw = populated
    raw.execute("UPDATE stream_heads SET version = 1 WHERE stream_id = 'batch-a'")
    head = log.head_position()

    with pytest.raises(ConcurrencyConflict) as caught:
        log.append("batch-a", notes("would duplicate a2"), expected_version=1)
    assert (caught.value.expected, caught.value.actual) == (1, 4)
    assert log.head_position() == head


# -- a killed writer ----------------------------------------------------------------------------

_CHILD = (
    "import sys; from tests.ledger.test_eventlog_sqlite import child_main; child_main(sys.argv)"
)


def _spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


def child_main(argv: list[str]) -> None:
    """Entry point of the writer process the test below starts: ``PATH``; appends until killed,
    printing ``POSITION EVENT_ID`` for every event once its append returned."""
    log = SQLiteEventLog(argv[1])
    out = sys.stdout
    i = 0
    while True:
        if i % 3 == 0:
            stored = log.append_many(
                [
                    StreamAppend(f"batch-{i}", notes("x", "y"), expected_version=0),
                    StreamAppend(f"institution-{i}", notes("z"), expected_version=0),
                ]
            )
        else:
            version = log.stream_version("batch-loop")
            stored = log.append("batch-loop", notes(f"n{i}"), expected_version=version)
        # Report only after append returned: these events must survive the kill.
        out.write("".join(f"{e.position} {e.event_id}\n" for e in stored))
        out.flush()
        i += 1


def test_a_writer_killed_mid_run_loses_no_acknowledged_event(tmp_path: Path) -> None:
    path = str(tmp_path / "events.db")
    child = _spawn(path)
    assert child.stdout is not None
    acknowledged: list[tuple[int, str]] = []
    try:
        while len(acknowledged) < 400:
            line = child.stdout.readline()
            assert line, "writer exited early"
            position, event_id = line.split()
            acknowledged.append((int(position), event_id))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        # Lines written before the kill are still in the pipe; a torn last line is ignored.
        for line in child.stdout.read().splitlines():
            parts = line.split()
            if len(parts) == 2 and len(parts[1]) == 36:
                acknowledged.append((int(parts[0]), parts[1]))
    finally:
        child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    with SQLiteEventLog(path) as log:
        stored = {e.position: e.event_id for e in log.read_all()}
        missing = [(p, i) for p, i in acknowledged if stored.get(p) != i]
        assert not missing
        assert len(stored) >= len(acknowledged)
        report = log.verify_integrity()
        assert report.ok, report.problems
        assert report.events_checked == len(stored)
