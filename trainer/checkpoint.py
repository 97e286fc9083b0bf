"""Resumable checkpoints, written atomically.

A checkpoint is a folder ``<run>/checkpoints/checkpoint-<step:06d>/`` holding::

    trainable.safetensors   the trainable parameters (adapter weights; every weight for
                            full/partial)
    optimizer.pt            optimizer state (torch.save, loaded with weights_only=True)
    scheduler.pt            learning-rate scheduler state
    method_state.pt         method state beyond parameters (AdaLoRA importance scores, rank pattern)
    rng.pt                  torch CPU (and CUDA) generator states
    rng.json                python ``random`` and numpy generator states
    rng-rank<r>.pt/.json    the same for rank ``r`` > 0 of a data-parallel run
    trainer_state.json      step, data position, loss history, tokens seen, run id, recipe hash
                            (and the number of processes when more than one)

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
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from ledger.files import private_dir, tighten
from trainer.errors import CheckpointError, ResumeMismatch
from trainer.methods.runtime import MethodRuntime

if TYPE_CHECKING:
    from trainer.distributed import World
    from trainer.steps import Optimization

CHECKPOINTS_DIR = "checkpoints"
PREFIX = "checkpoint-"
RANK_RNG = "rng-rank"


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
    world_size: int = 1
    """Processes of the data-parallel run (1: a single process); a data position counts
    micro-batches of ``world_size x batch_size`` examples, so a resume needs the same number."""

    def to_json(self) -> str:
        """The ``trainer_state.json`` text; a single-process state leaves ``world_size`` out."""
        fields = asdict(self)
        if self.world_size == 1:
            del fields["world_size"]
        return json.dumps(fields)


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
    rank_rng: Sequence[tuple[dict[str, Any], dict[str, Any]]] = (),
) -> Path:
    """Write the checkpoint of ``state.step`` atomically, keep the ``keep`` latest, return its
    path. ``rank_rng`` holds the :func:`rng_state` of ranks 1, 2, ... of a data-parallel run."""
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
        for rank, (rank_tensors, rank_plain) in enumerate(rank_rng, start=1):
            torch.save(rank_tensors, staging / f"{RANK_RNG}{rank}.pt")
            (staging / f"{RANK_RNG}{rank}.json").write_text(
                json.dumps(rank_plain), encoding="utf-8"
            )
        (staging / "trainer_state.json").write_text(state.to_json(), encoding="utf-8")
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


def read_state(path: Path) -> TrainerState:
    """The ``trainer_state.json`` of the checkpoint at ``path``."""
    try:
        return TrainerState(**json.loads((path / "trainer_state.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as exc:
        raise CheckpointError(f"cannot restore checkpoint {path}: {exc}") from exc


def load_checkpoint(
    path: Path,
    *,
    runtime: MethodRuntime,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    rank: int = 0,
) -> TrainerState:
    """Restore parameters, optimizer, scheduler, method state and RNG states from ``path``; rank
    ``rank`` of a data-parallel run restores its own generator states."""
    state = read_state(path)
    try:
        runtime.load_trainable_state(load_file(str(path / "trainable.safetensors")))
        device = runtime.device
        optimizer.load_state_dict(
            torch.load(path / "optimizer.pt", weights_only=True, map_location=device)
        )
        scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=True))
        runtime.load_extra_state(torch.load(path / "method_state.pt", weights_only=True))
        rng = "rng" if rank == 0 else f"{RANK_RNG}{rank}"
        plain = json.loads((path / f"{rng}.json").read_text(encoding="utf-8"))
        set_rng_state(torch.load(path / f"{rng}.pt", weights_only=True), plain)
    except (OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        raise CheckpointError(f"cannot restore checkpoint {path}: {exc}") from exc
    return state


def restore_state(
    output_dir: Path,
    *,
    run_id: str,
    recipe_hash: str,
    runtime: MethodRuntime,
    optimization: Optimization,
    world: World | None = None,
) -> TrainerState:
    """The progress to continue from.

    Deletes partial checkpoints in ``output_dir``, then restores the latest complete one into
    ``runtime`` and ``optimization`` (and the random generators); a fresh state when there is
    none. A checkpoint of another run or recipe, or of another number of processes, raises
    :class:`ResumeMismatch`. In a data-parallel ``world`` rank 0 cleans up and picks the
    checkpoint, and every rank restores that one.
    """
    world_size = world.world_size if world is not None else 1
    if world is None:
        checkpoint = _latest_after_cleanup(output_dir)
    else:
        name = world.on_main(lambda: _checkpoint_name(_latest_after_cleanup(output_dir)))
        checkpoint = output_dir / CHECKPOINTS_DIR / name if name is not None else None
    if checkpoint is None:
        return TrainerState(run_id=run_id, recipe_hash=recipe_hash, world_size=world_size)
    # Checked before anything is loaded: every rank refuses alike, none looks for generator
    # states the checkpoint does not have.
    written_by = read_state(checkpoint).world_size
    if written_by != world_size:
        raise ResumeMismatch(
            f"checkpoint {checkpoint} was written by {written_by} process(es); resume it "
            f"with the same number (this run has {world_size})"
        )
    state = load_checkpoint(
        checkpoint,
        runtime=runtime,
        optimizer=optimization.optimizer,
        scheduler=optimization.scheduler,
        rank=world.rank if world is not None else 0,
    )
    if world is not None:
        world.barrier()
    if state.run_id != run_id or state.recipe_hash != recipe_hash:
        raise ResumeMismatch(f"checkpoint {checkpoint} belongs to another run or recipe")
    return state


def _latest_after_cleanup(output_dir: Path) -> Path | None:
    remove_partial_checkpoints(output_dir)
    return latest_checkpoint(output_dir)


def _checkpoint_name(path: Path | None) -> str | None:
    return path.name if path is not None else None
