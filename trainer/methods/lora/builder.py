"""Builds a LoRA model: frozen fp32 base, peft LoRA adapters on the detected targets."""

from __future__ import annotations

from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model

from trainer.architecture import detect_targets
from trainer.methods.lora.config import LoraConfig
from trainer.methods.runtime import MergeablePeftRuntime, lora_targets, quiet_peft, select_device
from trainer.models import BaseModelRef, load_base


def build(
    config: LoraConfig, *, base: BaseModelRef, total_steps: int, device: str | None = None
) -> MergeablePeftRuntime:
    """A :class:`MergeablePeftRuntime` with LoRA adapters (``total_steps`` is unused by LoRA)."""
    device = select_device(device)
    model, tokenizer = load_base(base, device=device)
    plan = detect_targets(model)
    modules, parameters = lora_targets(config, plan)
    peft_config = PeftLoraConfig(
        task_type="CAUSAL_LM",
        r=config.rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.dropout,
        target_modules=modules,
        target_parameters=parameters or None,
        bias=config.bias,
        use_rslora=config.use_rslora,
    )
    with quiet_peft():
        peft_model = get_peft_model(model, peft_config)
    return MergeablePeftRuntime(
        model=peft_model,
        tokenizer=tokenizer,
        config=config,
        base=base,
        plan=plan,
        device=device,
        target_modules=modules,
        target_parameters=parameters,
    )
