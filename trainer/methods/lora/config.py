"""LoRA: low-rank adapters on frozen base weights (Hu et al., 2021)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from trainer.errors import ConfigError
from trainer.methods.base import AdapterMethodConfig, Method


@dataclass(frozen=True)
class LoraConfig(AdapterMethodConfig):
    """Plain LoRA. Saved as a standard peft LoRA adapter."""

    method: ClassVar[Method] = Method.LORA

    use_rslora: bool = field(
        default=False,
        metadata={"help": "Rank-stabilized scaling alpha / sqrt(rank) instead of alpha / rank."},
    )
    bias: Literal["none", "all", "lora_only"] = field(
        default="none",
        metadata={"help": "Which biases to train: none, all or lora_only."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.bias not in ("none", "all", "lora_only"):
            raise ConfigError(f"bias must be none, all or lora_only, got {self.bias!r}")
