"""Training jobs: lifecycle events, the manifest and adapter hash, checkpoints and resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ledger.events import (
    CheckpointSaved,
    DomainEvent,
    TrainingProgressed,
    TrainingRunCompleted,
    TrainingRunCreated,
    TrainingRunFailed,
    TrainingRunStarted,
)
from tests.trainer.conftest import quick_recipe, sample_records
from trainer.architecture import base_model_hash
from trainer.checkpoint import list_checkpoints
from trainer.data import RecordsSnapshot, is_validation
from trainer.errors import ManifestError, ResumeMismatch, TrainingFailed
from trainer.job import run_training
from trainer.manifest import MANIFEST_NAME, adapter_hash, read_manifest, verify_adapter
from trainer.models import resolve_base


class Interrupt(Exception):
    """Raised from the event sink to stop a run right after a checkpoint."""


def train(tmp: Path, cache: Path, **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "base": "tiny",
        "recipe": quick_recipe("lora", **{"training.checkpoint_every": 2}),
        "dataset": sample_records(),
        "output_dir": tmp / "run",
        "max_steps": 6,
        "progress": False,
        "cache_dir": cache,
    }
    options.update(kwargs)
    return run_training(**options)


def test_a_run_emits_its_lifecycle_and_writes_a_verifiable_manifest(
    tmp_path: Path, model_cache: Path
) -> None:
    events: list[DomainEvent] = []
    snapshot = RecordsSnapshot(
        records=sample_records(),
        dataset_root="0x" + "ab" * 32,
        manifest={"records": 24, "source": "feed"},
    )
    result = train(tmp_path, model_cache, dataset=snapshot, on_event=events.append)

    kinds = [e.event_type for e in events]
    assert kinds[:2] == ["TrainingRunCreated", "TrainingRunStarted"]
    assert kinds[-1] == "TrainingRunCompleted"
    assert kinds.count("TrainingProgressed") == 6
    assert [e.step for e in events if isinstance(e, CheckpointSaved)] == [2, 4]
    assert {getattr(e, "run_id", None) for e in events} == {result.run_id}
    progressed = [e for e in events if isinstance(e, TrainingProgressed)]
    assert [e.loss for e in progressed] == result.losses
    assert all(e.tokens_per_second > 0 and e.peak_memory_mb > 0 for e in progressed)
    started = events[1]
    assert isinstance(started, TrainingRunStarted)
    assert started.dataset_root == snapshot.dataset_root
    assert started.train_records + started.validation_records == 24
    assert started.resumed_from_step == 0

    completed = events[-1]
    assert isinstance(completed, TrainingRunCompleted)
    manifest = read_manifest(result.adapter_dir)
    assert completed.adapter_hash == manifest.adapter.hash == adapter_hash(result.adapter_dir)
    assert completed.recipe_hash == manifest.recipe_hash
    assert completed.final_loss == result.final_loss == manifest.metrics["final_loss"]
    base_path = resolve_base("tiny", cache_dir=model_cache).path
    assert completed.base_model_hash == manifest.base_model.hash == base_model_hash(base_path)
    assert manifest.base_model.fingerprint.family == "llama"
    assert manifest.dataset.root == snapshot.dataset_root
    assert manifest.dataset.snapshot_manifest == {"records": 24, "source": "feed"}
    ids = manifest.dataset.train_record_ids + manifest.dataset.validation_record_ids
    assert sorted(ids) == sorted(r["record_id"] for r in sample_records())
    assert all(is_validation(i, 0.2) for i in manifest.dataset.validation_record_ids)
    assert manifest.adapter.files == ["adapter_config.json", "adapter_model.safetensors"]
    assert manifest.recipe["training"]["max_steps"] == 6
    assert manifest.method_details["target_modules"]
    assert (
        json.loads((result.adapter_dir / "adapter_config.json").read_text())[
            "base_model_name_or_path"
        ]
        == "tiny"
    )
    assert list_checkpoints(tmp_path / "run") == []  # removed once the adapter exists
    assert verify_adapter(result.adapter_dir)

    weights = result.adapter_dir / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    assert not verify_adapter(result.adapter_dir)


def test_resume_after_a_failure_reproduces_the_uninterrupted_loss_curve(
    tmp_path: Path, model_cache: Path
) -> None:
    reference = train(tmp_path / "reference", model_cache)

    def stop_after_first_checkpoint(event: DomainEvent) -> None:
        events.append(event)
        if isinstance(event, CheckpointSaved) and event.step == 4:
            raise Interrupt("stop")

    events: list[DomainEvent] = []
    with pytest.raises(TrainingFailed) as failure:
        train(tmp_path / "resumed", model_cache, on_event=stop_after_first_checkpoint)
    assert isinstance(failure.value.__cause__, Interrupt)
    assert isinstance(events[-1], TrainingRunFailed)
    assert "Interrupt" in events[-1].error

    resumed_events: list[DomainEvent] = []
    resumed = train(tmp_path / "resumed", model_cache, resume=True, on_event=resumed_events.append)
    assert resumed.run_id == getattr(events[0], "run_id", None)
    assert not any(isinstance(e, TrainingRunCreated) for e in resumed_events)
    started = resumed_events[0]
    assert isinstance(started, TrainingRunStarted) and started.resumed_from_step == 4
    assert resumed.resumed_from_step == 4
    assert resumed.losses == pytest.approx(reference.losses, rel=1e-6, abs=1e-6)
    assert resumed.validation_loss == pytest.approx(reference.validation_loss, rel=1e-6)
    assert resumed.manifest.adapter.hash == reference.manifest.adapter.hash


@pytest.mark.parametrize("method", ["adalora", "moe_lora", "partial"])
def test_resume_is_exact_for_stateful_methods(
    method: str, tmp_path: Path, model_cache: Path
) -> None:
    recipe = quick_recipe(
        method,
        **{"training.checkpoint_every": 3, "method_config.dropout": 0.1}
        if method != "partial"
        else {"training.checkpoint_every": 3},
    )
    reference = train(tmp_path / "reference", model_cache, recipe=recipe)

    def stop(event: DomainEvent) -> None:
        if isinstance(event, CheckpointSaved):
            raise Interrupt("stop")

    with pytest.raises(TrainingFailed):
        train(tmp_path / "resumed", model_cache, recipe=recipe, on_event=stop)
    resumed = train(tmp_path / "resumed", model_cache, recipe=recipe, resume=True)
    assert resumed.resumed_from_step == 3
    assert resumed.losses == pytest.approx(reference.losses, rel=1e-6, abs=1e-6)
    if method != "moe_lora":
        # (MoE-LoRA configs name their experts by absolute path, so the folders differ.)
        assert resumed.manifest.adapter.hash == reference.manifest.adapter.hash


def test_a_finished_run_is_returned_as_is_on_resume(tmp_path: Path, model_cache: Path) -> None:
    first = train(tmp_path, model_cache, max_steps=2)
    events: list[DomainEvent] = []
    again = train(tmp_path, model_cache, max_steps=2, resume=True, on_event=events.append)
    assert events == []
    assert again.run_id == first.run_id
    assert again.losses == first.losses
    assert again.manifest == first.manifest


def test_an_output_dir_holding_a_run_is_not_overwritten(tmp_path: Path, model_cache: Path) -> None:
    train(tmp_path, model_cache, max_steps=1)
    with pytest.raises(ResumeMismatch, match="already holds a run"):
        train(tmp_path, model_cache, max_steps=1)


@pytest.mark.parametrize(
    "change",
    [
        {"max_steps": 3},
        {"dataset": sample_records(20)},
        {"base": "tiny-qwen2"},
    ],
)
def test_resume_refuses_a_different_recipe_dataset_or_base(
    change: dict[str, Any], tmp_path: Path, model_cache: Path
) -> None:
    train(tmp_path, model_cache, max_steps=2)
    with pytest.raises(ResumeMismatch, match="differs"):
        train(tmp_path, model_cache, resume=True, **{"max_steps": 2, **change})


def test_failures_are_reported_as_events_and_typed_errors(
    tmp_path: Path, model_cache: Path
) -> None:
    events: list[DomainEvent] = []
    recipe = quick_recipe("lora", **{"method_config.target_modules": ["no_such_module"]})
    with pytest.raises(TrainingFailed, match="no_such_module"):
        train(tmp_path, model_cache, recipe=recipe, on_event=events.append)
    assert isinstance(events[-1], TrainingRunFailed)
    assert "no_such_module" in events[-1].error


def test_read_manifest_requires_a_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=MANIFEST_NAME):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("{}", encoding="utf-8")
    with pytest.raises(ManifestError, match="not a valid manifest"):
        read_manifest(tmp_path)
