"""Recipe advice: settings that are valid but outside the range that usually works, each with the
reason.

Validation (:mod:`trainer.recipes`, the method configs) refuses what cannot run; advice only
warns, and never changes a setting: the caller shows the warnings (``byr train``, ``byr
recipes``, ``POST /v1/training/runs``) and the recipe runs as written. Pure rules, no torch.

Ranges, from the LoRA/QLoRA papers and common fine-tuning practice:

- LoRA rank 8-64 (enforced); above 32 on a small corpus (< 500 records) the adapter can memorize.
- alpha a multiple of the rank (scale alpha/rank of 1, 2, ...; the default is 2 x rank).
- Learning rate per method: adapters (lora, adalora, qlora, moe_lora) 5e-5..5e-4; full
  fine-tuning 1e-6..5e-5; partial fine-tuning 1e-6..1e-4.
- Adapter dropout by corpus size: at least 0.05 under 1,000 records (few examples overfit), at
  most 0.1 from 10,000 records (regularization costs more than it saves).
- Partial fine-tuning: freezing no layer trains everything (use ``full``); freezing all but one
  or two layers leaves little capacity.
- Mixed precision autocast needs CUDA: bf16/fp16 on a CPU run trains in fp32.
- Evaluation and early stopping need a validation split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from trainer.methods import Method
from trainer.methods.base import AdapterMethodConfig
from trainer.recipes import Recipe

ADAPTER_METHODS = (
    Method.LORA,
    Method.ADALORA,
    Method.QLORA,
    Method.MOE_LORA,
    Method.MOE_LORA_DISCIPLINE,
)

#: Advised learning-rate range per method, inclusive.
LEARNING_RATES: dict[Method, tuple[float, float]] = {
    Method.LORA: (5e-5, 5e-4),
    Method.ADALORA: (5e-5, 5e-4),
    Method.QLORA: (5e-5, 5e-4),
    Method.MOE_LORA: (5e-5, 5e-4),
    Method.MOE_LORA_DISCIPLINE: (5e-5, 5e-4),
    Method.FULL: (1e-6, 5e-5),
    Method.PARTIAL: (1e-6, 1e-4),
}
SMALL_CORPUS = 1_000
LARGE_CORPUS = 10_000
TINY_CORPUS = 500


@dataclass(frozen=True, slots=True)
class RecipeWarning:
    """A setting outside its advised range: where it is and why it matters."""

    field: str
    """The setting, as an override key (``training.learning_rate``, ``method_config.rank``)."""
    message: str
    """What is advised, and why."""

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "message": self.message}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def advise(
    recipe: Recipe, *, records: int | None = None, device: str | None = None
) -> list[RecipeWarning]:
    """Warnings for ``recipe``; ``records`` (corpus size) and ``device`` (``cpu``/``cuda``)
    enable the rules that depend on them."""
    warnings: list[RecipeWarning] = []
    warnings += _learning_rate(recipe)
    config = recipe.method_config
    if isinstance(config, AdapterMethodConfig):
        warnings += _adapter(config, records=records)
    if recipe.method is Method.PARTIAL:
        warnings += _partial(recipe)
    warnings += _training(recipe, device=device)
    return warnings


def _learning_rate(recipe: Recipe) -> list[RecipeWarning]:
    low, high = LEARNING_RATES[recipe.method]
    rate = recipe.training.learning_rate
    if low <= rate <= high:
        return []
    if rate > high:
        why = "too high: training tends to diverge or forget what the base model knew"
    else:
        why = "too low: the weights barely move in a short run"
    return [
        RecipeWarning(
            "training.learning_rate",
            f"{rate:g} is outside the advised {low:g}..{high:g} for {recipe.method.value} ({why})",
        )
    ]


def _adapter(config: AdapterMethodConfig, *, records: int | None) -> list[RecipeWarning]:
    out: list[RecipeWarning] = []
    if config.lora_alpha % config.rank:
        out.append(
            RecipeWarning(
                "method_config.alpha",
                f"{config.lora_alpha} is not a multiple of rank {config.rank}: the scale "
                f"alpha/rank = {config.scaling:.3g} is unusual; advised 1 x or 2 x rank "
                f"({config.rank} or {2 * config.rank})",
            )
        )
    if records is not None and records < TINY_CORPUS and config.rank > 32:
        out.append(
            RecipeWarning(
                "method_config.rank",
                f"rank {config.rank} on {records} records: a high-rank adapter can memorize a "
                "small corpus; advised 8-32",
            )
        )
    if records is not None and records < SMALL_CORPUS and config.dropout < 0.05:
        out.append(
            RecipeWarning(
                "method_config.dropout",
                f"{config.dropout:g} on {records} records: small corpora overfit; advised 0.05-0.1",
            )
        )
    if records is not None and records >= LARGE_CORPUS and config.dropout > 0.1:
        out.append(
            RecipeWarning(
                "method_config.dropout",
                f"{config.dropout:g} on {records} records: a large corpus needs little "
                "regularization; advised 0-0.1",
            )
        )
    return out


def _partial(recipe: Recipe) -> list[RecipeWarning]:
    freeze = int(recipe.method_config.to_dict().get("freeze_layers", 0))
    if freeze == 0:
        return [
            RecipeWarning(
                "method_config.freeze_layers",
                "0 freezes no decoder layer: this trains every layer like full fine-tuning; "
                "advised: freeze the bottom half (or -N to train only the top N)",
            )
        ]
    if -2 <= freeze < 0:
        return [
            RecipeWarning(
                "method_config.freeze_layers",
                f"{freeze} trains only the top {-freeze} layer(s): little capacity to learn "
                "the corpus; advised: train at least the top quarter of the layers",
            )
        ]
    return []


def _training(recipe: Recipe, *, device: str | None) -> list[RecipeWarning]:
    training = recipe.training
    out: list[RecipeWarning] = []
    if (
        device is not None
        and not device.startswith("cuda")
        and training.precision
        in (
            "bf16",
            "fp16",
        )
    ):
        out.append(
            RecipeWarning(
                "training.precision",
                f"{training.precision} autocast needs a CUDA device; this {device} run trains "
                "in fp32 (bf16 matmuls are far slower on CPUs)",
            )
        )
    no_split = training.val_size is None and training.val_fraction == 0
    if no_split and (training.eval_steps or training.early_stopping_patience):
        out.append(
            RecipeWarning(
                "training.eval_steps",
                "evaluation needs a validation split: set val_fraction or val_size, or no "
                "eval loss (and no early stopping) is computed",
            )
        )
    return out


__all__ = ["LEARNING_RATES", "RecipeWarning", "advise"]
