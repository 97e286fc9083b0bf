"""Training methods: one folder per method (``config.py`` + ``builder.py``), registered by
:class:`Method`.

Configs are importable without torch; a builder is imported only when a run needs it
(:meth:`MethodSpec.load_builder`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trainer.config_fields import from_mapping
from trainer.errors import ConfigError
from trainer.methods.adalora.config import AdaLoraConfig
from trainer.methods.base import AdapterMethodConfig, Method, MethodConfig, TargetScope
from trainer.methods.full.config import FullConfig
from trainer.methods.lora.config import LoraConfig
from trainer.methods.moe_lora.config import MoeLoraConfig
from trainer.methods.moe_lora_discipline.config import DisciplineMoeLoraConfig
from trainer.methods.partial.config import PartialConfig
from trainer.methods.qlora.config import QLoraConfig

if TYPE_CHECKING:
    from trainer.methods.runtime import MethodRuntime


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its config class, its builder and a one-line description."""

    method: Method
    config_cls: type[MethodConfig]
    builder: str
    """``module:function`` of the builder, imported on first use."""
    description: str
    output_format: str
    """What the output folder holds: ``peft`` (an adapter) or ``transformers`` (a whole model)."""

    def load_builder(self) -> Callable[..., MethodRuntime]:
        module, _, name = self.builder.partition(":")
        fn: Callable[..., MethodRuntime] = getattr(importlib.import_module(module), name)
        return fn


REGISTRY: dict[Method, MethodSpec] = {
    spec.method: spec
    for spec in (
        MethodSpec(Method.LORA, LoraConfig, "trainer.methods.lora.builder:build",
                   "LoRA adapters on the frozen fp32 base", "peft"),
        MethodSpec(Method.ADALORA, AdaLoraConfig, "trainer.methods.adalora.builder:build",
                   "AdaLoRA: adaptive rank budget", "peft"),
        MethodSpec(Method.QLORA, QLoraConfig, "trainer.methods.qlora.builder:build",
                   "LoRA on a 4-bit NF4 base (bitsandbytes)", "peft"),
        MethodSpec(Method.MOE_LORA, MoeLoraConfig, "trainer.methods.moe_lora.builder:build",
                   "mixture of LoRA experts with a learned router (peft X-LoRA)", "peft"),
        MethodSpec(Method.MOE_LORA_DISCIPLINE, DisciplineMoeLoraConfig,
                   "trainer.methods.moe_lora_discipline.builder:build",
                   "one LoRA expert per discipline, routed by the record's discipline", "peft"),
        MethodSpec(Method.FULL, FullConfig, "trainer.methods.full.builder:build",
                   "full fine-tuning", "transformers"),
        MethodSpec(Method.PARTIAL, PartialConfig, "trainer.methods.partial.builder:build",
                   "fine-tuning with the bottom layers frozen", "transformers"),
    )
}  # fmt: skip


def method_spec(method: Method | str) -> MethodSpec:
    """The registered spec of ``method``; raises :class:`ConfigError` for an unknown name."""
    try:
        return REGISTRY[Method(method)]
    except ValueError:
        known = ", ".join(m.value for m in Method)
        raise ConfigError(f"unknown method {method!r}; known methods: {known}") from None


def method_config(method: Method | str, options: Mapping[str, Any] | None = None) -> MethodConfig:
    """A validated config of ``method`` from plain ``options`` (unknown fields are rejected)."""
    spec = method_spec(method)
    return from_mapping(spec.config_cls, dict(options or {}), where=f"method {spec.method}")


__all__ = [
    "REGISTRY",
    "AdaLoraConfig",
    "AdapterMethodConfig",
    "DisciplineMoeLoraConfig",
    "FullConfig",
    "LoraConfig",
    "Method",
    "MethodConfig",
    "MethodSpec",
    "MoeLoraConfig",
    "PartialConfig",
    "QLoraConfig",
    "TargetScope",
    "method_config",
    "method_spec",
]
