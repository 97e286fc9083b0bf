"""What every training method shares: the :class:`Method` enum, the config base classes and the
targeting scope. Pure configuration: nothing here imports torch, transformers or peft."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from trainer.config_fields import to_mapping
from trainer.errors import ConfigError

MIN_RANK = 8
MAX_RANK = 64


class Method(StrEnum):
    """Training methods, keys of :data:`trainer.methods.REGISTRY`."""

    LORA = "lora"
    ADALORA = "adalora"
    QLORA = "qlora"
    MOE_LORA = "moe_lora"
    MOE_LORA_DISCIPLINE = "moe_lora_discipline"
    FULL = "full"
    PARTIAL = "partial"


class TargetScope(StrEnum):
    """Which parts of each decoder layer adapters are attached to (see
    :mod:`trainer.architecture`)."""

    ATTENTION = "attention"
    """Every linear projection of the attention block (q/k/v/o, fused qkv, latent kv
    projections)."""
    MLP = "mlp"
    """Every linear layer of the feed-forward block (dense MLP, shared experts of a MoE layer)."""
    ATTENTION_MLP = "attention_mlp"
    """Both of the above."""
    ALL = "all"
    """Both of the above, plus the fused routed-expert weights of MoE layers (LoRA only)."""


@dataclass(frozen=True)
class MethodConfig:
    """Base of every method config. Subclasses are frozen dataclasses whose fields carry help
    text."""

    method: ClassVar[Method]

    def to_dict(self) -> dict[str, Any]:
        """Field values, JSON-ready (this is what manifests and recipe hashes record)."""
        return to_mapping(self)


@dataclass(frozen=True)
class AdapterMethodConfig(MethodConfig):
    """Fields shared by the low-rank adapter methods (LoRA, AdaLoRA, QLoRA, both MoE-LoRAs)."""

    rank: int = field(
        default=16,
        metadata={"help": f"LoRA rank r, between {MIN_RANK} and {MAX_RANK}."},
    )
    alpha: int | None = field(
        default=None,
        metadata={"help": "LoRA scaling numerator (scale = alpha / rank); null means 2 x rank."},
    )
    dropout: float = field(
        default=0.05,
        metadata={"help": "Dropout applied to the adapter input, in [0, 0.5]."},
    )
    targets: TargetScope = field(
        default=TargetScope.ATTENTION,
        metadata={
            "help": "Which modules get adapters, detected from the module tree: attention, mlp, "
            "attention_mlp or all (all adds MoE routed experts, LoRA only)."
        },
    )
    target_modules: list[str] | None = field(
        default=None,
        metadata={
            "help": "Explicit module name suffixes (peft matching); overrides `targets` when given."
        },
    )

    def __post_init__(self) -> None:
        if isinstance(self.rank, bool) or not isinstance(self.rank, int):
            raise ConfigError(f"rank must be an integer, got {self.rank!r}")
        if not MIN_RANK <= self.rank <= MAX_RANK:
            raise ConfigError(f"rank must be between {MIN_RANK} and {MAX_RANK}, got {self.rank}")
        if self.alpha is None:
            object.__setattr__(self, "alpha", 2 * self.rank)
        elif isinstance(self.alpha, bool) or not isinstance(self.alpha, int) or self.alpha < 1:
            raise ConfigError(f"alpha must be a positive integer, got {self.alpha!r}")
        if not 0.0 <= self.dropout <= 0.5:
            raise ConfigError(f"dropout must be in [0, 0.5], got {self.dropout}")
        object.__setattr__(self, "targets", TargetScope(self.targets))
        if self.target_modules is not None:
            if not self.target_modules or not all(
                isinstance(m, str) and m.strip() for m in self.target_modules
            ):
                raise ConfigError("target_modules must be a non-empty list of module names")
            object.__setattr__(self, "target_modules", list(self.target_modules))
        if self.targets is TargetScope.ALL and self.method is not Method.LORA:
            raise ConfigError(
                f"targets=all (MoE routed experts) is supported by lora only, not {self.method}"
            )
        if self.targets is TargetScope.ALL and self.dropout > 0:
            raise ConfigError(
                "targets=all needs dropout 0: peft adapts routed-expert weights without dropout"
            )

    @property
    def lora_alpha(self) -> int:
        """The resolved alpha (2 x rank unless given)."""
        assert self.alpha is not None
        return self.alpha

    @property
    def scaling(self) -> float:
        """alpha / rank, the factor applied to the low-rank update."""
        return self.lora_alpha / self.rank
