"""PEFT trainer: methods, architecture-aware targeting, recipes, resumable jobs, adapters with
manifests.

Importing this package is cheap (no torch, transformers or peft); the names below are loaded on
first access from the submodule that defines them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainer.architecture import ModelFingerprint, base_model_hash, detect_targets, fingerprint
    from trainer.errors import TrainerError
    from trainer.job import TrainingResult, run_training
    from trainer.loading import load_trained
    from trainer.manifest import AdapterManifest, adapter_hash, read_manifest, verify_adapter
    from trainer.methods import Method
    from trainer.models import build_tiny_model, load_smollm2, resolve_base
    from trainer.recipes import Recipe, list_recipes, load_recipe

_EXPORTS = {
    "AdapterManifest": "trainer.manifest",
    "Method": "trainer.methods",
    "ModelFingerprint": "trainer.architecture",
    "Recipe": "trainer.recipes",
    "TrainerError": "trainer.errors",
    "TrainingResult": "trainer.job",
    "adapter_hash": "trainer.manifest",
    "base_model_hash": "trainer.architecture",
    "build_tiny_model": "trainer.models",
    "detect_targets": "trainer.architecture",
    "fingerprint": "trainer.architecture",
    "list_recipes": "trainer.recipes",
    "load_recipe": "trainer.recipes",
    "load_smollm2": "trainer.models",
    "load_trained": "trainer.loading",
    "read_manifest": "trainer.manifest",
    "resolve_base": "trainer.models",
    "run_training": "trainer.job",
    "verify_adapter": "trainer.manifest",
}

__all__ = [
    "AdapterManifest",
    "Method",
    "ModelFingerprint",
    "Recipe",
    "TrainerError",
    "TrainingResult",
    "adapter_hash",
    "base_model_hash",
    "build_tiny_model",
    "detect_targets",
    "fingerprint",
    "list_recipes",
    "load_recipe",
    "load_smollm2",
    "load_trained",
    "read_manifest",
    "resolve_base",
    "run_training",
    "verify_adapter",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'trainer' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
