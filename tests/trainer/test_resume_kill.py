"""A training process killed with SIGKILL after a checkpoint resumes to the same loss curve."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ledger.events import DomainEvent, TrainingRunCreated, TrainingRunStarted
from tests.trainer.conftest import quick_recipe, sample_records
from tests.trainer.resume_child import RESUME_RECIPE_OVERRIDES, RESUME_STEPS
from trainer.checkpoint import checkpoint_dir, list_checkpoints
from trainer.job import ADAPTER_DIR, TrainingResult, run_training
from trainer.manifest import MANIFEST_NAME

REPO_ROOT = Path(__file__).resolve().parents[2]


def run(output_dir: Path, cache: Path, **kwargs: Any) -> TrainingResult:
    return run_training(
        base="tiny",
        recipe=quick_recipe("lora", **RESUME_RECIPE_OVERRIDES),
        dataset=sample_records(),
        output_dir=output_dir,
        max_steps=RESUME_STEPS,
        progress=False,
        cache_dir=cache,
        **kwargs,
    )


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_resume_matches_an_uninterrupted_run(
    tmp_path: Path, model_cache: Path
) -> None:
    reference = run(tmp_path / "reference", model_cache)

    killed_dir = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.trainer.resume_child",
            str(killed_dir),
            str(model_cache),
            "4",
        ],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stdout is not None
        lines = []
        for line in child.stdout:
            lines.append(line)
            if line.startswith("CHECKPOINT"):
                break
        assert lines and lines[-1].strip() == "CHECKPOINT 4", lines
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()

    assert [p.name for p in list_checkpoints(killed_dir)] == [
        checkpoint_dir(killed_dir, 2).name,
        checkpoint_dir(killed_dir, 4).name,
    ]
    assert not (killed_dir / ADAPTER_DIR / MANIFEST_NAME).exists()
    # A checkpoint write cut short leaves only a hidden staging folder, which resume discards.
    partial = killed_dir / "checkpoints" / ".checkpoint-000006.tmp-interrupted"
    partial.mkdir()
    (partial / "trainable.safetensors").write_bytes(b"truncated")

    events: list[DomainEvent] = []
    resumed = run(killed_dir, model_cache, resume=True, on_event=events.append)
    assert not partial.exists()
    assert not any(isinstance(e, TrainingRunCreated) for e in events)
    started = events[0]
    assert isinstance(started, TrainingRunStarted)
    assert started.resumed_from_step == 4
    assert resumed.losses == pytest.approx(reference.losses, rel=1e-5, abs=1e-6)
    assert resumed.manifest.adapter.hash == reference.manifest.adapter.hash
