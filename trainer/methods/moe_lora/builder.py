"""Builds a mixture of LoRA experts with peft's X-LoRA, written as a folder plain peft reloads.

X-LoRA in peft 0.21 loads its experts from LoRA adapter folders, so K freshly initialized experts
are first saved to a temporary folder. Experts and router are both trained
(``use_trainable_adapters``).

peft's own ``save_pretrained`` cannot be used for the result: X-LoRA adapter names must be ``"0"``,
``"1"``, ... and peft's per-adapter state-dict filter drops every key containing ``.0.``/``.1.``
(layer indices, the router's ``layers.0``), so it writes an empty router and truncated experts.
:meth:`MoeLoraRuntime.save` writes the same layout itself::

    adapter_config.json                XLoraConfig; "adapters" maps "0".."K-1" to
                                       <adapter_dir>/experts/<i> (absolute paths)
    adapter_model.safetensors          router (X-LoRA classifier) weights
    experts/<i>/adapter_config.json    expert i as a LoRA adapter config ...
    experts/<i>/adapter_model.safetensors   ... and its weights
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from peft import LoraConfig as PeftLoraConfig
from peft import XLoraConfig, get_peft_model
from safetensors.torch import save_file

from trainer.architecture import detect_targets, fingerprint
from trainer.methods.moe_lora.config import MoeLoraConfig
from trainer.methods.runtime import (
    MethodRuntime,
    effective_targets,
    lora_targets,
    quiet_peft,
    select_device,
    tensors_by_name,
)
from trainer.models import BaseModelRef, load_base

EXPERTS_DIR = "experts"
_ROUTER_KEY = "internal_xlora_classifier"


class MoeLoraRuntime(MethodRuntime):
    output_format = "peft"

    def __init__(self, *, expert_config: PeftLoraConfig, target_modules: list[str], **kwargs: Any):
        super().__init__(**kwargs)
        self.expert_config = expert_config
        self.target_modules = target_modules

    @property
    def xlora_config(self) -> XLoraConfig:
        config: XLoraConfig = self.model.peft_config["default"]
        return config

    def describe(self) -> dict[str, Any]:
        expert_config = self.model.base_model.lora_model.peft_config["0"]
        return {
            **super().describe(),
            "requested_target_modules": self.target_modules,
            **effective_targets(expert_config),
        }

    def save(self, adapter_dir: Path) -> None:
        config = self.config
        assert isinstance(config, MoeLoraConfig)
        state = tensors_by_name(self.model)
        adapters: dict[str, str] = {}
        for index in range(config.num_experts):
            pattern = re.compile(
                rf"^base_model\.lora_model\.model\.(.+)\.(lora_[AB])\.{index}\.weight$"
            )
            weights = {}
            for key, tensor in state.items():
                match = pattern.match(key)
                if match:
                    name = f"base_model.model.{match.group(1)}.{match.group(2)}.weight"
                    weights[name] = tensor.detach().cpu().contiguous()
            expert_dir = adapter_dir / EXPERTS_DIR / str(index)
            expert_dir.mkdir(parents=True)
            save_file(
                weights, str(expert_dir / "adapter_model.safetensors"), metadata={"format": "pt"}
            )
            self.expert_config.base_model_name_or_path = self.base.name
            self.expert_config.save_pretrained(str(expert_dir))
            adapters[str(index)] = str(expert_dir.resolve())
        router = {
            key: tensor.detach().cpu().contiguous()
            for key, tensor in state.items()
            if _ROUTER_KEY in key
        }
        save_file(router, str(adapter_dir / "adapter_model.safetensors"), metadata={"format": "pt"})
        xlora = self.xlora_config
        saved = XLoraConfig(**{**xlora.to_dict(), "adapters": adapters, "inference_mode": True})
        saved.base_model_name_or_path = self.base.name
        saved.save_pretrained(str(adapter_dir))


def build(
    config: MoeLoraConfig, *, base: BaseModelRef, total_steps: int, device: str | None = None
) -> MoeLoraRuntime:
    """A :class:`MoeLoraRuntime`: ``config.num_experts`` LoRA experts and an X-LoRA router."""
    device = select_device(device)
    model, tokenizer = load_base(base, device=device)
    # X-LoRA runs a scaling pass before every forward and refuses a KV cache.
    model.config.use_cache = False
    plan = detect_targets(model)
    modules, _ = lora_targets(config, plan)
    expert_config = PeftLoraConfig(
        task_type="CAUSAL_LM",
        r=config.rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.dropout,
        target_modules=modules,
    )
    with tempfile.TemporaryDirectory(prefix="byr-moe-init-") as scratch:
        # Initialize the experts on the base itself (they draw their random A matrices from the
        # seeded torch RNG), save them, then remove them again: X-LoRA loads experts from folders.
        names = [f"expert_{i}" for i in range(config.num_experts)]
        with quiet_peft():
            staged = get_peft_model(model, expert_config, adapter_name=names[0])
            for name in names[1:]:
                staged.add_adapter(name, expert_config)
            staged.save_pretrained(scratch, save_embedding_layers=False)
        model = staged.unload()  # type: ignore[assignment]
        model.config.use_cache = False
        folders = {str(i): str(Path(scratch) / name) for i, name in enumerate(names)}
        xlora_config = XLoraConfig(
            task_type="CAUSAL_LM",
            hidden_size=fingerprint(model).hidden_size,
            adapters=folders,
            use_trainable_adapters=True,
            xlora_depth=config.router_depth,
            xlora_size=config.router_hidden_size,
            softmax_temperature=config.softmax_temperature,
            layerwise_scalings=config.layerwise_routing,
            top_k_lora=config.top_k,
            enable_softmax=config.top_k is None,
            enable_softmax_topk=config.top_k is not None,
        )
        with quiet_peft():
            peft_model = get_peft_model(model, xlora_config)
    peft_model.to(device)
    return MoeLoraRuntime(
        model=peft_model,
        tokenizer=tokenizer,
        config=config,
        base=base,
        plan=plan,
        device=device,
        expert_config=expert_config,
        target_modules=modules,
    )
