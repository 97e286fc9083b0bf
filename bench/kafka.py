"""Kafka in one run: event-log rates and end-to-end latency against SQLite, then scale-out.

Run: ``.venv/bin/python bench/kafka.py [--bootstrap host:port] [--events 20000] [--batches 10]
[--stream-records 5000]`` (about 20 minutes; ``--stream-records 0`` skips the third part, leaving
a few minutes). Without ``--bootstrap`` (or ``BYR_TEST_KAFKA``) one local broker is started from
the cached Maven jars for every part and stopped at the end. It runs

1. ``bench/eventlog_kafka.py``: append (produce), replay and consumer-group (consume) events/s and
   append-to-visible latency, for the SQLite log and the Kafka log;
2. ``bench/pipeline.py``: submit -> governed -> anchored latency p50/p99, SQLite log with the
   embedded chains vs Kafka log (consumer-group governance) with two anvil nodes;
3. ``bench/governance_workers.py``: one ``--stream-records`` stream through one governance worker,
   then through two, on Kafka and anvil;

and writes them, with their Kafka/SQLite and two/one-worker ratios, to ``bench/results/kafka.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
# Run as a script, this folder comes first on sys.path, where this file would shadow the kafka
# package (kafka-python) that the event log imports: take it off before anything imports kafka.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]


def _sibling(name: str) -> ModuleType:
    """Import the benchmark script ``bench/<name>.py``."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


eventlog_kafka = _sibling("eventlog_kafka")
pipeline = _sibling("pipeline")
governance_workers = _sibling("governance_workers")

RESULTS = Path(__file__).resolve().parent / "results" / "kafka.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--bootstrap", default=os.environ.get("BYR_TEST_KAFKA") or None)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--stream-records", type=int, default=5000, help="0: skip scale-out")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory(prefix="byr-bench-kafka-") as folder,
        pipeline.kafka_bootstrap(args.bootstrap, Path(folder)) as bootstrap,
    ):
        print(f"== event log (Kafka at {bootstrap})", flush=True)
        eventlog_kafka.main(["--bootstrap", bootstrap, "--events", str(args.events)])
        print("== end to end: submit -> governed -> anchored", flush=True)
        pipeline.main(["--bootstrap", bootstrap, "--batches", str(args.batches)])
        if args.stream_records:
            print("== scale-out: one stream through one, then two governance workers", flush=True)
            governance_workers.main(
                ["--bootstrap", bootstrap, "--records", str(args.stream_records)]
            )
    eventlog: dict[str, Any] = json.loads(eventlog_kafka.RESULTS.read_text())
    latency: dict[str, Any] = json.loads(pipeline.RESULTS.read_text())
    scale_out: dict[str, Any] | None = (
        json.loads(governance_workers.RESULTS.read_text()) if args.stream_records else None
    )
    summary: dict[str, Any] = {
        "benchmark": "kafka",
        "eventlog": eventlog,
        "pipeline": latency,
        "governance_workers": scale_out,
        "headline": {
            "produce_per_s": {
                backend: eventlog[backend]["append_batched"]["per_s"]
                for backend in ("sqlite", "kafka")
            },
            "replay_per_s": {
                backend: eventlog[backend]["replay"]["per_s"] for backend in ("sqlite", "kafka")
            },
            "group_consume_per_s_kafka": eventlog["kafka"]["group_consume"]["per_s"],
            "submit_to_anchored_s": {
                setup: latency[setup]["anchored_s"] for setup in ("sqlite_tester", "kafka_anvil")
            },
            "submit_to_governed_s": {
                setup: latency[setup]["governed_s"] for setup in ("sqlite_tester", "kafka_anvil")
            },
            "governed_records_per_s_by_workers": {
                str(setup["governance_workers"]): setup["records_per_s"]
                for setup in (scale_out or {}).get("setups", [])
            },
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
    head = summary["headline"]
    print("== summary (Kafka / SQLite)")
    for key in ("produce_per_s", "replay_per_s"):
        k, s = head[key]["kafka"], head[key]["sqlite"]
        print(f"{key:<22} kafka {k:>9,.0f}  sqlite {s:>9,.0f}  ratio {k / s:.2f}")
    print(f"{'group_consume_per_s':<22} kafka {head['group_consume_per_s_kafka']:>9,.0f}")
    for key in ("submit_to_governed_s", "submit_to_anchored_s"):
        k, s = head[key]["kafka_anvil"], head[key]["sqlite_tester"]
        print(
            f"{key:<22} p50 kafka {k['p50'] * 1000:7.0f} ms sqlite {s['p50'] * 1000:6.0f} ms"
            f" | p99 kafka {k['p99'] * 1000:7.0f} ms sqlite {s['p99'] * 1000:6.0f} ms"
        )
    by_workers = head["governed_records_per_s_by_workers"]
    if by_workers:
        rates = "  ".join(f"{n} worker(s) {rate} records/s" for n, rate in by_workers.items())
        print(f"{'governance scale-out':<22} {rates}")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
