"""MoE-LoRA routed by discipline: one LoRA expert per course discipline, the record's discipline
as a hard routing prior."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from trainer.errors import ConfigError
from trainer.methods.base import AdapterMethodConfig, Method, TargetScope

FALLBACKS = ("uniform", "shared")


@dataclass(frozen=True)
class DisciplineMoeLoraConfig(AdapterMethodConfig):
    """Six LoRA experts, one per :class:`ledger.vocabulary.Discipline`, on the feed-forward layers.

    Each training example runs through its own discipline's expert only (plus the shared expert
    when there is one), so an expert learns from its discipline's records alone. The output is
    one plain peft LoRA adapter folder per expert (see docs/TRAINER.md for the layout and the
    inference fallback for a prompt of unknown discipline).
    """

    method: ClassVar[Method] = Method.MOE_LORA_DISCIPLINE

    targets: TargetScope = field(
        default=TargetScope.MLP,
        metadata={"help": "Modules that carry the experts; the feed-forward layers by default."},
    )
    shared_expert: bool = field(
        default=False,
        metadata={
            "help": "Add an expert named `shared` that is active for every record, next to the "
            "record's discipline expert; records without a known discipline train it alone."
        },
    )
    fallback: str = field(
        default="uniform",
        metadata={
            "help": "Inference for a prompt of unknown discipline: `uniform` (the mean of the six "
            "experts' updates, plus the shared expert when there is one) or `shared` (the shared "
            "expert alone; needs shared_expert)."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.shared_expert, bool):
            raise ConfigError(f"shared_expert must be true or false, got {self.shared_expert!r}")
        if self.fallback not in FALLBACKS:
            raise ConfigError(
                f"fallback must be one of {', '.join(FALLBACKS)}, got {self.fallback!r}"
            )
        if self.fallback == "shared" and not self.shared_expert:
            raise ConfigError("fallback=shared needs shared_expert: true")
