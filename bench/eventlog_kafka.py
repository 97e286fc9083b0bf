"""Kafka vs SQLite event log, in one run: append and replay rates, append-to-visible latency.

Run: ``.venv/bin/python bench/eventlog_kafka.py [--bootstrap host:port]`` (about a minute). Without
``--bootstrap`` (or ``BYR_TEST_KAFKA``) a local broker is started from the cached Maven jars in a
temporary folder and stopped at the end. Writes ``bench/results/eventlog_kafka.json`` and prints
each figure with its Kafka/SQLite ratio. ``bench/kafka.py`` runs it together with the end-to-end
latency benchmark on one broker.

Both backends get the same work: ``RecordGoverned`` events, 10 per batch stream, appended with
``append_many`` calls of ``--batch-size`` events; a full replay with ``read_all`` (every envelope
decoded); then single-event appends through one handle while a subscriber on a SECOND handle (as a
worker process would have) follows the log: latency is from the start of ``append()`` to the
subscriber receiving the envelope. The functions taking an :class:`EventLog` are meant for reuse by
end-to-end benchmarks.

Kafka only: ``--writer-processes`` processes append at once (single-event appends, a quarter of
them to one shared stream), first each under its own writer name, then all under one name (one
transactional id, taken in turns by fencing): appends per second and the fencings counted.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.eventlog import ConcurrencyConflict, EventLog, StreamAppend, open_event_log
from ledger.eventlog.kafka import KafkaEventLog, kafka_url
from ledger.eventlog.kafka.broker import (
    BrokerConfig,
    LocalBroker,
    free_port,
)
from ledger.eventlog.sqlite import sqlite_url
from ledger.events import RecordGoverned, Topic, decode

RESULTS = Path(__file__).resolve().parent / "results" / "eventlog_kafka.json"


@dataclass(frozen=True)
class Rate:
    """Events handled per second of wall-clock time and of this process's CPU time."""

    name: str
    events: int
    wall_s: float
    cpu_s: float

    @property
    def per_s(self) -> float:
        return self.events / self.wall_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "wall_s": round(self.wall_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "per_s": round(self.per_s, 1),
            "per_cpu_s": round(self.events / self.cpu_s, 1) if self.cpu_s > 0 else None,
        }


@dataclass(frozen=True)
class Latency:
    """Milliseconds per sample."""

    samples_ms: Sequence[float]

    def percentile(self, q: float) -> float:
        ordered = sorted(self.samples_ms)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]

    def as_dict(self) -> dict[str, Any]:
        return {
            "samples": len(self.samples_ms),
            "p50_ms": round(self.percentile(50), 2),
            "p99_ms": round(self.percentile(99), 2),
            "mean_ms": round(statistics.fmean(self.samples_ms), 2),
            "max_ms": round(max(self.samples_ms), 2),
        }


def governed(i: int, batch_id: str) -> RecordGoverned:
    return RecordGoverned(
        batch_id=batch_id,
        record_id=f"rec_{i:020x}",
        accepted=i % 7 != 0,
        reasons=[] if i % 7 else ["pii.unresolved", "quality.too_short"],
        scores={"quality": (i % 100) / 100, "pii": 0.0, "coherence": 0.5 + (i % 50) / 100},
    )


def batched_work(*, events: int, batch_size: int) -> list[list[StreamAppend]]:
    """``events`` new events as ``append_many`` calls of ``batch_size`` events, 10 per stream."""
    per_stream = 10
    streams = max(events // per_stream, 1)
    batch_ids = [uuid.uuid4().hex for _ in range(streams)]
    appends = [
        StreamAppend(
            f"batch-{batch_ids[s]}",
            [governed(s * per_stream + k, batch_ids[s]) for k in range(per_stream)],
            expected_version=0,
        )
        for s in range(streams)
    ]
    per_call = max(batch_size // per_stream, 1)
    return [appends[i : i + per_call] for i in range(0, len(appends), per_call)]


def timed(name: str, events: int, fn: Callable[[], object]) -> Rate:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return Rate(name, events, time.perf_counter() - wall, time.process_time() - cpu)


def append_rate(log: EventLog, work: Sequence[Sequence[StreamAppend]]) -> Rate:
    """Batched appends: every ``append_many`` of ``work`` in turn."""
    events = sum(len(a.events) for call in work for a in call)

    def run() -> None:
        for appends in work:
            log.append_many(appends)

    return timed("append_batched", events, run)


def replay_rate(log: EventLog) -> Rate:
    """Read the whole log from the start, decoding every envelope."""
    count = 0

    def run() -> None:
        nonlocal count
        for envelope in log.read_all():
            decode(envelope)
            count += 1

    rate = timed("replay", 0, run)
    return Rate(rate.name, count, rate.wall_s, rate.cpu_s)


def group_consume_rate(log: KafkaEventLog, *, topic: Topic, expected: int) -> Rate:
    """One consumer-group member reading a family topic from the start (Kafka only)."""
    count = 0

    def run() -> None:
        nonlocal count
        with log.consume(group_id=f"bench-{uuid.uuid4().hex[:8]}", topics=[topic]) as consumer:
            deadline = time.monotonic() + 120
            while count < expected and time.monotonic() < deadline:
                for delivery in consumer.poll(timeout=0.5):
                    decode(delivery.envelope)
                    count += 1

    rate = timed("group_consume", 0, run)
    return Rate(rate.name, count, rate.wall_s, rate.cpu_s)


def visibility_latency(
    *, writer: EventLog, reader: EventLog, appends: int, gap_s: float = 0.005
) -> tuple[Latency, Latency]:
    """Append one event at a time through ``writer`` while ``reader`` subscribes.

    Returns (append call duration, append start to the subscriber receiving the envelope).
    """
    started: dict[str, float] = {}
    seen: dict[str, float] = {}
    stop = threading.Event()
    ready = threading.Event()
    from_position = writer.head_position() + 1
    stream = f"batch-latency-{uuid.uuid4().hex}"
    batch_id = uuid.uuid4().hex

    def follow() -> None:
        ready.set()
        for envelope in reader.subscribe(
            from_position=from_position, stop=stop, poll_interval=0.01
        ):
            seen[envelope.event_id] = time.perf_counter()
            if len(seen) >= appends:
                return

    follower = threading.Thread(target=follow)
    follower.start()
    ready.wait(10)
    calls: list[float] = []
    try:
        for i in range(appends):
            begin = time.perf_counter()
            (stored,) = writer.append(stream, [governed(i, batch_id)], expected_version=i)
            calls.append((time.perf_counter() - begin) * 1000)
            started[stored.event_id] = begin
            time.sleep(gap_s)
        deadline = time.monotonic() + 60
        while len(seen) < appends and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        follower.join(timeout=30)
    visible = [(seen[i] - t) * 1000 for i, t in started.items() if i in seen]
    if len(visible) != appends:
        raise RuntimeError(f"the subscriber saw {len(visible)} of {appends} appends")
    return Latency(calls), Latency(visible)


def run_backend(
    name: str,
    url: str,
    *,
    events: int,
    batch_size: int,
    latency_appends: int,
) -> dict[str, Any]:
    """Every measurement on the log at ``url`` (a fresh, empty one)."""
    work = batched_work(events=events, batch_size=batch_size)
    out: dict[str, Any] = {"url": url}
    with open_event_log(url) as log:
        appended = append_rate(log, work)
        replayed = replay_rate(log)
        rates = [appended, replayed]
        if isinstance(log, KafkaEventLog):
            rates.append(group_consume_rate(log, topic=Topic.CORPUS, expected=appended.events))
        with open_event_log(url) as reader:
            calls, visible = visibility_latency(writer=log, reader=reader, appends=latency_appends)
        report = log.verify_integrity()
        if not report.ok:
            raise RuntimeError(f"{name}: integrity problems {report.problems[:3]}")
    for rate in rates:
        out[rate.name] = rate.as_dict()
        print(f"{name:<7} {rate.name:<16} {rate.events:>7} events  {rate.per_s:>9,.0f}/s")
    out["append_call_latency"] = calls.as_dict()
    out["append_to_visible_latency"] = visible.as_dict()
    for label, lat in (("append() call", calls), ("append->visible", visible)):
        print(
            f"{name:<7} {label:<16} p50 {lat.percentile(50):7.2f} ms  "
            f"p99 {lat.percentile(99):7.2f} ms"
        )
    return out


def _writer_process(url: str, name: str, appends: int, go: Any, results: Any) -> None:
    """One appending process: ``appends`` single-event appends, every fourth one to a stream all
    processes share (retried on a conflict), the others to its own streams."""
    with open_event_log(url) as log:
        assert isinstance(log, KafkaEventLog)
        log.stream_version("warmup")
        results.put(("ready", name))
        go.wait(120)
        conflicts = 0
        started = time.perf_counter()
        for i in range(appends):
            stream = "batch-shared" if i % 4 == 3 else f"batch-{name}-{i % 5}"
            while True:
                try:
                    version = log.stream_version(stream)
                    log.append(stream, [governed(i, stream)], expected_version=version)
                    break
                except ConcurrencyConflict:
                    conflicts += 1
        elapsed = time.perf_counter() - started
        results.put(
            (
                "done",
                {
                    "name": name,
                    "writer": log.config.writer,
                    "appends": appends,
                    "wall_s": round(elapsed, 3),
                    "conflicts": conflicts,
                    "fenced": log.writer.fenced,
                    "producer_restarts": log.writer.fencings,
                    "rechecks": log.writer.rechecks,
                },
            )
        )


def writer_processes(
    url: str, *, processes: int, appends: int, shared_name: bool
) -> dict[str, Any]:
    """``processes`` writer processes appending at once, each under its own writer name or all
    under one; appends per second over the slowest process, and the fencings counted."""
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    results = context.Queue()
    children = []
    for p in range(processes):
        writer = "shared" if shared_name else f"w{p}"
        child = context.Process(
            target=_writer_process,
            args=(f"{url}&writer={writer}", f"p{p}", appends, go, results),
        )
        child.start()
        children.append(child)
    try:
        for _ in children:
            results.get(timeout=180)
        go.set()
        done = [results.get(timeout=900)[1] for _ in children]
    finally:
        for child in children:
            child.join(timeout=60)
            if child.is_alive():
                child.kill()
    wall = max(d["wall_s"] for d in done)
    total = sum(d["appends"] for d in done)
    out = {
        "processes": processes,
        "shared_name": shared_name,
        "appends_per_s": round(total / wall, 2),
        "fenced": sum(d["fenced"] for d in done),
        "conflicts": sum(d["conflicts"] for d in done),
        "rechecks": sum(d["rechecks"] for d in done),
        "per_process": done,
    }
    label = "one shared name" if shared_name else "own names"
    print(
        f"kafka   {processes} writers, {label:<15} {out['appends_per_s']:>8.1f} appends/s  "
        f"fenced {out['fenced']}  conflicts {out['conflicts']}  rechecks {out['rechecks']}"
    )
    return out


def ratios(kafka: dict[str, Any], sqlite: dict[str, Any]) -> dict[str, float]:
    """Kafka divided by SQLite for every shared figure.

    Above 1 means Kafka is faster for a rate, slower for a latency.
    """
    out: dict[str, float] = {}
    for key in ("append_batched", "replay"):
        out[f"{key}_per_s"] = round(kafka[key]["per_s"] / sqlite[key]["per_s"], 3)
    for key in ("append_call_latency", "append_to_visible_latency"):
        for q in ("p50_ms", "p99_ms"):
            out[f"{key}_{q}"] = round(kafka[key][q] / sqlite[key][q], 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--bootstrap", default=os.environ.get("BYR_TEST_KAFKA"))
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=200, help="events per append_many")
    parser.add_argument("--latency-appends", type=int, default=300)
    parser.add_argument(
        "--writer-processes", type=int, default=2, help="processes appending at once"
    )
    parser.add_argument(
        "--writer-appends", type=int, default=100, help="single-event appends per process"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="byr-bench-kafka-") as folder:
        broker: LocalBroker | None = None
        bootstrap = args.bootstrap
        if not bootstrap:
            broker = LocalBroker(
                BrokerConfig(
                    home=Path(folder) / "broker", port=free_port(), controller_port=free_port()
                )
            )
            print("starting a local Kafka broker ...", flush=True)
            bootstrap = broker.up()
        try:
            common = {
                "events": args.events,
                "batch_size": args.batch_size,
                "latency_appends": args.latency_appends,
            }
            sqlite = run_backend("sqlite", sqlite_url(Path(folder) / "events.db"), **common)
            kafka = run_backend(
                "kafka", kafka_url(bootstrap, prefix=f"bench{uuid.uuid4().hex[:8]}"), **common
            )
            kafka["writer_processes"] = [
                writer_processes(
                    kafka_url(bootstrap, prefix=f"bench{uuid.uuid4().hex[:8]}"),
                    processes=args.writer_processes,
                    appends=args.writer_appends,
                    shared_name=shared,
                )
                for shared in (False, True)
            ]
        finally:
            if broker is not None:
                broker.down()

    kafka_over_sqlite = ratios(kafka, sqlite)
    summary: dict[str, Any] = {
        "benchmark": "kafka",
        "workload": {**common, "event_type": "RecordGoverned", "events_per_stream": 10},
        "note": (
            "ratios are kafka / sqlite; SQLite runs with synchronous=FULL, Kafka is a single-node "
            "local broker (acks=all, transactions, read_committed); latency is measured from the "
            "start of append() on one handle to a subscriber on a second handle receiving it"
        ),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version(),
        },
        "sqlite": sqlite,
        "kafka": kafka,
        "ratios_kafka_over_sqlite": kafka_over_sqlite,
    }
    for key, value in kafka_over_sqlite.items():
        print(f"ratio kafka/sqlite {key:<34} {value:8.3f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
