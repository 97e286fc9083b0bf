"""One training run, step by step: build the method, tokenize the split, restore a checkpoint,
run the optimization steps, write the adapter and its manifest.

Called by :func:`trainer.job.run_training`, which owns the run folder and the run id. The steps
live in :mod:`trainer.steps` (optimizer, checkpoints, the step loop) and :mod:`trainer.output`
(validation loss, adapter, manifest); this module fixes their order, which exact resume depends
on: every generator is seeded before the method builds its model, and a checkpoint is restored
only once the optimizer and scheduler it fills exist.
"""

from __future__ import annotations

import functools
import math
import random
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ledger.events import TrainingRunCompleted, TrainingRunStarted, TrainingRunStopped
from trainer.checkpoint import TrainerState, list_checkpoints, restore_state
from trainer.data import BatchStream, DatasetSnapshotLike, Example, tokenize_records
from trainer.errors import TrainingStopped
from trainer.manifest import AdapterManifest
from trainer.methods import method_spec
from trainer.methods.runtime import MethodRuntime
from trainer.metrics import MetricsLog, SystemSampler
from trainer.models import BaseModelRef
from trainer.output import WrittenAdapter, validation_loss_of, write_adapter
from trainer.recipes import Recipe
from trainer.steps import (
    EventSink,
    Optimization,
    StepHooks,
    build_optimization,
    run_steps,
)

if TYPE_CHECKING:
    from trainer.distributed import World

ADAPTER_DIR = "adapter"

__all__ = [
    "ADAPTER_DIR",
    "EventSink",
    "TrainingResult",
    "total_steps_for",
    "train_run",
]


@dataclass(frozen=True)
class TrainingResult:
    """What a finished run produced."""

    adapter_dir: Path
    run_id: str
    final_loss: float
    losses: list[float]
    """Training loss of every optimizer step, including steps done before a resume."""
    validation_loss: float | None
    manifest: AdapterManifest
    resumed_from_step: int
    model: Any = None
    """The trained model in eval mode when ``return_model=True`` (else ``None``)."""


def total_steps_for(recipe: Recipe, *, train_examples: int, world_size: int = 1) -> int:
    """Optimizer steps of a run: ``max_steps``, else epochs x ceil(micro-batches / accumulation),
    a micro-batch holding ``batch_size`` examples per process."""
    training = recipe.training
    if training.max_steps is not None:
        return training.max_steps
    micro_batches = math.ceil(train_examples / (training.batch_size * world_size))
    return training.epochs * math.ceil(micro_batches / training.gradient_accumulation_steps)


def train_run(
    *,
    run_id: str,
    recipe: Recipe,
    base: BaseModelRef,
    base_hash: str,
    snapshot: DatasetSnapshotLike,
    train_records: list[Mapping[str, Any]],
    val_records: list[Mapping[str, Any]],
    output_dir: Path,
    emit: EventSink,
    progress: bool,
    device: str | None,
    merge: bool,
    return_model: bool,
    metrics: MetricsLog | None = None,
    should_stop: Callable[[], bool] | None = None,
    world: World | None = None,
) -> TrainingResult:
    """Train ``recipe`` on the given split for run ``run_id`` and write ``output_dir/adapter``.

    Continues from the latest checkpoint in ``output_dir`` when there is one (its run id and recipe
    hash must match: :class:`ResumeMismatch`). Emits TrainingRunStarted, TrainingProgressed,
    CheckpointSaved and TrainingRunCompleted through ``emit``, and writes the live metrics lines to
    ``metrics``; errors propagate to the caller. When ``should_stop()`` answers ``True`` at a step
    boundary the run checkpoints there, emits TrainingRunStopped and raises
    :class:`TrainingStopped`.

    In a data-parallel ``world`` (:mod:`trainer.distributed`) every rank calls this with the same
    arguments; ``batch_size`` is per process, rank 0's ``should_stop`` and validation loss decide
    for all, and only rank 0 writes files (``emit`` and ``metrics`` of the other ranks are expected
    to discard what they get).
    """
    training = recipe.training
    world_size = world.world_size if world is not None else 1
    total_steps = total_steps_for(recipe, train_examples=len(train_records), world_size=world_size)
    runtime = _build_method(recipe, base=base, total_steps=total_steps, device=device)
    train_examples = _tokenize(runtime, recipe, train_records)
    val_examples = _tokenize(runtime, recipe, val_records)
    optimization = build_optimization(runtime, training, total_steps=total_steps)
    state = restore_state(
        output_dir,
        run_id=run_id,
        recipe_hash=recipe.hash,
        runtime=runtime,
        optimization=optimization,
        world=world,
    )
    resumed_from = state.step
    stream = BatchStream(
        train_examples,
        batch_size=training.batch_size * world_size,
        seed=training.seed,
        position=state.data_position,
    )
    emit(
        TrainingRunStarted(
            run_id=run_id,
            dataset_root=snapshot.dataset_root,
            train_records=len(train_examples),
            validation_records=len(val_examples),
            resumed_from_step=resumed_from,
        )
    )
    # Validation batches hold the global micro-batch, so the loss (a mean of per-batch token
    # means) does not depend on how many processes trained.
    eval_batch = training.batch_size * world_size

    def evaluate() -> float | None:
        return _evaluate(runtime, optimization, val_examples, batch_size=eval_batch)

    evaluate_now: Callable[[], float | None] = evaluate
    stop_now: Callable[[], bool] = should_stop or (lambda: False)
    if world is not None:  # every rank takes rank 0's answer
        evaluate_now = functools.partial(world.on_main, evaluate_now)
        stop_now = functools.partial(world.on_main, stop_now)
    hooks = StepHooks(
        metrics=metrics,
        evaluate=evaluate_now,
        should_stop=stop_now,
        sampler=SystemSampler(runtime.device) if metrics is not None else None,
    )
    hooks.write(
        "start",
        run_id=run_id,
        step=state.step,
        resumed_from_step=resumed_from,
        total_steps=total_steps,
        method=recipe.method.value,
        device=runtime.device,
        precision=str(optimization.autocast or "fp32").removeprefix("torch."),
        train_records=len(train_examples),
        validation_records=len(val_examples),
    )
    outcome = run_steps(
        run_id=run_id,
        recipe=recipe,
        runtime=runtime,
        optimization=optimization,
        stream=stream,
        state=state,
        total_steps=total_steps,
        output_dir=output_dir,
        emit=emit,
        progress=progress,
        hooks=hooks,
        world=world,
    )
    if outcome.reason == "stopped" and outcome.checkpoint is not None:
        emit(TrainingRunStopped(run_id=run_id, step=state.step, checkpoint=str(outcome.checkpoint)))
        hooks.write("end", status="stopped", step=state.step, checkpoint=outcome.checkpoint.name)
        raise TrainingStopped(
            f"run {run_id} stopped after step {state.step}",
            run_id=run_id,
            step=state.step,
            checkpoint=str(outcome.checkpoint),
        )
    with optimization.forward_context():
        result = _finish(
            run_id=run_id,
            recipe=recipe,
            runtime=runtime,
            base=base,
            base_hash=base_hash,
            snapshot=snapshot,
            train_records=train_records,
            train_examples=train_examples,
            val_examples=val_examples,
            state=state,
            total_steps=total_steps,
            resumed_from=resumed_from,
            output_dir=output_dir,
            emit=emit,
            merge=merge,
            return_model=return_model,
            world=world,
        )
    hooks.write(
        "end",
        status="completed",
        step=state.step,
        early_stopped=outcome.reason == "early_stopped",
        final_loss=result.final_loss,
        validation_loss=result.validation_loss,
        adapter_dir=ADAPTER_DIR,
    )
    return result


def _evaluate(
    runtime: MethodRuntime,
    optimization: Optimization,
    examples: list[Example],
    *,
    batch_size: int,
) -> float | None:
    with optimization.forward_context():
        return validation_loss_of(runtime, examples, batch_size=batch_size)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _build_method(
    recipe: Recipe, *, base: BaseModelRef, total_steps: int, device: str | None
) -> MethodRuntime:
    """Seed every generator with the recipe's seed, then let the method prepare its model (the
    adapter weights it initializes depend on the seed)."""
    _seed_everything(recipe.training.seed)
    build = method_spec(recipe.method).load_builder()
    return build(recipe.method_config, base=base, total_steps=total_steps, device=device)


def _tokenize(
    runtime: MethodRuntime, recipe: Recipe, records: list[Mapping[str, Any]]
) -> list[Example]:
    return tokenize_records(
        records,
        runtime.tokenizer,
        max_seq_length=recipe.training.max_seq_length,
        prompt_format=recipe.training.prompt_format,
    )


def _finish(
    *,
    run_id: str,
    recipe: Recipe,
    runtime: MethodRuntime,
    base: BaseModelRef,
    base_hash: str,
    snapshot: DatasetSnapshotLike,
    train_records: list[Mapping[str, Any]],
    train_examples: list[Example],
    val_examples: list[Example],
    state: TrainerState,
    total_steps: int,
    resumed_from: int,
    output_dir: Path,
    emit: EventSink,
    merge: bool,
    return_model: bool,
    world: World | None = None,
) -> TrainingResult:
    """Evaluate, write the adapter with its manifest, drop the checkpoints it supersedes, emit
    TrainingRunCompleted. In a data-parallel ``world`` rank 0 does all of it and the other ranks
    return what it wrote."""
    world_size = world.world_size if world is not None else 1

    def write() -> tuple[float | None, WrittenAdapter]:
        validation_loss = validation_loss_of(
            runtime, val_examples, batch_size=recipe.training.batch_size * world_size
        )
        written = write_adapter(
            output_dir / ADAPTER_DIR,
            run_id=run_id,
            recipe=recipe,
            runtime=runtime,
            base=base,
            base_hash=base_hash,
            snapshot=snapshot,
            train_records=train_records,
            train_examples=train_examples,
            val_examples=val_examples,
            state=state,
            validation_loss=validation_loss,
            total_steps=total_steps,
            merge=merge,
        )
        for old in list_checkpoints(output_dir):
            shutil.rmtree(old, ignore_errors=True)
        emit(
            TrainingRunCompleted(
                run_id=run_id,
                adapter_dir=str(written.adapter_dir),
                adapter_hash=written.digest,
                recipe_hash=recipe.hash,
                base_model_hash=base_hash,
                dataset_root=snapshot.dataset_root,
                final_loss=state.losses[-1],
            )
        )
        return validation_loss, written

    if world is None:
        validation_loss, written = write()
        manifest, model = written.manifest, written.model
    else:
        # Rank 0's figures go to every rank; the (possibly merged) model stays where it is.
        kept: list[WrittenAdapter] = []

        def write_on_main() -> tuple[float | None, AdapterManifest]:
            loss, written = write()
            kept.append(written)
            return loss, written.manifest

        validation_loss, manifest = world.on_main(write_on_main)
        model = kept[0].model if kept else runtime.model
    return TrainingResult(
        adapter_dir=output_dir / ADAPTER_DIR,
        run_id=run_id,
        final_loss=state.losses[-1],
        losses=list(state.losses),
        validation_loss=validation_loss,
        manifest=manifest,
        resumed_from_step=resumed_from,
        model=model.eval() if return_model else None,
    )
