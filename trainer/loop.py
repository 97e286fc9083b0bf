"""The training loop of one run: build the method, restore a checkpoint, step, save the output.

Called by :func:`trainer.job.run_training`, which owns the run folder and the run id. Per
optimizer step: ``gradient_accumulation_steps`` micro-batches (forward, backward), gradient
clipping, optimizer step, the method's ``after_optimizer_step`` hook, scheduler step; then a
``TrainingProgressed`` event every ``log_every`` steps and a checkpoint every ``checkpoint_every``
steps.
"""

from __future__ import annotations

import math
import random
import resource
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ledger.events import (
    CheckpointSaved,
    DomainEvent,
    TrainingProgressed,
    TrainingRunCompleted,
    TrainingRunStarted,
)
from trainer.architecture import fingerprint
from trainer.checkpoint import (
    TrainerState,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    remove_partial_checkpoints,
    save_checkpoint,
)
from trainer.data import (
    BatchStream,
    DatasetSnapshotLike,
    Example,
    collate,
    discipline_counts,
    tokenize_records,
)
from trainer.errors import ResumeMismatch
from trainer.manifest import (
    MERGED_DIR,
    AdapterInfo,
    AdapterManifest,
    BaseModelInfo,
    DatasetInfo,
    adapter_files,
    adapter_hash,
    write_manifest,
)
from trainer.methods import method_spec
from trainer.methods.runtime import MergeablePeftRuntime, MethodRuntime
from trainer.models import BaseModelRef
from trainer.recipes import Recipe

EventSink = Callable[[DomainEvent], None]
"""Receives every lifecycle event of a run (the caller appends it to the event log)."""
ADAPTER_DIR = "adapter"


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


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def total_steps_for(recipe: Recipe, *, train_examples: int) -> int:
    """Optimizer steps of a run: ``max_steps``, else epochs x ceil(micro-batches / accumulation)."""
    training = recipe.training
    if training.max_steps is not None:
        return training.max_steps
    micro_batches = math.ceil(train_examples / training.batch_size)
    return training.epochs * math.ceil(micro_batches / training.gradient_accumulation_steps)


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB.

    Read from ``VmHWM`` in ``/proc/self/status`` where available: unlike ``ru_maxrss`` it starts
    afresh at ``exec``, so a process started from a large parent does not inherit its peak.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory_mb(device: str) -> float:
    """Peak memory so far: CUDA allocator peak on a GPU, else the process's peak RSS."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return peak_rss_mb()


def _batch_to(batch: dict[str, torch.Tensor], device: str) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _pad_id(tokenizer: Any) -> int:
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = getattr(tokenizer, "eos_token_id", None)
    return int(pad or 0)


def _validation_loss(
    runtime: MethodRuntime, examples: list[Example], *, batch_size: int
) -> float | None:
    if not examples:
        return None
    model = runtime.model
    model.eval()
    pad = _pad_id(runtime.tokenizer)
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            batch = _batch_to(collate(chunk, pad_token_id=pad), runtime.device)
            total += float(model(**batch, use_cache=False).loss) * len(chunk)
            count += len(chunk)
    return total / count


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
) -> TrainingResult:
    """Train ``recipe`` on the given split for run ``run_id`` and write ``output_dir/adapter``.

    Continues from the latest checkpoint in ``output_dir`` when there is one (its run id and recipe
    hash must match: :class:`ResumeMismatch`). Emits TrainingRunStarted, TrainingProgressed,
    CheckpointSaved and TrainingRunCompleted through ``emit``; errors propagate to the caller.
    """
    from transformers import get_scheduler

    training = recipe.training
    total_steps = total_steps_for(recipe, train_examples=len(train_records))
    _seed_everything(training.seed)
    runtime = method_spec(recipe.method).load_builder()(
        recipe.method_config, base=base, total_steps=total_steps, device=device
    )
    tokenizer = runtime.tokenizer
    pad_id = _pad_id(tokenizer)
    train_examples, val_examples = (
        tokenize_records(
            records,
            tokenizer,
            max_seq_length=training.max_seq_length,
            prompt_format=training.prompt_format,
        )
        for records in (train_records, val_records)
    )

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
    state = TrainerState(run_id=run_id, recipe_hash=recipe.hash)
    remove_partial_checkpoints(output_dir)
    checkpoint = latest_checkpoint(output_dir)
    if checkpoint is not None:
        state = load_checkpoint(
            checkpoint, runtime=runtime, optimizer=optimizer, scheduler=scheduler
        )
        if state.run_id != run_id or state.recipe_hash != recipe.hash:
            raise ResumeMismatch(f"checkpoint {checkpoint} belongs to another run or recipe")
    resumed_from = state.step
    stream = BatchStream(
        train_examples,
        batch_size=training.batch_size,
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
    model = runtime.model
    bar = tqdm(
        total=total_steps,
        initial=state.step,
        disable=not progress,
        desc=f"{recipe.method} {run_id[:8]}",
        unit="step",
    )
    try:
        while state.step < total_steps:
            started = time.perf_counter()
            model.train()
            step_loss, step_tokens = 0.0, 0
            for _ in range(training.gradient_accumulation_steps):
                batch = _batch_to(collate(stream.next_batch(), pad_token_id=pad_id), runtime.device)
                loss = model(**batch, use_cache=False).loss
                (loss / training.gradient_accumulation_steps).backward()
                step_loss += float(loss.detach()) / training.gradient_accumulation_steps
                step_tokens += int(batch["attention_mask"].sum())
            if training.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, training.max_grad_norm)
            learning_rate = float(scheduler.get_last_lr()[0])
            optimizer.step()
            runtime.after_optimizer_step(state.step)
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            elapsed = time.perf_counter() - started

            state.step += 1
            state.data_position = stream.position
            state.losses.append(step_loss)
            state.learning_rates.append(learning_rate)
            state.tokens_seen += step_tokens
            state.train_seconds += elapsed
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.4f}")
            if state.step % training.log_every == 0 or state.step == total_steps:
                emit(
                    TrainingProgressed(
                        run_id=run_id,
                        step=state.step,
                        loss=step_loss,
                        learning_rate=learning_rate,
                        tokens_per_second=step_tokens / elapsed if elapsed > 0 else 0.0,
                        peak_memory_mb=peak_memory_mb(runtime.device),
                    )
                )
            if (
                training.checkpoint_every
                and state.step % training.checkpoint_every == 0
                and state.step < total_steps
            ):
                path = save_checkpoint(
                    output_dir,
                    state=state,
                    runtime=runtime,
                    optimizer=optimizer,
                    scheduler=scheduler,
                    keep=training.keep_checkpoints,
                )
                emit(CheckpointSaved(run_id=run_id, step=state.step, path=str(path)))
    finally:
        bar.close()

    validation_loss = _validation_loss(runtime, val_examples, batch_size=training.batch_size)
    adapter_dir = output_dir / ADAPTER_DIR
    if adapter_dir.exists():
        shutil.rmtree(adapter_dir)
    adapter_dir.mkdir(parents=True)
    runtime.save(adapter_dir)
    digest = adapter_hash(adapter_dir)
    trained = runtime.model
    if merge:
        assert isinstance(runtime, MergeablePeftRuntime)
        trained = runtime.save_merged(adapter_dir / MERGED_DIR)
    manifest = _manifest(
        run_id=run_id,
        recipe=recipe,
        runtime=runtime,
        base=base,
        base_hash=base_hash,
        snapshot=snapshot,
        train_examples=train_examples,
        val_examples=val_examples,
        train_records=train_records,
        adapter_dir=adapter_dir,
        adapter_digest=digest,
        state=state,
        validation_loss=validation_loss,
        total_steps=total_steps,
    )
    write_manifest(adapter_dir, manifest)
    for old in list_checkpoints(output_dir):
        shutil.rmtree(old, ignore_errors=True)
    emit(
        TrainingRunCompleted(
            run_id=run_id,
            adapter_dir=str(adapter_dir),
            adapter_hash=digest,
            recipe_hash=recipe.hash,
            base_model_hash=base_hash,
            dataset_root=snapshot.dataset_root,
            final_loss=state.losses[-1],
        )
    )
    return TrainingResult(
        adapter_dir=adapter_dir,
        run_id=run_id,
        final_loss=state.losses[-1],
        losses=list(state.losses),
        validation_loss=validation_loss,
        manifest=manifest,
        resumed_from_step=resumed_from,
        model=trained.eval() if return_model else None,
    )


def _software_versions() -> dict[str, str]:
    import peft
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }


def _manifest(
    *,
    run_id: str,
    recipe: Recipe,
    runtime: MethodRuntime,
    base: BaseModelRef,
    base_hash: str,
    snapshot: DatasetSnapshotLike,
    train_examples: list[Example],
    val_examples: list[Example],
    train_records: list[Mapping[str, Any]],
    adapter_dir: Path,
    adapter_digest: str,
    state: TrainerState,
    validation_loss: float | None,
    total_steps: int,
) -> AdapterManifest:
    peft_config = getattr(runtime.model, "peft_config", None)
    peft_type = str(peft_config["default"].peft_type.value) if peft_config else None
    return AdapterManifest(
        run_id=run_id,
        method=recipe.method.value,
        method_config=recipe.method_config.to_dict(),
        method_details=runtime.describe(),
        recipe=recipe.resolved(),
        recipe_hash=recipe.hash,
        base_model=BaseModelInfo(
            name=base.name, hash=base_hash, fingerprint=fingerprint(runtime.model)
        ),
        dataset=DatasetInfo(
            root=snapshot.dataset_root,
            train_record_ids=[e.record_id for e in train_examples],
            validation_record_ids=[e.record_id for e in val_examples],
            discipline_counts=discipline_counts(train_records),
            snapshot_manifest=dict(snapshot.manifest),
        ),
        adapter=AdapterInfo(
            format=runtime.output_format,
            peft_type=peft_type,
            hash=adapter_digest,
            files=adapter_files(adapter_dir),
        ),
        metrics={
            "steps": state.step,
            "total_steps": total_steps,
            "final_loss": state.losses[-1],
            "losses": state.losses,
            "learning_rates": state.learning_rates,
            "validation_loss": validation_loss,
            "tokens_seen": state.tokens_seen,
            "train_seconds": round(state.train_seconds, 3),
            "peak_memory_mb": round(peak_memory_mb(runtime.device), 1),
        },
        created_at=datetime.now(UTC).isoformat(),
        software=_software_versions(),
    )
