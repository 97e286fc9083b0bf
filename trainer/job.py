"""Training jobs: one call runs (or resumes) a training run and writes its adapter with a manifest.

Layout of ``output_dir``::

    run.json                        run id, recipe hash, base model, dataset root (what a resume
                                    must match)
    checkpoints/checkpoint-<step>/  resumable checkpoints (see trainer.checkpoint), removed at
                                    the end
    adapter/                        the output (see trainer.manifest), complete once
                                    byr_manifest.json exists

Lifecycle events (``ledger.events``) are built here and in :mod:`trainer.loop` and handed to
``on_event``; the caller appends them to the stream ``run-<run_id>``: TrainingRunCreated (new runs
only), TrainingRunStarted, a TrainingProgressed every ``log_every`` steps, CheckpointSaved, then
TrainingRunCompleted or TrainingRunFailed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ledger.events import TrainingRunCreated, TrainingRunFailed
from ledger.files import private_dir, private_file
from ledger.ids import new_run_id
from trainer.architecture import base_model_hash
from trainer.data import DatasetSnapshotLike, as_snapshot, split_records
from trainer.distributed import World
from trainer.errors import (
    ConfigError,
    ResumeMismatch,
    TrainerError,
    TrainingFailed,
    TrainingStopped,
)
from trainer.loop import ADAPTER_DIR, EventSink, TrainingResult, train_run
from trainer.manifest import MANIFEST_NAME, AdapterManifest, read_manifest
from trainer.methods import Method, MethodConfig
from trainer.metrics import MetricsLog, metrics_path
from trainer.models import BaseModelRef, resolve_base
from trainer.recipes import Recipe, load_recipe

RUN_FILE = "run.json"
MERGEABLE = (Method.LORA, Method.ADALORA)


def run_training(
    *,
    base: str | BaseModelRef,
    recipe: Recipe | str,
    dataset: DatasetSnapshotLike | Sequence[Mapping[str, Any]],
    output_dir: Path,
    method_config: MethodConfig | None = None,
    resume: bool = False,
    on_event: EventSink | None = None,
    max_steps: int | None = None,
    progress: bool = True,
    device: str | None = None,
    cache_dir: Path | None = None,
    merge: bool = False,
    return_model: bool = False,
    should_stop: Callable[[], bool] | None = None,
) -> TrainingResult:
    """Train ``base`` on ``dataset`` with ``recipe`` and write the adapter to
    ``output_dir/adapter``.

    ``method_config`` replaces the recipe's method config and ``max_steps`` its
    ``training.max_steps``; both are folded into the recorded (and hashed) recipe. With
    ``resume=True`` an existing run in ``output_dir`` continues from its latest checkpoint (same run
    id; losses match an uninterrupted run) or, when already complete, is returned as is; the recipe,
    base model and dataset root must match (:class:`ResumeMismatch`). Without ``resume`` an
    ``output_dir`` that already holds a run is refused. ``merge=True`` (lora and adalora only) also
    writes the adapter merged into the base weights to ``adapter/merged/`` (not covered by the
    adapter hash). ``return_model=True`` keeps the trained model and returns it in eval mode
    (merged when ``merge``). Failures raise :class:`TrainingFailed` after emitting
    ``TrainingRunFailed``.

    Live metrics go to ``output_dir/metrics.jsonl`` (:mod:`trainer.metrics`). ``should_stop`` is
    asked at every step boundary: when it answers ``True`` the run saves a checkpoint there, emits
    ``TrainingRunStopped`` and raises :class:`TrainingStopped`; ``resume=True`` continues it.

    Started by ``torchrun`` or ``accelerate launch`` (``WORLD_SIZE`` > 1 in the environment), every
    process calls this with the same arguments and the run is data-parallel
    (:mod:`trainer.distributed`): ``batch_size`` is per process, and only rank 0 writes the run
    folder, emits events (``on_event`` is not called on other ranks), shows progress and answers
    ``should_stop``; every rank returns the same result.
    """
    world = World.join(device=device)
    try:
        return _run_training(
            world,
            base=base,
            recipe=recipe,
            dataset=dataset,
            output_dir=output_dir,
            method_config=method_config,
            resume=resume,
            on_event=on_event,
            max_steps=max_steps,
            progress=progress,
            device=device,
            cache_dir=cache_dir,
            merge=merge,
            return_model=return_model,
            should_stop=should_stop,
        )
    finally:
        if world is not None:
            world.close()


def _run_training(
    world: World | None,
    *,
    base: str | BaseModelRef,
    recipe: Recipe | str,
    dataset: DatasetSnapshotLike | Sequence[Mapping[str, Any]],
    output_dir: Path,
    method_config: MethodConfig | None,
    resume: bool,
    on_event: EventSink | None,
    max_steps: int | None,
    progress: bool,
    device: str | None,
    cache_dir: Path | None,
    merge: bool,
    return_model: bool,
    should_stop: Callable[[], bool] | None,
) -> TrainingResult:
    main = world is None or world.is_main
    emit: EventSink = (on_event if main else None) or (lambda _event: None)
    if world is not None:
        device = device or world.device
        progress = progress and main
    output_dir = Path(output_dir)
    resolved = load_recipe(recipe) if isinstance(recipe, str) else recipe
    if method_config is not None:
        resolved = resolved.with_method_config(method_config)
    if max_steps is not None:
        resolved = resolved.with_overrides({"training.max_steps": max_steps})
    if merge and resolved.method not in MERGEABLE:
        raise ConfigError(f"merge=True is supported by lora and adalora, not {resolved.method}")
    snapshot = as_snapshot(dataset)
    train_records, val_records = split_records(
        snapshot.records,
        val_fraction=resolved.training.val_fraction,
        val_size=resolved.training.val_size,
    )
    if isinstance(base, BaseModelRef):
        base_ref = base
    elif world is None:
        base_ref = resolve_base(base, cache_dir=cache_dir)
    else:
        with world.main_first():  # rank 0 fills the model cache, the others read it
            base_ref = resolve_base(base, cache_dir=cache_dir)

    def open_run() -> tuple[str, bool]:
        return _open_run(
            output_dir, recipe=resolved, base=base_ref, dataset=snapshot, resume=resume
        )

    run_id, is_new = open_run() if world is None else world.on_main(open_run)
    adapter_dir = output_dir / ADAPTER_DIR
    if not is_new and (adapter_dir / MANIFEST_NAME).is_file():
        manifest = read_manifest(adapter_dir)
        if manifest.run_id == run_id:
            return _result_from_manifest(adapter_dir, manifest)

    base_hash = base_model_hash(base_ref.path)
    if is_new:
        emit(
            TrainingRunCreated(
                run_id=run_id,
                recipe=resolved.name,
                method=resolved.method.value,
                base_model=base_ref.name,
                config={
                    "recipe": resolved.resolved(),
                    "recipe_hash": resolved.hash,
                    "base_model_hash": base_hash,
                    "dataset_root": snapshot.dataset_root,
                    "run_dir": str(output_dir.resolve()),
                },
            )
        )
    metrics = MetricsLog(metrics_path(output_dir)) if main else None
    try:
        return train_run(
            run_id=run_id,
            recipe=resolved,
            base=base_ref,
            base_hash=base_hash,
            snapshot=snapshot,
            train_records=train_records,
            val_records=val_records,
            output_dir=output_dir,
            emit=emit,
            progress=progress,
            device=device,
            merge=merge,
            return_model=return_model,
            metrics=metrics,
            should_stop=should_stop,
            world=world,
        )
    except TrainingStopped:
        raise
    except Exception as exc:
        emit(TrainingRunFailed(run_id=run_id, error=f"{type(exc).__name__}: {exc}"))
        if metrics is not None:
            metrics.write("end", status="failed", error=type(exc).__name__)
        if isinstance(exc, TrainerError):
            raise
        raise TrainingFailed(f"run {run_id} failed: {type(exc).__name__}: {exc}") from exc


def _open_run(
    output_dir: Path,
    *,
    recipe: Recipe,
    base: BaseModelRef,
    dataset: DatasetSnapshotLike,
    resume: bool,
) -> tuple[str, bool]:
    """``(run_id, is_new)``: the run recorded in ``output_dir``, or a new one recorded there now."""
    run_file = output_dir / RUN_FILE
    expected = {
        "recipe_hash": recipe.hash,
        "base_model": base.name,
        "dataset_root": dataset.dataset_root,
    }
    if run_file.is_file():
        if not resume:
            raise ResumeMismatch(
                f"{output_dir} already holds a run; pass resume=True or choose another output_dir"
            )
        recorded = json.loads(run_file.read_text(encoding="utf-8"))
        for key, value in expected.items():
            if recorded.get(key) != value:
                raise ResumeMismatch(
                    f"cannot resume run {recorded.get('run_id')}: {key} differs "
                    f"(recorded {recorded.get(key)!r}, now {value!r})"
                )
        return str(recorded["run_id"]), False
    run_id = new_run_id()
    private_dir(output_dir)
    staging = private_file(output_dir / f".{RUN_FILE}.tmp")
    staging.write_text(json.dumps({"run_id": run_id, **expected}, indent=2), encoding="utf-8")
    staging.replace(run_file)
    return run_id, True


def _result_from_manifest(adapter_dir: Path, manifest: AdapterManifest) -> TrainingResult:
    losses = [float(x) for x in manifest.metrics.get("losses", [])]
    return TrainingResult(
        adapter_dir=adapter_dir,
        run_id=manifest.run_id,
        final_loss=float(manifest.metrics["final_loss"]),
        losses=losses,
        validation_loss=manifest.metrics.get("validation_loss"),
        manifest=manifest,
        resumed_from_step=int(manifest.metrics.get("steps", len(losses))),
    )


__all__ = ["ADAPTER_DIR", "TrainingResult", "run_training"]
