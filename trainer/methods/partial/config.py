"""Partial fine-tuning: freeze the bottom N decoder layers, train the rest."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from trainer.errors import ConfigError
from trainer.methods.base import Method, MethodConfig


@dataclass(frozen=True)
class PartialConfig(MethodConfig):
    """Train only the top layers. Saved as a complete transformers model folder."""

    method: ClassVar[Method] = Method.PARTIAL

    freeze_layers: int = field(
        default=1,
        metadata={"help": "Number N of bottom decoder layers to freeze (< number of layers)."},
    )
    freeze_embeddings: bool = field(
        default=True,
        metadata={"help": "Freeze the token (and position) embeddings, and a tied output head."},
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "Recompute activations in the backward pass to save memory."},
    )

    def __post_init__(self) -> None:
        if isinstance(self.freeze_layers, bool) or self.freeze_layers < 0:
            raise ConfigError(
                f"freeze_layers must be a non-negative integer, got {self.freeze_layers}"
            )
