"""Builds an AdaLoRA model and drives its rank budget after every optimizer step."""

from __future__ import annotations

from typing import Any

from peft import AdaLoraConfig as PeftAdaLoraConfig
from peft import get_peft_model

from trainer.architecture import detect_targets
from trainer.errors import ConfigError
from trainer.methods.adalora.config import AdaLoraConfig
from trainer.methods.runtime import MergeablePeftRuntime, lora_targets, quiet_peft, select_device
from trainer.models import BaseModelRef, load_base

_ALLOCATOR_STATE = ("ipt", "exp_avg_ipt", "exp_avg_unc")


class AdaLoraRuntime(MergeablePeftRuntime):
    """AdaLoRA: importance scores and rank pattern are part of the resumable state."""

    def after_optimizer_step(self, step: int) -> None:
        self.model.base_model.update_and_allocate(step)

    def _allocator(self) -> Any:
        return self.model.base_model.rankallocator

    def extra_state(self) -> dict[str, Any]:
        allocator = self._allocator()
        state: dict[str, Any] = {
            name: {k: v.detach().cpu().clone() for k, v in getattr(allocator, name).items()}
            for name in _ALLOCATOR_STATE
        }
        pattern = self.model.peft_config["default"].rank_pattern
        state["rank_pattern"] = (
            {k: [bool(b) for b in v] for k, v in pattern.items()} if pattern else None
        )
        return state

    def load_extra_state(self, state: dict[str, Any]) -> None:
        allocator = self._allocator()
        device = next(self.model.parameters()).device
        for name in _ALLOCATOR_STATE:
            setattr(allocator, name, {k: v.to(device) for k, v in state[name].items()})
        self.model.peft_config["default"].rank_pattern = state.get("rank_pattern")

    def describe(self) -> dict[str, Any]:
        peft_config = self.model.peft_config["default"]
        return {
            **super().describe(),
            "total_step": peft_config.total_step,
            "tinit": peft_config.tinit,
            "tfinal": peft_config.tfinal,
        }


def build(
    config: AdaLoraConfig, *, base: BaseModelRef, total_steps: int, device: str | None = None
) -> AdaLoraRuntime:
    """An :class:`AdaLoraRuntime`; ``config.total_step`` (or else ``total_steps``) sets the
    schedule."""
    total = config.total_step or total_steps
    tinit, tfinal = config.schedule(total)
    if tinit >= total - tfinal:
        raise ConfigError(f"adalora: {total} step(s) leave no budgeting phase")
    device = select_device(device)
    model, tokenizer = load_base(base, device=device)
    plan = detect_targets(model)
    modules, _ = lora_targets(config, plan)
    assert config.init_rank is not None
    peft_config = PeftAdaLoraConfig(
        task_type="CAUSAL_LM",
        init_r=config.init_rank,
        target_r=config.rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.dropout,
        target_modules=modules,
        tinit=tinit,
        tfinal=tfinal,
        deltaT=config.delta_t,
        beta1=config.beta1,
        beta2=config.beta2,
        orth_reg_weight=config.orth_reg_weight,
        total_step=total,
    )
    with quiet_peft():
        peft_model = get_peft_model(model, peft_config)
    return AdaLoraRuntime(
        model=peft_model,
        tokenizer=tokenizer,
        config=config,
        base=base,
        plan=plan,
        device=device,
        target_modules=modules,
        target_parameters=[],
    )
