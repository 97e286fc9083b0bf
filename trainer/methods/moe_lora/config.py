"""MoE-LoRA: a mixture of LoRA experts with a learned router, built on peft's X-LoRA."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from trainer.errors import ConfigError
from trainer.methods.base import AdapterMethodConfig, Method, TargetScope


@dataclass(frozen=True)
class MoeLoraConfig(AdapterMethodConfig):
    """K LoRA experts on the feed-forward layers, mixed per token by a trained classifier (X-LoRA).

    Both the experts and the router are trained. The output is a peft X-LoRA folder that
    ``PeftModel.from_pretrained`` reloads (see docs/TRAINER.md for the layout).
    """

    method: ClassVar[Method] = Method.MOE_LORA

    targets: TargetScope = field(
        default=TargetScope.MLP,
        metadata={"help": "Modules that carry the experts; the feed-forward layers by default."},
    )
    num_experts: int = field(
        default=4,
        metadata={"help": "Number K of LoRA experts, between 2 and 16."},
    )
    top_k: int | None = field(
        default=None,
        metadata={
            "help": "Route each token to its top-k experts only (softmax over those k); "
            "null mixes all experts densely."
        },
    )
    router_depth: int = field(
        default=1,
        metadata={"help": "Number of layers of the router (X-LoRA classifier)."},
    )
    router_hidden_size: int = field(
        default=256,
        metadata={"help": "Hidden width of the router when router_depth > 1."},
    )
    softmax_temperature: float = field(
        default=1.0,
        metadata={"help": "Router softmax temperature; lower is sharper."},
    )
    layerwise_routing: bool = field(
        default=False,
        metadata={"help": "Separate expert weights per adapted layer instead of one per token."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 2 <= self.num_experts <= 16:
            raise ConfigError(f"num_experts must be between 2 and 16, got {self.num_experts}")
        if self.top_k is not None and not 1 <= self.top_k < self.num_experts:
            raise ConfigError(
                f"top_k must be between 1 and num_experts - 1 ({self.num_experts - 1}), "
                f"got {self.top_k}"
            )
        if self.router_depth < 1:
            raise ConfigError(f"router_depth must be >= 1, got {self.router_depth}")
        if self.router_hidden_size < 1:
            raise ConfigError(f"router_hidden_size must be >= 1, got {self.router_hidden_size}")
        if not self.softmax_temperature > 0:
            raise ConfigError(
                f"softmax_temperature must be positive, got {self.softmax_temperature}"
            )
