"""Event log throughput: batched and unbatched appends, replay, projection catch-up.

Run: ``.venv/bin/python bench/eventlog.py`` (20-45 s). Prints each rate with its ratio to the
target and writes ``bench/results/eventlog.json``. Rates are given per wall-clock second and per
CPU second of this process: when other work competes for the CPUs (see ``cpu_pressure_10s`` in the
JSON) the wall-clock rate drops and the CPU rate shows what the code itself costs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ledger.eventlog import StreamAppend
from ledger.eventlog.sqlite import SQLiteEventLog, Synchronous
from ledger.events import Envelope, RecordGoverned, decode
from ledger.projections import Projection, ProjectionRunner, ProjectionStore, on

RESULTS = Path(__file__).resolve().parent / "results" / "eventlog.json"
TARGETS = {"append_batched": 20_000.0, "replay": 50_000.0}


class GovernedRecords(Projection):
    """One row per governed record: the shape of the real per-record read models."""

    name = "bench_governed_records"
    schema = """
        CREATE TABLE IF NOT EXISTS bench_governed_records (
            record_id TEXT PRIMARY KEY,
            batch_id TEXT NOT NULL,
            accepted INTEGER NOT NULL,
            quality REAL NOT NULL
        )
    """

    @on(RecordGoverned)
    def governed(self, event: RecordGoverned, envelope: Envelope, conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO bench_governed_records VALUES (?, ?, ?, ?)",
            (event.record_id, event.batch_id, int(event.accepted), event.scores["quality"]),
        )


@dataclass
class Measurement:
    name: str
    events: int
    wall_s: float
    cpu_s: float
    target_per_s: float | None = None

    @property
    def per_wall_s(self) -> float:
        return self.events / self.wall_s

    @property
    def per_cpu_s(self) -> float:
        return self.events / self.cpu_s if self.cpu_s > 0 else float("inf")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["per_wall_s"] = round(self.per_wall_s, 1)
        out["per_cpu_s"] = round(self.per_cpu_s, 1)
        if self.target_per_s:
            out["ratio_to_target"] = round(self.per_wall_s / self.target_per_s, 2)
            out["ratio_to_target_cpu"] = round(self.per_cpu_s / self.target_per_s, 2)
        return out

    def line(self) -> str:
        text = (
            f"{self.name:<22} {self.events:>7} events  {self.per_wall_s:>9,.0f}/s wall  "
            f"{self.per_cpu_s:>9,.0f}/s cpu"
        )
        if self.target_per_s:
            wall = self.per_wall_s / self.target_per_s
            cpu = self.per_cpu_s / self.target_per_s
            text += (
                f"  target {self.target_per_s:,.0f}/s: {wall:4.2f}x wall "
                f"({'meets' if wall >= 1 else 'BELOW'}), {cpu:4.2f}x cpu"
            )
        return text


def cpu_pressure() -> float | None:
    """Share of the last 10 s in which runnable tasks waited for a CPU (Linux PSI), if known."""
    try:
        first = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    fields = dict(part.split("=") for part in first.split()[1:])
    return float(fields["avg10"]) / 100


def measure(name: str, events: int, fn: Callable[[], object], target: float | None = None):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    measurement = Measurement(
        name, events, time.perf_counter() - wall, time.process_time() - cpu, target
    )
    print(measurement.line(), flush=True)
    return measurement


def governed(i: int, batch_id: str) -> RecordGoverned:
    return RecordGoverned(
        batch_id=batch_id,
        record_id=f"rec_{i:020x}",
        accepted=i % 7 != 0,
        reasons=[] if i % 7 else ["pii.unresolved", "quality.too_short"],
        scores={"quality": (i % 100) / 100, "pii": 0.0, "coherence": 0.5 + (i % 50) / 100},
    )


def batched_work(*, events: int, batch_size: int, first_record: int) -> list[list[StreamAppend]]:
    """``events`` new events as append_many calls of ``batch_size`` events (10 per batch stream)."""
    per_stream = min(10, batch_size)
    streams_per_call = max(batch_size // per_stream, 1)
    streams = events // per_stream
    batch_ids = [uuid.uuid4().hex for _ in range(streams)]
    appends = [
        StreamAppend(
            f"batch-{batch_ids[s]}",
            [governed(first_record + s * per_stream + k, batch_ids[s]) for k in range(per_stream)],
            expected_version=0,
        )
        for s in range(streams)
    ]
    return [appends[i : i + streams_per_call] for i in range(0, streams, streams_per_call)]


def run(
    *,
    folder: Path,
    events: int,
    unbatched: int,
    compare_events: int,
    batch_size: int,
    synchronous: Synchronous,
) -> dict[str, Any]:
    # Events are built before timing: the benchmark measures the log, not pydantic construction.
    work = batched_work(events=events, batch_size=batch_size, first_record=0)
    events = sum(len(a.events) for call in work for a in call)
    singles = [governed(events + i, "single") for i in range(unbatched)]
    results: list[Measurement] = []

    with SQLiteEventLog(folder / "events.db", synchronous=synchronous) as log:

        def append_batched() -> None:
            for appends in work:
                log.append_many(appends)

        def append_unbatched() -> None:
            for i, evt in enumerate(singles):
                log.append(f"batch-single-{i % 10}", [evt], expected_version=i // 10)

        def replay() -> None:
            count = 0
            for envelope in log.read_all():
                decode(envelope)
                count += 1
            assert count == events + unbatched, count

        results.append(measure("append_batched", events, append_batched, TARGETS["append_batched"]))
        results.append(measure("append_unbatched", unbatched, append_unbatched))
        total = log.head_position()
        results.append(measure("replay", total, replay, TARGETS["replay"]))

        with ProjectionStore(folder / "state.db") as store:
            runner = ProjectionRunner(log=log, store=store, projections=[GovernedRecords()])
            results.append(measure("projection_catch_up", total, runner.catch_up))
            (rows,) = store.conn.execute("SELECT COUNT(*) FROM bench_governed_records").fetchone()
            assert rows == total, rows

        report_holder: list[Any] = []
        results.append(
            measure("verify_integrity", total, lambda: report_holder.append(log.verify_integrity()))
        )
        assert report_holder[0].ok, report_holder[0].problems
        size_mb = (folder / "events.db").stat().st_size / 1e6

    if compare_events:
        # The same batched appends at the other durability level: the difference is the cost of
        # syncing the WAL to disk at every commit.
        other: Synchronous = "NORMAL" if synchronous != "NORMAL" else "FULL"
        more = batched_work(events=compare_events, batch_size=batch_size, first_record=10**9)
        count = sum(len(a.events) for call in more for a in call)
        with SQLiteEventLog(folder / "compare.db", synchronous=other) as log:

            def append_other() -> None:
                for appends in more:
                    log.append_many(appends)

            results.append(measure(f"append_batched_{other.lower()}", count, append_other))

    return {
        "benchmark": "eventlog",
        "backend": "sqlite",
        "synchronous": synchronous,
        "batch_size": batch_size,
        "event_type": "RecordGoverned",
        "note": "per_cpu_s is events per CPU second of this process (steadier on a shared machine)",
        "database_mb": round(size_mb, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "cpu_pressure_10s": cpu_pressure(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
        },
        "targets_per_s": TARGETS,
        "results": {m.name: m.as_dict() for m in results},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events appended in batches")
    parser.add_argument("--unbatched", type=int, default=2_000, help="events appended one by one")
    parser.add_argument(
        "--compare-events",
        type=int,
        default=50_000,
        help="batched events appended again at the other durability level (0: skip)",
    )
    parser.add_argument("--batch-size", type=int, default=1_000, help="events per append_many")
    parser.add_argument(
        "--synchronous", choices=["FULL", "NORMAL"], default="FULL", help="SQLite durability level"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="where to write the JSON")
    args = parser.parse_args(argv)

    print(
        f"event log benchmark: {args.events} batched + {args.unbatched} unbatched events, "
        f"synchronous={args.synchronous}, {os.cpu_count()} cpus, "
        f"load {os.getloadavg()[0]:.2f}, cpu pressure {cpu_pressure()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="byr-bench-eventlog-") as folder:
        summary = run(
            folder=Path(folder),
            events=args.events,
            unbatched=args.unbatched,
            compare_events=args.compare_events,
            batch_size=args.batch_size,
            synchronous=args.synchronous,
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
