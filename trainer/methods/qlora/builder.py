"""Builds a QLoRA model: the base quantized to 4 bits while loading, LoRA adapters in full
precision."""

from __future__ import annotations

from typing import Any

import torch
from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model, prepare_model_for_kbit_training

from trainer.architecture import detect_targets
from trainer.methods.qlora.config import QLoraConfig
from trainer.methods.runtime import PeftRuntime, lora_targets, quiet_peft, select_device
from trainer.models import BaseModelRef, load_base


def quantization_config(config: QLoraConfig) -> Any:
    """The ``BitsAndBytesConfig`` that loads a base the way this QLoRA config trains it.

    Reloading a QLoRA adapter needs the base loaded with this same quantization.
    """
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=config.quant_type,
        bnb_4bit_compute_dtype=getattr(torch, config.compute_dtype),
        bnb_4bit_use_double_quant=config.double_quant,
    )


class QLoraRuntime(PeftRuntime):
    def describe(self) -> dict[str, Any]:
        config = self.config
        assert isinstance(config, QLoraConfig)
        return {
            **super().describe(),
            "quantization": {
                "load_in_4bit": True,
                "bnb_4bit_quant_type": config.quant_type,
                "bnb_4bit_compute_dtype": config.compute_dtype,
                "bnb_4bit_use_double_quant": config.double_quant,
            },
        }


def build(
    config: QLoraConfig, *, base: BaseModelRef, total_steps: int, device: str | None = None
) -> QLoraRuntime:
    """A :class:`QLoraRuntime` on a 4-bit base (``device_map`` CPU, or CUDA when available)."""
    device = select_device(device)
    model, tokenizer = load_base(
        base, quantization_config=quantization_config(config), device=device
    )
    with quiet_peft():
        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=config.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    plan = detect_targets(model)
    modules, _ = lora_targets(config, plan)
    peft_config = PeftLoraConfig(
        task_type="CAUSAL_LM",
        r=config.rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.dropout,
        target_modules=modules,
    )
    with quiet_peft():
        peft_model = get_peft_model(model, peft_config)
    return QLoraRuntime(
        model=peft_model,
        tokenizer=tokenizer,
        config=config,
        base=base,
        plan=plan,
        device=device,
        target_modules=modules,
        target_parameters=[],
    )
