"""The optimization steps of a run: the optimizer and its schedule, one optimizer step over
accumulated micro-batches, and the loop that reports progress and checkpoints (restoring one is
:func:`trainer.checkpoint.restore_state`).

A checkpoint is written only between optimizer steps and holds everything the next step reads
(trainable parameters, optimizer and scheduler state, method state, data position, random
generators): a run killed after checkpoint N and restored from it takes the same steps, with the
same losses, as a run that never stopped.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from ledger.events import CheckpointSaved, DomainEvent, TrainingProgressed
from trainer.checkpoint import TrainerState, checkpoint_dir, rng_state, save_checkpoint
from trainer.data import BatchStream, batch_to, collate
from trainer.memory import peak_memory_mb
from trainer.methods.runtime import MethodRuntime
from trainer.metrics import MetricsLog, SystemSampler
from trainer.recipes import Recipe, TrainingConfig

if TYPE_CHECKING:
    from trainer.distributed import World

EventSink = Callable[[DomainEvent], None]
"""Receives every lifecycle event of a run (the caller appends it to the event log)."""


@dataclass(frozen=True)
class Optimization:
    """What updates the trainable parameters: AdamW over them and the recipe's rate schedule."""

    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    """The learning-rate scheduler from ``transformers.get_scheduler``."""
    device: str = "cpu"
    autocast: torch.dtype | None = None
    """Mixed precision: the dtype forward passes autocast to (CUDA only), or ``None`` (fp32)."""
    scaler: Any = None
    """The fp16 gradient scaler (``torch.amp.GradScaler``); ``None`` otherwise."""

    def forward_context(self) -> contextlib.AbstractContextManager[Any]:
        """Autocast to :attr:`autocast` on CUDA, or nothing."""
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.autocast)


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
    grad_norm: float = 0.0
    """Total gradient norm before clipping."""


def autocast_dtype(precision: str, device: str) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device``: ``None`` (fp32) on CPU whatever was
    asked (recipe advice says so), bf16 or fp16 on CUDA; ``auto`` picks bf16 where the GPU
    supports it, else fp16."""
    if not device.startswith("cuda") or precision == "fp32":
        return None
    if precision == "bf16" or (precision == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


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
    dtype = autocast_dtype(training.precision, runtime.device)
    scaler = torch.amp.GradScaler("cuda") if dtype is torch.float16 else None
    return Optimization(
        params=params,
        optimizer=optimizer,
        scheduler=scheduler,
        device=runtime.device,
        autocast=dtype,
        scaler=scaler,
    )


def pad_token_id(tokenizer: Any) -> int:
    """The id batches are padded with: the tokenizer's pad token, else its end of sequence."""
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = getattr(tokenizer, "eos_token_id", None)
    return int(pad or 0)


def optimizer_step(
    *,
    step: int,
    model: Any,
    runtime: MethodRuntime,
    optimization: Optimization,
    stream: BatchStream,
    training: TrainingConfig,
    pad_id: int,
    world: World | None = None,
) -> StepOutcome:
    """Optimizer step ``step`` (0-based): ``gradient_accumulation_steps`` micro-batches from
    ``stream`` (forward, backward), gradient clipping, the optimizer, the method's
    ``after_optimizer_step`` hook, then the schedule. In a data-parallel ``world`` each micro-batch
    is this rank's shard of a global one and ``model`` is the DDP-wrapped model."""
    started = time.perf_counter()
    model.train()
    passes = _accumulate if world is None else world.accumulate
    step_loss, step_tokens = passes(
        model=model,
        runtime=runtime,
        optimization=optimization,
        stream=stream,
        accumulation=training.gradient_accumulation_steps,
        pad_id=pad_id,
    )
    scaler = optimization.scaler
    if scaler is not None:
        scaler.unscale_(optimization.optimizer)
    # max_norm=inf measures the norm and scales every gradient by exactly 1.
    limit = training.max_grad_norm if training.max_grad_norm > 0 else float("inf")
    grad_norm = float(torch.nn.utils.clip_grad_norm_(optimization.params, limit))
    learning_rate = float(optimization.scheduler.get_last_lr()[0])
    if scaler is not None:
        scaler.step(optimization.optimizer)
        scaler.update()
    else:
        optimization.optimizer.step()
    runtime.after_optimizer_step(step)
    optimization.scheduler.step()
    optimization.optimizer.zero_grad(set_to_none=True)
    return StepOutcome(
        loss=step_loss,
        tokens=step_tokens,
        learning_rate=learning_rate,
        seconds=time.perf_counter() - started,
        grad_norm=grad_norm,
    )


def _accumulate(
    *,
    model: Any,
    runtime: MethodRuntime,
    optimization: Optimization,
    stream: BatchStream,
    accumulation: int,
    pad_id: int,
) -> tuple[float, int]:
    """Forward and backward passes over the next ``accumulation`` micro-batches; returns the
    step's ``(loss, tokens)``."""
    step_loss, step_tokens = 0.0, 0
    scaler = optimization.scaler
    for _ in range(accumulation):
        examples = stream.next_batch()
        routes = runtime.route(examples)
        trained = sum(e.trained_tokens for e in examples)
        for route in routes:
            # A micro-batch split into routes keeps the loss of the whole micro-batch: each
            # route's token-mean loss weighs by its share of the trained tokens.
            weight = 1.0
            if len(routes) > 1:
                weight = sum(e.trained_tokens for e in route.examples) / max(trained, 1)
            batch = batch_to(collate(route.examples, pad_token_id=pad_id), runtime.device)
            with route.context(), optimization.forward_context():
                loss = model(**batch, use_cache=False).loss
            scaled = loss * weight / accumulation
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
            step_loss += float(loss.detach()) * weight / accumulation
            step_tokens += int(batch["attention_mask"].sum())
    return step_loss, step_tokens


@dataclass
class StepHooks:
    """What a run does around its steps besides optimizing: live metrics, evaluation, and the
    question whether to stop."""

    metrics: MetricsLog | None = None
    evaluate: Callable[[], float | None] = lambda: None
    """The validation loss now (``None`` without a validation split)."""
    should_stop: Callable[[], bool] = lambda: False
    """Asked at every step boundary; ``True`` stops the run there with a checkpoint."""
    sampler: SystemSampler | None = None

    def write(self, event: str, **fields: Any) -> None:
        if self.metrics is not None:
            self.metrics.write(event, **fields)


@dataclass(frozen=True)
class StepsOutcome:
    """How the step loop ended: ``completed`` (every step), ``early_stopped`` (patience spent),
    or ``stopped`` (on request; ``checkpoint`` holds the state)."""

    reason: str
    checkpoint: Path | None = None


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
    hooks: StepHooks | None = None,
    world: World | None = None,
) -> StepsOutcome:
    """Step from ``state.step`` to ``total_steps``, recording each step in ``state``.

    Emits TrainingProgressed (and writes a ``step`` metrics line) every ``log_every`` steps and
    after the last one, evaluates every ``eval_steps`` steps (``eval`` lines; early stopping),
    and writes a checkpoint (then emits CheckpointSaved) every ``checkpoint_every`` steps before
    the last. When ``hooks.should_stop()`` says so at a step boundary, the state is checkpointed
    there and the loop returns ``stopped``.

    In a data-parallel ``world`` the model is wrapped in DDP, rank 0 alone writes checkpoints
    (with every rank's generator states) while the others wait, and the hooks are expected to
    answer the same on every rank (see :func:`trainer.loop.train_run`).
    """
    hooks = hooks or StepHooks()
    training = recipe.training
    model = runtime.model
    if world is not None:
        from trainer.distributed import routes_leave_parameters_unused

        model = world.wrap(
            model, find_unused_parameters=routes_leave_parameters_unused(recipe.method.value)
        )
    pad_id = pad_token_id(runtime.tokenizer)
    bar = tqdm(
        total=total_steps,
        initial=state.step,
        disable=not progress,
        desc=f"{recipe.method} {run_id[:8]}",
        unit="step",
    )

    def save(rank_rng: list[Any]) -> Path:
        return save_checkpoint(
            output_dir,
            state=state,
            runtime=runtime,
            optimizer=optimization.optimizer,
            scheduler=optimization.scheduler,
            keep=training.keep_checkpoints,
            rank_rng=rank_rng,
        )

    def checkpoint() -> Path:
        if world is None:
            path = save([])
        else:
            generators = world.gather(rng_state())
            world.on_main(lambda: save(generators[1:]))
            path = checkpoint_dir(output_dir, state.step)
        emit(CheckpointSaved(run_id=run_id, step=state.step, path=str(path)))
        hooks.write("checkpoint", step=state.step, path=path.name)
        return path

    try:
        while state.step < total_steps:
            if hooks.should_stop():
                return StepsOutcome("stopped", checkpoint())
            outcome = optimizer_step(
                step=state.step,
                model=model,
                runtime=runtime,
                optimization=optimization,
                stream=stream,
                training=training,
                pad_id=pad_id,
                world=world,
            )
            _record(state, outcome, data_position=stream.position)
            bar.update(1)
            bar.set_postfix(loss=f"{outcome.loss:.4f}")
            if state.step % training.log_every == 0 or state.step == total_steps:
                emit(_progressed(run_id, state.step, outcome, device=runtime.device))
                hooks.write(
                    "step",
                    **_step_fields(state, outcome, stream=stream, total_steps=total_steps),
                    **(hooks.sampler.sample() if hooks.sampler is not None else {}),
                )
            if _eval_due(training, step=state.step, total_steps=total_steps) and _evaluate(
                state, training, hooks
            ):
                return StepsOutcome("early_stopped")
            if _checkpoint_due(training, step=state.step, total_steps=total_steps):
                checkpoint()
    finally:
        bar.close()
    return StepsOutcome("completed")


def _step_fields(
    state: TrainerState, outcome: StepOutcome, *, stream: BatchStream, total_steps: int
) -> dict[str, Any]:
    seconds = outcome.seconds
    return {
        "step": state.step,
        "total_steps": total_steps,
        "epoch": round(stream.position / stream.batches_per_epoch, 4),
        "loss": outcome.loss,
        "learning_rate": outcome.learning_rate,
        "grad_norm": outcome.grad_norm,
        "tokens_per_second": round(outcome.tokens / seconds, 1) if seconds > 0 else 0.0,
        "step_seconds": round(seconds, 4),
    }


def _eval_due(training: TrainingConfig, *, step: int, total_steps: int) -> bool:
    every = training.eval_steps
    return bool(every) and (step % every == 0 or step == total_steps)


def _evaluate(state: TrainerState, training: TrainingConfig, hooks: StepHooks) -> bool:
    """Evaluate, record the loss, and say whether early stopping ends the run now."""
    loss = hooks.evaluate()
    if loss is None:
        return False
    improved = state.best_eval_loss is None or loss < state.best_eval_loss
    if improved:
        state.best_eval_loss = loss
        state.evals_without_improvement = 0
    else:
        state.evals_without_improvement += 1
    state.eval_losses.append([float(state.step), loss])
    hooks.write(
        "eval",
        step=state.step,
        eval_loss=loss,
        best_eval_loss=state.best_eval_loss,
        evals_without_improvement=state.evals_without_improvement,
    )
    patience = training.early_stopping_patience
    if patience and state.evals_without_improvement >= patience:
        hooks.write(
            "early_stop",
            step=state.step,
            best_eval_loss=state.best_eval_loss,
            patience=patience,
        )
        return True
    return False


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
