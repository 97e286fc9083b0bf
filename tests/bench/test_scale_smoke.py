"""``bench/scale.py`` on a small corpus: the whole pipeline runs and the JSON says so.

The figures themselves are measured, never asserted; what is checked is that every stage passed
every record it should have: all records recorded and governed, every accepted record (and only
those) in the feed, each stage event once per batch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.kafka_fixtures import (
    KafkaForTests,
    kafka_broker_fixture,  # noqa: F401 - provides kafka_broker
)

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("intake", "governance", "anchor", "reward", "feed")
RECORDS = 200


def run_scale(out: Path, *args: str, timeout_s: float) -> dict[str, Any]:
    env = os.environ | {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "ETH_HASH_BACKEND": os.environ.get("ETH_HASH_BACKEND", "pysha3"),
    }
    command = [sys.executable, "bench/scale.py", "--records", str(RECORDS), "--batch-size", "100"]
    done = subprocess.run(
        [*command, "--out", str(out), *args],
        cwd=ROOT,
        env={k: v for k, v in env.items() if not k.startswith("BYR_")},
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return results


def check_run(results: dict[str, Any], setup: str) -> None:
    assert results["records"] == RECORDS
    assert results["wall_s"] > 0
    assert results["peak_rss_gb"] > 0
    run = results["setups"][setup]
    assert run["setup"] == setup
    assert run["records"] == RECORDS
    assert run["batches"] == 2
    assert run["wall_s"] > 0
    # The sampled tree includes the loaded governance models: well above an idle interpreter.
    assert run["peak_rss_gb"] > 0.3
    for stage in STAGES:
        assert run["stages"][stage]["records_per_s"] > 0, stage
    assert run["stages"]["intake"]["records"] == RECORDS
    assert run["stages"]["governance"]["records"] == RECORDS
    assert run["stages"]["anchor"]["records"] == RECORDS
    assert 0 < run["accepted"] <= RECORDS
    assert run["accepted"] + run["rejected"] == RECORDS
    assert run["stages"]["reward"]["records"] == run["accepted"]
    assert run["in_feed"] == run["stages"]["feed"]["records"] == run["accepted"]
    assert run["exactly_once"] is True
    # Planted near duplicates are there, and governance finds no more than it rejects.
    assert run["planted_near_duplicates"] >= 1
    assert run["duplicates_found"] <= run["rejected"]


@pytest.mark.slow
def test_scale_embedded_carries_every_record_to_the_feed(tmp_path: Path) -> None:
    results = run_scale(tmp_path / "scale.json", "--setup", "embedded", timeout_s=400)
    check_run(results, "embedded")
    assert "t_ratio" not in results


@pytest.mark.slow
@pytest.mark.kafka
@pytest.mark.anvil
def test_scale_kafka_with_two_governance_workers_carries_every_record_to_the_feed(
    tmp_path: Path, kafka_broker: KafkaForTests
) -> None:
    results = run_scale(
        tmp_path / "scale.json",
        "--setup",
        "kafka",
        "--bootstrap",
        kafka_broker.bootstrap,
        timeout_s=540,
    )
    check_run(results, "kafka")
    assert results["setups"]["kafka"]["governance_workers"] == 2
