"""Recipes: named presets (``trainer/recipes/*.yaml``) of a method config plus training settings.

A recipe file looks like::

    name: knowledge_qa
    task: knowledge_qa
    description: Short factual questions and answers.
    method: lora
    method_config: {rank: 16, targets: attention_mlp}
    training: {learning_rate: 2.0e-4, epochs: 3, batch_size: 4}

Omitted fields take the dataclass defaults; an omitted ``alpha`` is 2 x rank. The *resolved* recipe
(every field filled in) is what runs and what is hashed: ``recipe_hash = sha256(JCS(resolved))``,
hex, where JCS is RFC 8785 canonical JSON. The description is prose and is not hashed.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ledger.canonical import jcs
from trainer.config_fields import from_mapping, to_mapping
from trainer.errors import ConfigError, RecipeNotFound
from trainer.methods import Method, MethodConfig, method_config, method_spec

RECIPES_DIR = Path(__file__).with_name("recipes")

SchedulerName = Literal["linear", "cosine", "constant", "constant_with_warmup"]
PromptFormat = Literal["auto", "chat", "alpaca"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]

#: Training fields added after recipes were first hashed, with their defaults: left out of the
#: resolved (hashed) recipe while at the default, so a recipe that does not use them keeps the
#: hash it always had (and runs recorded with it stay resumable).
LATER_TRAINING_FIELDS: dict[str, Any] = {
    "val_size": None,
    "eval_steps": 0,
    "early_stopping_patience": 0,
    "precision": "auto",
}


@dataclass(frozen=True)
class TrainingConfig:
    """Optimization and data settings shared by every method."""

    learning_rate: float = field(default=2e-4, metadata={"help": "Peak learning rate, in (0, 1]."})
    epochs: int = field(
        default=3,
        metadata={"help": "Passes over the training split (ignored when max_steps is set)."},
    )
    max_steps: int | None = field(
        default=None,
        metadata={"help": "Optimizer steps to run; null means epochs x steps per epoch."},
    )
    batch_size: int = field(default=4, metadata={"help": "Examples per micro-batch."})
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Micro-batches accumulated per optimizer step."}
    )
    max_seq_length: int = field(
        default=256, metadata={"help": "Tokens per example after truncation, >= 16."}
    )
    warmup_ratio: float = field(
        default=0.03,
        metadata={"help": "Fraction of the steps with a linearly rising rate, in [0, 0.5]."},
    )
    scheduler: SchedulerName = field(
        default="cosine",
        metadata={
            "help": "Learning-rate schedule: linear, cosine, constant or constant_with_warmup."
        },
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay, >= 0."})
    max_grad_norm: float = field(
        default=1.0, metadata={"help": "Gradient clipping norm; 0 disables clipping."}
    )
    seed: int = field(default=42, metadata={"help": "Seed of every random generator of the run."})
    checkpoint_every: int = field(
        default=50,
        metadata={"help": "Save a resumable checkpoint every N optimizer steps; 0: never."},
    )
    keep_checkpoints: int = field(
        default=2, metadata={"help": "How many of the latest checkpoints to keep, >= 1."}
    )
    val_fraction: float = field(
        default=0.1,
        metadata={
            "help": "Share of records held out for validation (by record id hash), in [0, 0.5]."
        },
    )
    log_every: int = field(
        default=1, metadata={"help": "Emit a TrainingProgressed event every N optimizer steps."}
    )
    prompt_format: PromptFormat = field(
        default="auto",
        metadata={
            "help": "auto: the tokenizer's chat template when it has one, else Alpaca; "
            "chat or alpaca to force one."
        },
    )
    val_size: int | None = field(
        default=None,
        metadata={
            "help": "Hold out exactly this many records for validation (those whose record id "
            "hashes lowest) instead of val_fraction; null: use val_fraction."
        },
    )
    eval_steps: int = field(
        default=0,
        metadata={
            "help": "Compute the validation loss every N optimizer steps (and after the last); "
            "0: only once the run ends."
        },
    )
    early_stopping_patience: int = field(
        default=0,
        metadata={
            "help": "Stop once the validation loss failed to improve on its best for this many "
            "evaluations in a row (needs eval_steps); 0: never stop early."
        },
    )
    precision: Precision = field(
        default="auto",
        metadata={
            "help": "auto: bf16 autocast on a CUDA device that supports it, else fp16 autocast "
            "on CUDA, fp32 on CPU; or fp32, bf16, fp16 explicitly (autocast needs CUDA)."
        },
    )

    def __post_init__(self) -> None:
        if not 0.0 < self.learning_rate <= 1.0:
            raise ConfigError(f"learning_rate must be in (0, 1], got {self.learning_rate}")
        positive = (
            "epochs",
            "batch_size",
            "gradient_accumulation_steps",
            "keep_checkpoints",
            "log_every",
        )
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1 or null, got {self.max_steps}")
        if self.max_seq_length < 16:
            raise ConfigError(f"max_seq_length must be >= 16, got {self.max_seq_length}")
        if not 0.0 <= self.warmup_ratio <= 0.5:
            raise ConfigError(f"warmup_ratio must be in [0, 0.5], got {self.warmup_ratio}")
        if self.weight_decay < 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.max_grad_norm < 0:
            raise ConfigError(f"max_grad_norm must be >= 0, got {self.max_grad_norm}")
        if self.checkpoint_every < 0:
            raise ConfigError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        if not 0.0 <= self.val_fraction <= 0.5:
            raise ConfigError(f"val_fraction must be in [0, 0.5], got {self.val_fraction}")
        if self.val_size is not None and (
            isinstance(self.val_size, bool)
            or not isinstance(self.val_size, int)
            or self.val_size < 1
        ):
            raise ConfigError(f"val_size must be an integer >= 1 or null, got {self.val_size!r}")
        for name in ("eval_steps", "early_stopping_patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
        if self.early_stopping_patience and not self.eval_steps:
            raise ConfigError("early_stopping_patience needs eval_steps >= 1")


@dataclass(frozen=True)
class Recipe:
    """A resolved recipe: which method with which settings, for which teaching task."""

    name: str
    task: str
    method_config: MethodConfig
    training: TrainingConfig
    description: str = ""

    @property
    def method(self) -> Method:
        return self.method_config.method

    def resolved(self) -> dict[str, Any]:
        """Every setting, defaults filled in, JSON-ready: what is recorded and hashed."""
        return {
            "name": self.name,
            "task": self.task,
            "method": self.method.value,
            "method_config": self.method_config.to_dict(),
            "training": {
                k: v
                for k, v in to_mapping(self.training).items()
                if k not in LATER_TRAINING_FIELDS or v != LATER_TRAINING_FIELDS[k]
            },
        }

    @property
    def hash(self) -> str:
        """sha256 (hex) of the RFC 8785 canonical JSON of :meth:`resolved`."""
        return recipe_hash(self.resolved())

    def with_overrides(self, overrides: Mapping[str, Any]) -> Recipe:
        """A copy with ``overrides`` applied (see :func:`load_recipe`)."""
        return _apply_overrides(self, overrides)

    def with_method_config(self, config: MethodConfig) -> Recipe:
        """A copy that trains with ``config`` (possibly another method)."""
        return dataclasses.replace(self, method_config=config)


def recipe_hash(resolved: Mapping[str, Any]) -> str:
    """sha256 (hex) of the RFC 8785 canonical JSON of a resolved recipe mapping."""
    return hashlib.sha256(jcs(dict(resolved))).hexdigest()


def list_recipes() -> list[str]:
    """Names of the bundled recipe presets."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def recipe_from_mapping(data: Mapping[str, Any], *, where: str) -> Recipe:
    """A validated :class:`Recipe` from a parsed recipe document."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: a recipe must be a mapping")
    known = {"name", "task", "description", "method", "method_config", "training"}
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}")
    for required in ("name", "method"):
        if required not in data:
            raise ConfigError(f"{where}: missing field {required}")
    name = data["name"]
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.name: expected a non-empty string")
    spec = method_spec(data["method"])
    options = data.get("method_config") or {}
    config = from_mapping(spec.config_cls, options, where=f"{where}.method_config")
    training = from_mapping(TrainingConfig, data.get("training") or {}, where=f"{where}.training")
    return Recipe(
        name=name,
        task=str(data.get("task", name)),
        description=str(data.get("description", "")).strip(),
        method_config=config,
        training=training,
    )


def load_recipe(name: str | Path, overrides: Mapping[str, Any] | None = None) -> Recipe:
    """The recipe preset ``name`` (or a YAML file path), with ``overrides`` applied and validated.

    Override keys are ``training.<field>``, ``method_config.<field>``, ``method`` (switches method,
    keeping the method options the new method also has) or a bare field name found in exactly one of
    the two sections. Raises :class:`RecipeNotFound` or :class:`ConfigError` naming the bad field.
    """
    path = Path(name)
    if path.suffix not in (".yaml", ".yml"):
        path = RECIPES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise RecipeNotFound(
            f"no recipe {str(name)!r}; bundled recipes: {', '.join(list_recipes())}"
        )
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"recipe {path.name}: invalid YAML: {exc}") from exc
    recipe = recipe_from_mapping(document, where=f"recipe {path.stem}")
    return recipe.with_overrides(overrides) if overrides else recipe


def _apply_overrides(recipe: Recipe, overrides: Mapping[str, Any]) -> Recipe:
    where = f"recipe {recipe.name} override"
    method = recipe.method
    options = recipe.method_config.to_dict()
    training = to_mapping(recipe.training)
    explicit_options: dict[str, Any] = {}
    method_fields = {f.name for f in dataclasses.fields(recipe.method_config)}
    training_fields = set(training)
    for key, value in overrides.items():
        section, _, field_name = str(key).rpartition(".")
        if key == "method":
            method = method_spec(value).method
        elif section == "training":
            if field_name not in training_fields:
                raise ConfigError(f"{where}: unknown field training.{field_name}")
            training[field_name] = value
        elif section == "method_config":
            explicit_options[field_name] = value
        elif section:
            raise ConfigError(f"{where}: unknown section {section!r} in {key!r}")
        elif field_name in training_fields and field_name in method_fields:
            raise ConfigError(f"{where}: {key!r} is ambiguous; prefix training. or method_config.")
        elif field_name in training_fields:
            training[field_name] = value
        elif field_name in method_fields:
            explicit_options[field_name] = value
        else:
            raise ConfigError(f"{where}: unknown field {key!r}")
    target_cls = method_spec(method).config_cls
    target_fields = {f.name for f in dataclasses.fields(target_cls)}
    if method is not recipe.method:
        options = {k: v for k, v in options.items() if k in target_fields}
    if "rank" in explicit_options:
        # Settings derived from the rank (alpha = 2 x rank, AdaLoRA's initial rank) follow it
        # unless they are overridden too.
        for derived in ("alpha", "init_rank"):
            if derived in options and derived not in explicit_options:
                options[derived] = None
    options.update(explicit_options)
    config = method_config(method, options)
    return dataclasses.replace(
        recipe,
        method_config=config,
        training=from_mapping(TrainingConfig, training, where=f"{where} training"),
    )
