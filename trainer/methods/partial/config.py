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
        metadata={
            "help": "Decoder layers to freeze, counted like a slice from the bottom: N >= 0"
            " freezes the bottom N (fewer than the model has); -N freezes all but the top N,"
            " so one recipe fits bases of any depth."
        },
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
        if isinstance(self.freeze_layers, bool) or not isinstance(self.freeze_layers, int):
            raise ConfigError(f"freeze_layers must be an integer, got {self.freeze_layers!r}")
