"""Full fine-tuning: every weight is trained (the reference the adapter methods are compared
with)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from trainer.methods.base import Method, MethodConfig


@dataclass(frozen=True)
class FullConfig(MethodConfig):
    """Full fine-tuning. Saved as a complete transformers model folder."""

    method: ClassVar[Method] = Method.FULL

    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "Recompute activations in the backward pass to save memory."},
    )
