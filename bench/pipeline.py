"""End-to-end pipeline latency (submit, governed, anchored): SQLite + tester vs Kafka + anvil.

Run: ``.venv/bin/python bench/pipeline.py [--batches 10] [--bootstrap host:port]`` (a few minutes).
Without ``--bootstrap`` (or ``BYR_TEST_KAFKA``) a local broker is started from the cached Maven
jars and stopped at the end; two anvil nodes serve the chains of the Kafka setup. Writes
``bench/results/pipeline.json`` and prints p50/p99 of each stage with the Kafka/SQLite ratio.

Both setups run the same steps in one process, one batch at a time (five short records each):
submit, then govern it through the pipeline's governance stage (the embedded setup with jobs from
the outbox, the Kafka setup from the consumer group, so the delivery over the corpus topic is
included), then anchor it through the anchor stage. Model loading is excluded: one warm-up batch
goes through first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from api.composition import Parts, initialize
from ledger.chain.accounts import DEV_PRIVATE_KEYS, dev_accounts
from ledger.chain.anvil import AnvilNode
from ledger.eventlog.kafka.broker import BrokerConfig, LocalBroker, free_port
from ledger.jobs import JobSource
from ledger.projections.outbox import JobKind
from ledger.settings import LedgerSettings

RESULTS = Path(__file__).resolve().parent / "results" / "pipeline.json"
TOPICS = ["routing", "modulation", "antennas", "coding", "fading", "scheduling", "queues", "radar"]


def batch_file(index: int, *, salt: str) -> bytes:
    """Five distinct records that pass intake."""
    records = [
        {
            "instruction": f"Explain case {salt}-{index}-{n} of {TOPICS[(index + n) % 8]}.",
            "input": "",
            "output": (
                f"Case {salt}-{index}-{n} concerns {TOPICS[(index + n) % 8]}: a receiver measures "
                f"{index * 7 + n} samples and reports {n + 2} findings about {index * 31 + n}."
            ),
            "discipline": "communication_principles",
        }
        for n in range(5)
    ]
    return json.dumps(records).encode()


def _until(condition: Callable[[], bool], *, step: Callable[[], object], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the pipeline did not move in time")
        step()


def run_batches(parts: Parts, *, batches: int, kafka: bool) -> list[dict[str, float]]:
    """Carry ``batches + 1`` batches through one at a time; the first (warm-up) is dropped."""
    source: JobSource = parts.pipeline.outbox
    if kafka:
        from api.consumer_group import ConsumerGroupJobs
        from ledger.eventlog.kafka import KafkaEventLog

        assert isinstance(parts.log, KafkaEventLog)
        source = ConsumerGroupJobs(event_log=parts.log, ledger=parts.ledger, poll_timeout_s=0.05)

    def govern() -> object:
        return parts.pipeline.run_once(JobKind.GOVERN, source=source)

    def anchor() -> object:
        return parts.pipeline.run_once(JobKind.ANCHOR)

    salt = uuid.uuid4().hex[:6]
    samples: list[dict[str, float]] = []
    try:
        for index in range(batches + 1):
            started = time.perf_counter()
            outcome = parts.submission.submit_bytes(
                batch_file(index, salt=salt), source_name=f"b{index}.json", institution_id="bupt"
            )
            assert outcome.batch is not None
            batch_id = outcome.batch.batch_id
            submitted = time.perf_counter()

            def status(batch_id: str = batch_id) -> str:
                parts.ledger.sync()
                return parts.ledger.batch(batch_id).status

            _until(lambda: status() != "submitted", step=govern, timeout_s=120)
            governed = time.perf_counter()
            _until(lambda: status() == "anchored", step=anchor, timeout_s=60)
            anchored = time.perf_counter()
            if index:
                samples.append(
                    {
                        "submit_s": submitted - started,
                        "governed_s": governed - started,
                        "anchored_s": anchored - started,
                    }
                )
    finally:
        source.close()
    return samples


def summarize(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for stage in ("submit_s", "governed_s", "anchored_s"):
        values = sorted(s[stage] for s in samples)
        p99_index = min(len(values) - 1, round(0.99 * (len(values) - 1)))
        out[stage] = {
            "p50": statistics.median(values),
            "p99": values[p99_index],
            "mean": statistics.fmean(values),
        }
    return out


@contextmanager
def kafka_bootstrap(given: str | None, workdir: Path) -> Iterator[str]:
    if given:
        yield given
        return
    port, controller = free_port(), free_port()
    broker = LocalBroker(
        BrokerConfig(home=workdir / "broker", port=port, controller_port=controller, heap_mb=512)
    )
    try:
        broker.up(timeout_s=240)
        yield broker.bootstrap
    finally:
        broker.down()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--bootstrap", default=os.environ.get("BYR_TEST_KAFKA") or None)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {
        "batches": args.batches,
        "records_per_batch": 5,
        "machine": {"python": sys.version.split()[0], "platform": platform.platform()},
    }
    with tempfile.TemporaryDirectory(prefix="byr-bench-pipeline-") as tmp:
        workdir = Path(tmp)
        embedded = LedgerSettings(home=workdir / "embedded")
        initialize(embedded)
        with Parts(embedded) as parts:
            sqlite_samples = run_batches(parts, batches=args.batches, kafka=False)
        with ExitStack() as stack:
            bootstrap = stack.enter_context(kafka_bootstrap(args.bootstrap, workdir))
            academic = stack.enter_context(AnvilNode(chain_id=embedded.academic_chain_id))
            incentive = stack.enter_context(AnvilNode(chain_id=embedded.incentive_chain_id))
            key = SecretStr(DEV_PRIVATE_KEYS[0])
            distributed = LedgerSettings(
                home=workdir / "kafka",
                event_log=f"kafka://{bootstrap}?prefix=bench{uuid.uuid4().hex[:8]}",
                chain_backend="rpc",  # type: ignore[arg-type]
                academic_rpc_url=academic.url,
                incentive_rpc_url=incentive.url,
                academic_private_key=key,
                incentive_private_key=key,
            )
            initialize(distributed)
            with Parts(distributed) as parts:
                # On rpc chains no demo institutions are registered: add the one the batches use.
                parts.institutions.add(
                    institution_id="bupt",
                    name="BUPT",
                    account=dev_accounts().institutions[0].address,
                )
                kafka_samples = run_batches(parts, batches=args.batches, kafka=True)
    results["sqlite_tester"] = summarize(sqlite_samples)
    results["kafka_anvil"] = summarize(kafka_samples)
    results["ratio_kafka_over_sqlite"] = {
        stage: {
            q: results["kafka_anvil"][stage][q] / results["sqlite_tester"][stage][q]
            for q in ("p50", "p99")
        }
        for stage in results["sqlite_tester"]
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    for stage, ratios in results["ratio_kafka_over_sqlite"].items():
        s, k = results["sqlite_tester"][stage], results["kafka_anvil"][stage]
        print(
            f"{stage:11s} sqlite+tester p50 {s['p50'] * 1000:8.1f} ms p99 {s['p99'] * 1000:8.1f} ms"
            f" | kafka+anvil p50 {k['p50'] * 1000:8.1f} ms p99 {k['p99'] * 1000:8.1f} ms"
            f" | ratio p50 {ratios['p50']:.2f}x p99 {ratios['p99']:.2f}x"
        )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
