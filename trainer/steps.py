"""The optimization steps of a run: the optimizer and its schedule, restoring a checkpoint, one
optimizer step over accumulated micro-batches, and the loop that reports progress and checkpoints.

A checkpoint is written only between optimizer steps and holds everything the next step reads
(trainable parameters, optimizer and scheduler state, method state, data position, random
generators): a run killed after checkpoint N and restored from it takes the same steps, with the
same losses, as a run that never stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ledger.events import CheckpointSaved, DomainEvent, TrainingProgressed
from trainer.checkpoint import (
    TrainerState,
    latest_checkpoint,
    load_checkpoint,
    remove_partial_checkpoints,
    save_checkpoint,
)
from trainer.data import BatchStream, collate
from trainer.errors import ResumeMismatch
from trainer.memory import peak_memory_mb
from trainer.methods.runtime import MethodRuntime
from trainer.recipes import Recipe, TrainingConfig

EventSink = Callable[[DomainEvent], None]
"""Receives every lifecycle event of a run (the caller appends it to the event log)."""


@dataclass(frozen=True)
class Optimization:
    """What updates the trainable parameters: AdamW over them and the recipe's rate schedule."""

    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    """The learning-rate scheduler from ``transformers.get_scheduler``."""


@dataclass(frozen=True)
class StepOutcome:
    """What one optimizer step did."""

    loss: float
    """Training loss, averaged over the step's micro-batches."""
    tokens: int
    """Attention-mask tokens of the step's micro-batches."""
    learning_rate: float
    """The rate the optimizer applied in this step."""
    seconds: float


def build_optimization(
    runtime: MethodRuntime, training: TrainingConfig, *, total_steps: int
) -> Optimization:
    """AdamW over ``runtime``'s trainable parameters and the schedule of ``total_steps`` steps."""
    from transformers import get_scheduler

    params = [p for _, p in runtime.trainable_parameters()]
    optimizer = torch.optim.AdamW(
        params, lr=training.learning_rate, weight_decay=training.weight_decay
    )
    scheduler = get_scheduler(
        training.scheduler,
        optimizer=optimizer,
        num_warmup_steps=round(training.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
    return Optimization(params=params, optimizer=optimizer, scheduler=scheduler)


def restore_state(
    output_dir: Path,
    *,
    run_id: str,
    recipe_hash: str,
    runtime: MethodRuntime,
    optimization: Optimization,
) -> TrainerState:
    """The progress to continue from.

    Deletes partial checkpoints in ``output_dir``, then restores the latest complete one into
    ``runtime`` and ``optimization`` (and the random generators); a fresh state when there is
    none. A checkpoint of another run or recipe raises :class:`ResumeMismatch`.
    """
    remove_partial_checkpoints(output_dir)
    checkpoint = latest_checkpoint(output_dir)
    if checkpoint is None:
        return TrainerState(run_id=run_id, recipe_hash=recipe_hash)
    state = load_checkpoint(
        checkpoint,
        runtime=runtime,
        optimizer=optimization.optimizer,
        scheduler=optimization.scheduler,
    )
    if state.run_id != run_id or state.recipe_hash != recipe_hash:
        raise ResumeMismatch(f"checkpoint {checkpoint} belongs to another run or recipe")
    return state


def pad_token_id(tokenizer: Any) -> int:
    """The id batches are padded with: the tokenizer's pad token, else its end of sequence."""
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = getattr(tokenizer, "eos_token_id", None)
    return int(pad or 0)


def batch_to(batch: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def optimizer_step(
    *,
    step: int,
    model: Any,
    runtime: MethodRuntime,
    optimization: Optimization,
    stream: BatchStream,
    training: TrainingConfig,
    pad_id: int,
) -> StepOutcome:
    """Optimizer step ``step`` (0-based): ``gradient_accumulation_steps`` micro-batches from
    ``stream`` (forward, backward), gradient clipping, the optimizer, the method's
    ``after_optimizer_step`` hook, then the schedule."""
    started = time.perf_counter()
    model.train()
    accumulation = training.gradient_accumulation_steps
    step_loss, step_tokens = 0.0, 0
    for _ in range(accumulation):
        batch = batch_to(collate(stream.next_batch(), pad_token_id=pad_id), runtime.device)
        loss = model(**batch, use_cache=False).loss
        (loss / accumulation).backward()
        step_loss += float(loss.detach()) / accumulation
        step_tokens += int(batch["attention_mask"].sum())
    if training.max_grad_norm > 0:
        torch.nn.utils.clip_grad_norm_(optimization.params, training.max_grad_norm)
    learning_rate = float(optimization.scheduler.get_last_lr()[0])
    optimization.optimizer.step()
    runtime.after_optimizer_step(step)
    optimization.scheduler.step()
    optimization.optimizer.zero_grad(set_to_none=True)
    return StepOutcome(
        loss=step_loss,
        tokens=step_tokens,
        learning_rate=learning_rate,
        seconds=time.perf_counter() - started,
    )


def run_steps(
    *,
    run_id: str,
    recipe: Recipe,
    runtime: MethodRuntime,
    optimization: Optimization,
    stream: BatchStream,
    state: TrainerState,
    total_steps: int,
    output_dir: Path,
    emit: EventSink,
    progress: bool,
) -> None:
    """Step from ``state.step`` to ``total_steps``, recording each step in ``state``.

    Emits TrainingProgressed every ``log_every`` steps and after the last one, and writes a
    checkpoint (then emits CheckpointSaved) every ``checkpoint_every`` steps before the last.
    """
    training = recipe.training
    model = runtime.model
    pad_id = pad_token_id(runtime.tokenizer)
    bar = tqdm(
        total=total_steps,
        initial=state.step,
        disable=not progress,
        desc=f"{recipe.method} {run_id[:8]}",
        unit="step",
    )
    try:
        while state.step < total_steps:
            outcome = optimizer_step(
                step=state.step,
                model=model,
                runtime=runtime,
                optimization=optimization,
                stream=stream,
                training=training,
                pad_id=pad_id,
            )
            _record(state, outcome, data_position=stream.position)
            bar.update(1)
            bar.set_postfix(loss=f"{outcome.loss:.4f}")
            if state.step % training.log_every == 0 or state.step == total_steps:
                emit(_progressed(run_id, state.step, outcome, device=runtime.device))
            if _checkpoint_due(training, step=state.step, total_steps=total_steps):
                path = save_checkpoint(
                    output_dir,
                    state=state,
                    runtime=runtime,
                    optimizer=optimization.optimizer,
                    scheduler=optimization.scheduler,
                    keep=training.keep_checkpoints,
                )
                emit(CheckpointSaved(run_id=run_id, step=state.step, path=str(path)))
    finally:
        bar.close()


def _record(state: TrainerState, outcome: StepOutcome, *, data_position: int) -> None:
    state.step += 1
    state.data_position = data_position
    state.losses.append(outcome.loss)
    state.learning_rates.append(outcome.learning_rate)
    state.tokens_seen += outcome.tokens
    state.train_seconds += outcome.seconds


def _progressed(run_id: str, step: int, outcome: StepOutcome, *, device: str) -> TrainingProgressed:
    seconds = outcome.seconds
    return TrainingProgressed(
        run_id=run_id,
        step=step,
        loss=outcome.loss,
        learning_rate=outcome.learning_rate,
        tokens_per_second=outcome.tokens / seconds if seconds > 0 else 0.0,
        peak_memory_mb=peak_memory_mb(device),
    )


def _checkpoint_due(training: TrainingConfig, *, step: int, total_steps: int) -> bool:
    # No checkpoint after the last step: the finished adapter replaces them all.
    every = training.checkpoint_every
    return bool(every) and step % every == 0 and step < total_steps
