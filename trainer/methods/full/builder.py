"""Builds full fine-tuning: every parameter of the base trains; output is a whole model folder."""

from __future__ import annotations

from pathlib import Path

from trainer.architecture import detect_targets
from trainer.methods.full.config import FullConfig
from trainer.methods.runtime import MethodRuntime, select_device
from trainer.models import BaseModelRef, load_base


class FullModelRuntime(MethodRuntime):
    """A plain transformers model (some parameters possibly frozen), saved with
    ``save_pretrained``."""

    output_format = "transformers"

    def save(self, adapter_dir: Path) -> None:
        self.model.save_pretrained(str(adapter_dir))


def build(
    config: FullConfig, *, base: BaseModelRef, total_steps: int, device: str | None = None
) -> FullModelRuntime:
    """A :class:`FullModelRuntime` with every parameter trainable."""
    device = select_device(device)
    model, tokenizer = load_base(base, device=device)
    for param in model.parameters():
        param.requires_grad_(True)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return FullModelRuntime(
        model=model,
        tokenizer=tokenizer,
        config=config,
        base=base,
        plan=detect_targets(model),
        device=device,
    )
