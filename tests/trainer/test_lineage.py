"""Training on the accepted-corpus feed, anchoring the run, and verifying its lineage.

Runs on a real ledger: embedded chains persisted under a temporary BYR_HOME, the SQLite log, a tiny
random model. Governance decisions are recorded as the events the governance step appends.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.composition import Parts
from api.services.training import TrainingRequest
from ledger.batching import RecordInput
from ledger.events import BatchGoverned
from ledger.ids import batch_stream
from tests.homes import initialized_settings
from trainer.manifest import MANIFEST_NAME

TOPICS = [
    ("What is the Nyquist rate?", "It is twice the highest frequency of a band-limited signal."),
    ("What does a firewall do?", "It filters traffic between networks according to rules."),
    ("What is entropy?", "Entropy measures the average information of a random source in bits."),
    ("What is TCP?", "TCP is a reliable, connection-oriented transport protocol."),
    ("What is an FFT?", "The FFT computes the discrete Fourier transform in O(n log n) time."),
    (
        "What is overfitting?",
        "Overfitting is fitting noise in training data, hurting generalization.",
    ),
]


def _record(i: int, institution: str) -> dict[str, str]:
    question, answer = TOPICS[i % len(TOPICS)]
    return {
        "instruction": f"{question} (variant {i})",
        "input": "",
        "output": answer,
        "discipline": "information_theory",
        "task_type": "knowledge_qa",
        "language": "en",
        "license": "CC-BY-4.0",
        "institution_id": institution,
    }


def _accepted_batch(rt: Parts, institution: str, start: int, n: int) -> str:
    submitted = rt.ledger.submit_batch(
        institution_id=institution,
        source_name=f"{institution}.jsonl",
        records=[RecordInput(canonical=_record(start + i, institution)) for i in range(n)],
        policy_version="2026.11-1",
    )
    rt.ledger.append(
        batch_stream(submitted.batch_id),
        [
            BatchGoverned(
                batch_id=submitted.batch_id,
                institution_id=institution,
                policy_version="2026.11-1",
                accepted_record_ids=submitted.record_ids,
                rejected={},
                decisions=[],
                contribution_score=float(n),
                reward_wei=str(10**18),
            )
        ],
    )
    return submitted.batch_id


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Parts, dict]]:
    home = tmp_path_factory.mktemp("byr")
    settings = initialized_settings(home, model_cache=home / "models")
    with Parts(settings) as rt:
        _accepted_batch(rt, "bupt", 0, 8)
        _accepted_batch(rt, "xidian", 100, 6)
        rt.pipeline.drain()
        result = rt.training.train(
            TrainingRequest(recipe="knowledge_qa", max_steps=3), progress=False
        )
        yield rt, result


def test_training_run_is_recorded_and_anchored(trained: tuple[Parts, dict]) -> None:
    rt, result = trained
    assert result["records"] == 14
    assert result["status"] == "anchored" and result["anchor_tx_hash"]
    run = rt.ledger.training_run(result["run_id"])
    assert run.status == "anchored"
    assert run.last_step == 3
    anchor = rt.trainer_academic.find_training_run(result["run_id"])
    assert anchor is not None and anchor.dataset_root.hex() == result["dataset_root"][2:]
    assert rt.ledger.replay().equal


def test_lineage_verifies_back_to_institutions(trained: tuple[Parts, dict]) -> None:
    rt, result = trained
    report = rt.training.lineage(Path(result["adapter_dir"]))
    assert report.ok, report.render()
    assert report.institutions == {"bupt": 8, "xidian": 6}
    assert report.batches == 2


def _copy(adapter_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "adapter"
    shutil.copytree(adapter_dir, target)
    return target


def _failed(report) -> set[str]:  # type: ignore[no-untyped-def]
    return {c.name for c in report.checks if not c.ok}


def test_modified_adapter_fails(trained: tuple[Parts, dict], tmp_path: Path) -> None:
    rt, result = trained
    copy = _copy(Path(result["adapter_dir"]), tmp_path)
    weights = copy / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    assert _failed(rt.training.lineage(copy)) == {"adapter_hash"}


def test_modified_manifest_fails(trained: tuple[Parts, dict], tmp_path: Path) -> None:
    rt, result = trained
    copy = _copy(Path(result["adapter_dir"]), tmp_path)
    manifest = json.loads((copy / MANIFEST_NAME).read_text())
    # Claim one record fewer was trained on: the dataset root no longer matches.
    manifest["dataset"]["snapshot_manifest"]["records"].pop()
    (copy / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert "dataset_root" in _failed(rt.training.lineage(copy))

    manifest = json.loads((Path(result["adapter_dir"]) / MANIFEST_NAME).read_text())
    manifest["recipe"]["training"]["learning_rate"] = 1.0
    (copy / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert "recipe_hash" in _failed(rt.training.lineage(copy))


def test_queued_request_is_run_by_the_trainer_worker(trained: tuple[Parts, dict]) -> None:
    from api.workers import WorkerKind, run_worker

    rt, _ = trained
    request_id = rt.training.request_training(
        TrainingRequest(recipe="knowledge_qa", max_steps=2, institutions=["xidian"])
    )
    done = run_worker(WorkerKind.TRAINER, rt, max_steps=1, install_signal_handlers=False)
    assert done == 1
    runs = [r for r in rt.ledger.training_runs() if r.request_id == request_id]
    assert len(runs) == 1 and runs[0].status == "anchored"
    assert rt.ledger.status().pending_jobs == {}


def test_lineage_after_an_erasure_shows_the_record_erased(trained: tuple[Parts, dict]) -> None:
    """Runs last: it erases a trained record from the shared home."""
    from api.services.erasure import ErasureRequest

    rt, result = trained
    manifest = json.loads((Path(result["adapter_dir"]) / MANIFEST_NAME).read_text())
    victim = manifest["dataset"]["train_record_ids"][0]
    erased = rt.erasure.erase(ErasureRequest(record_id=victim, reason="withdrawn by the author"))
    assert erased["removed"]["body"]

    report = rt.training.lineage(Path(result["adapter_dir"]))
    assert report.ok, report.render()
    assert [e["record_id"] for e in report.erased] == [victim]
    assert "erased since this run" in report.render()
    assert victim not in [r.record_id for r, _ in rt.ledger.accepted_feed()]
    assert rt.ledger.replay().equal
