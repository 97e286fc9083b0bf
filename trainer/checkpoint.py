"""Resumable checkpoints, written atomically.

A checkpoint is a folder ``<run>/checkpoints/checkpoint-<step:06d>/`` holding::

    trainable.safetensors   the trainable parameters (adapter weights; every weight for
    full/partial) optimizer.pt            optimizer state (torch.save, loaded with
    weights_only=True) scheduler.pt            learning-rate scheduler state
    method_state.pt         method state beyond parameters (AdaLoRA importance scores, rank pattern)
    rng.pt                  torch CPU (and CUDA) generator states
    rng.json                python ``random`` and numpy generator states
    trainer_state.json      step, data position, loss history, tokens seen, run id, recipe hash

It is first written to a hidden sibling folder, every file is fsynced, and the folder is renamed
into place, so a ``checkpoint-*`` folder is always complete; a crash leaves at most a hidden
``.tmp`` folder, which is removed on the next start.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ledger.files import private_dir, tighten
from trainer.errors import CheckpointError
from trainer.methods.runtime import MethodRuntime

CHECKPOINTS_DIR = "checkpoints"
PREFIX = "checkpoint-"


@dataclass
class TrainerState:
    """Progress of a run, saved in ``trainer_state.json``."""

    run_id: str
    recipe_hash: str
    step: int = 0
    """Optimizer steps completed."""
    data_position: int = 0
    """Micro-batches consumed (see :class:`trainer.data.BatchStream`)."""
    losses: list[float] = field(default_factory=list)
    learning_rates: list[float] = field(default_factory=list)
    tokens_seen: int = 0
    train_seconds: float = 0.0
    eval_losses: list[list[float]] = field(default_factory=list)
    """``[step, validation loss]`` of every evaluation during training."""
    best_eval_loss: float | None = None
    evals_without_improvement: int = 0
    """Evaluations in a row whose loss did not beat ``best_eval_loss`` (early stopping)."""


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINTS_DIR / f"{PREFIX}{step:06d}"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = run_dir / CHECKPOINTS_DIR
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX)]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]))


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The most recent complete checkpoint, or ``None``."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def remove_partial_checkpoints(run_dir: Path) -> None:
    """Delete hidden folders left by a checkpoint write that was interrupted."""
    root = run_dir / CHECKPOINTS_DIR
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(".") and ".tmp-" in p.name:
                shutil.rmtree(p, ignore_errors=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rng_state() -> tuple[dict[str, Any], dict[str, Any]]:
    """``(tensors, json)``: the torch generator states, and python/numpy generator states."""
    tensors: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors["cuda"] = torch.cuda.get_rng_state_all()
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    plain = {
        "python": [version, list(internal), gauss],
        "numpy": [name, [int(k) for k in keys], int(pos), int(has_gauss), float(cached)],
    }
    return tensors, plain


def set_rng_state(tensors: dict[str, Any], plain: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(tensors["torch"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(tensors["cuda"])
    version, internal, gauss = plain["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = plain["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def save_checkpoint(
    run_dir: Path,
    *,
    state: TrainerState,
    runtime: MethodRuntime,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    keep: int,
) -> Path:
    """Write the checkpoint of ``state.step`` atomically, keep the ``keep`` latest, return its
    path."""
    final = checkpoint_dir(run_dir, state.step)
    staging = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex}"
    try:
        private_dir(final.parent)
        private_dir(staging)
        save_file(runtime.trainable_state(), str(staging / "trainable.safetensors"))
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        torch.save(scheduler.state_dict(), staging / "scheduler.pt")
        torch.save(runtime.extra_state(), staging / "method_state.pt")
        tensors, plain = rng_state()
        torch.save(tensors, staging / "rng.pt")
        (staging / "rng.json").write_text(json.dumps(plain), encoding="utf-8")
        (staging / "trainer_state.json").write_text(json.dumps(asdict(state)), encoding="utf-8")
        for file in staging.iterdir():
            # safetensors and torch.save create their files with the process umask.
            tighten(file)
            _fsync(file)
        _fsync(staging)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        _fsync(final.parent)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise CheckpointError(f"cannot write checkpoint {final}: {exc}") from exc
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(
    path: Path,
    *,
    runtime: MethodRuntime,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
) -> TrainerState:
    """Restore parameters, optimizer, scheduler, method state and RNG states from ``path``."""
    try:
        state = TrainerState(
            **json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        )
        runtime.load_trainable_state(load_file(str(path / "trainable.safetensors")))
        device = runtime.device
        optimizer.load_state_dict(
            torch.load(path / "optimizer.pt", weights_only=True, map_location=device)
        )
        scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
        runtime.load_extra_state(torch.load(path / "method_state.pt", weights_only=True))
        plain = json.loads((path / "rng.json").read_text(encoding="utf-8"))
        set_rng_state(torch.load(path / "rng.pt", weights_only=True), plain)
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"cannot restore checkpoint {path}: {exc}") from exc
    return state
