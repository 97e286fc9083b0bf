"""What a finished run leaves: the validation loss, the adapter folder and its manifest.

The manifest records everything needed to trust and reproduce the adapter (recipe and its hash,
base model hash and fingerprint, the record ids of both splits, the adapter hash, the metrics of
every step); ``trainer.manifest`` defines it and verifies it later.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from ledger.files import private_dir, tighten
from trainer.architecture import fingerprint
from trainer.checkpoint import TrainerState
from trainer.data import DatasetSnapshotLike, Example, batch_to, collate, discipline_counts
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
from trainer.memory import peak_memory_mb
from trainer.methods.runtime import MergeablePeftRuntime, MethodRuntime
from trainer.models import BaseModelRef
from trainer.recipes import Recipe
from trainer.steps import pad_token_id


@dataclass(frozen=True)
class WrittenAdapter:
    """An adapter folder complete with its manifest."""

    adapter_dir: Path
    digest: str
    """The adapter hash (``trainer.manifest.adapter_hash``), as recorded in the manifest."""
    manifest: AdapterManifest
    model: Any
    """The trained model: merged into the base weights when the adapter was merged."""


def validation_loss_of(
    runtime: MethodRuntime, examples: list[Example], *, batch_size: int
) -> float | None:
    """Mean loss per example over ``examples`` in eval mode; ``None`` without examples."""
    if not examples:
        return None
    model = runtime.model
    model.eval()
    pad = pad_token_id(runtime.tokenizer)
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            for route in runtime.route(examples[start : start + batch_size]):
                batch = batch_to(collate(route.examples, pad_token_id=pad), runtime.device)
                with route.context():
                    loss = float(model(**batch, use_cache=False).loss)
                total += loss * len(route.examples)
                count += len(route.examples)
    return total / count


def write_adapter(
    adapter_dir: Path,
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
    validation_loss: float | None,
    total_steps: int,
    merge: bool,
) -> WrittenAdapter:
    """Replace ``adapter_dir`` with the method's output (and, with ``merge``, the merged model in
    ``adapter_dir/merged``), then write its manifest: the folder is complete once the manifest
    exists."""
    if adapter_dir.exists():
        shutil.rmtree(adapter_dir)
    private_dir(adapter_dir)
    runtime.save(adapter_dir)
    digest = adapter_hash(adapter_dir)
    trained = runtime.model
    if merge:
        assert isinstance(runtime, MergeablePeftRuntime)
        trained = runtime.save_merged(private_dir(adapter_dir / MERGED_DIR))
    _tighten_tree(adapter_dir)
    manifest = build_manifest(
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
    tighten(write_manifest(adapter_dir, manifest))
    return WrittenAdapter(adapter_dir=adapter_dir, digest=digest, manifest=manifest, model=trained)


def _tighten_tree(folder: Path) -> None:
    """Make everything under ``folder`` owner-only: peft and transformers save their files (and
    any folder of their own) with the process umask."""
    for path in folder.rglob("*"):
        if not path.is_symlink():
            tighten(path)


def build_manifest(
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
    """The manifest of the adapter saved in ``adapter_dir`` after the steps in ``state``."""
    peft_config = getattr(runtime.model, "peft_config", None)
    # Every adapter of one model has the same type; a method with named experts has no "default".
    peft_type = str(next(iter(peft_config.values())).peft_type.value) if peft_config else None
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
            "eval_losses": state.eval_losses,
            "tokens_seen": state.tokens_seen,
            "train_seconds": round(state.train_seconds, 3),
            "peak_memory_mb": round(peak_memory_mb(runtime.device), 1),
        },
        created_at=datetime.now(UTC).isoformat(),
        software=_software_versions(),
    )


def _software_versions() -> dict[str, str]:
    import peft
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
    }
