"""The live metrics file of a run: one line per step, eval losses, early stopping, and a stop at a
step boundary that a resume continues on the same loss curve."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from ledger.events import DomainEvent, TrainingRunStopped
from tests.trainer.conftest import quick_recipe, sample_records
from trainer.errors import TrainingStopped
from trainer.job import run_training
from trainer.metrics import METRICS_FILE, read_metrics


def train(tmp: Path, cache: Path, **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "base": "tiny",
        "recipe": quick_recipe("lora"),
        "dataset": sample_records(),
        "output_dir": tmp / "run",
        "max_steps": 8,
        "progress": False,
        "cache_dir": cache,
    }
    options.update(kwargs)
    return run_training(**options)


def events_of(run_dir: Path) -> list[dict[str, Any]]:
    return [line.data for line in read_metrics(run_dir / METRICS_FILE)]


def test_every_step_is_a_metrics_line_ending_with_end(tmp_path: Path, model_cache: Path) -> None:
    result = train(tmp_path, model_cache)
    lines = read_metrics(tmp_path / "run" / METRICS_FILE)
    assert [line.number for line in lines] == list(range(1, len(lines) + 1))
    kinds = [line.event for line in lines]
    assert kinds[0] == "start" and kinds[-1] == "end"
    steps = [line.data for line in lines if line.event == "step"]
    assert [s["step"] for s in steps] == list(range(1, 9))
    assert [s["loss"] for s in steps] == pytest.approx(result.losses)
    first = steps[0]
    for name in ("epoch", "learning_rate", "tokens_per_second", "grad_norm", "cpu_rss_mb"):
        assert name in first
    assert first["grad_norm"] > 0 and first["cpu_rss_mb"] > 0
    assert "gpu_memory_mb" not in first  # a CPU run writes no GPU field
    assert lines[-1].data["status"] == "completed"
    assert read_metrics(tmp_path / "run" / METRICS_FILE, after=3)[0].number == 4


def test_eval_loss_every_n_steps_and_early_stopping(tmp_path: Path, model_cache: Path) -> None:
    # A learning rate this high makes the validation loss rise after a few steps.
    recipe = quick_recipe(
        "lora",
        **{
            "training.learning_rate": 0.3,
            "training.eval_steps": 2,
            "training.val_size": 4,
            "training.early_stopping_patience": 1,
        },
    )
    result = train(tmp_path, model_cache, recipe=recipe, max_steps=40)
    events = events_of(tmp_path / "run")
    evals = [e for e in events if e["event"] == "eval"]
    assert evals and all(e["step"] % 2 == 0 for e in evals)
    assert all(isinstance(e["eval_loss"], float) for e in evals)
    early = [e for e in events if e["event"] == "early_stop"]
    assert len(early) == 1
    assert len(result.losses) == early[0]["step"] < 40
    assert events[-1]["event"] == "end" and events[-1]["early_stopped"] is True
    assert len(result.manifest.dataset.validation_record_ids) == 4


def test_val_size_split_is_deterministic_by_record_id(tmp_path: Path) -> None:
    from trainer.data import split_records

    records = sample_records(20)
    _, val = split_records(records, val_fraction=0.0, val_size=5)
    _, again = split_records(list(reversed(records)), val_fraction=0.0, val_size=5)
    assert [r["record_id"] for r in val] == [r["record_id"] for r in again]
    assert len(val) == 5


def test_stop_at_a_step_boundary_then_resume_continues_the_curve(
    tmp_path: Path, model_cache: Path
) -> None:
    recipe = quick_recipe("lora", **{"training.eval_steps": 3})
    reference = train(tmp_path / "ref", model_cache, recipe=recipe, max_steps=10)

    seen: list[DomainEvent] = []
    steps_done = {"n": 0}

    def on_event(event: DomainEvent) -> None:
        seen.append(event)
        if type(event).__name__ == "TrainingProgressed":
            steps_done["n"] = event.model_dump()["step"]

    with pytest.raises(TrainingStopped) as stopped:
        train(
            tmp_path,
            model_cache,
            recipe=recipe,
            max_steps=10,
            on_event=on_event,
            should_stop=lambda: steps_done["n"] >= 4,
        )
    assert stopped.value.step == 4
    assert any(isinstance(e, TrainingRunStopped) and e.step == 4 for e in seen)
    assert not any(type(e).__name__ == "TrainingRunFailed" for e in seen)
    events = events_of(tmp_path / "run")
    assert events[-1] == {**events[-1], "event": "end", "status": "stopped", "step": 4}

    resumed = train(tmp_path, model_cache, recipe=recipe, max_steps=10, resume=True)
    assert resumed.resumed_from_step == 4
    events = events_of(tmp_path / "run")
    steps = [e["step"] for e in events if e["event"] == "step"]
    assert steps == list(range(1, 11))  # no restart from step 0, no repeats
    starts = [e for e in events if e["event"] == "start"]
    assert [s["resumed_from_step"] for s in starts] == [0, 4]
    assert resumed.losses == pytest.approx(reference.losses, abs=1e-6)
    evals = [e["eval_loss"] for e in events if e["event"] == "eval"]
    reference_evals = [
        e["eval_loss"] for e in events_of(tmp_path / "ref" / "run") if e["event"] == "eval"
    ]
    assert evals == pytest.approx(reference_evals, abs=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_run_autocasts_and_reports_gpu_figures(tmp_path: Path, model_cache: Path) -> None:
    result = train(tmp_path, model_cache, max_steps=4, device="cuda")
    events = events_of(tmp_path / "run")
    expected = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    assert events[0]["precision"] == expected
    step = next(e for e in events if e["event"] == "step")
    assert step["gpu_memory_mb"] > 0
    assert result.final_loss < result.losses[0]
