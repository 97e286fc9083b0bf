"""Builds partial fine-tuning: the bottom decoder layers (and the embeddings) stay frozen."""

from __future__ import annotations

from typing import Any

from torch import nn

from trainer.architecture import detect_targets, find_layers
from trainer.errors import ConfigError
from trainer.methods.full.builder import FullModelRuntime
from trainer.methods.partial.config import PartialConfig
from trainer.methods.runtime import select_device
from trainer.models import BaseModelRef, load_base


class PartialModelRuntime(FullModelRuntime):
    def __init__(self, *, frozen_layers: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.frozen_layers = frozen_layers
        """How many bottom decoder layers are frozen."""

    def describe(self) -> dict[str, Any]:
        config = self.config
        assert isinstance(config, PartialConfig)
        return {
            **super().describe(),
            "frozen_layers": self.frozen_layers,
            "layers": self.plan.num_layers,
        }


def build(
    config: PartialConfig, *, base: BaseModelRef, total_steps: int, device: str | None = None
) -> PartialModelRuntime:
    """A :class:`PartialModelRuntime`; raises :class:`ConfigError` if nothing would be left to
    train."""
    device = select_device(device)
    model, tokenizer = load_base(base, device=device)
    _, layers = find_layers(model)
    if config.freeze_layers >= len(layers):
        raise ConfigError(
            f"partial: freeze_layers={config.freeze_layers} but the model has {len(layers)} layers"
        )
    for param in model.parameters():
        param.requires_grad_(True)
    frozen = layers[: config.freeze_layers]  # a negative count keeps the top layers trainable
    for layer in frozen:
        for param in layer.parameters():
            param.requires_grad_(False)
    if config.freeze_embeddings:
        # Token and learned position embeddings; a tied output head shares the token weights.
        for module in model.modules():
            if isinstance(module, nn.Embedding):
                for param in module.parameters():
                    param.requires_grad_(False)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return PartialModelRuntime(
        frozen_layers=len(frozen),
        model=model,
        tokenizer=tokenizer,
        config=config,
        base=base,
        plan=detect_targets(model),
        device=device,
    )
