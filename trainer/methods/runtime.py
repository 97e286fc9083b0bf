"""The object a method builder returns: a model ready to train, plus the hooks the job drives.

Imported only by builders and the job (it imports torch).
"""

from __future__ import annotations

import contextlib
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainer.architecture import TargetPlan
from trainer.data import Example
from trainer.methods.base import AdapterMethodConfig, MethodConfig, TargetScope
from trainer.models import BaseModelRef

PEFT_README = "README.md"


def select_device(device: str | None = None) -> str:
    """``device`` when given, else ``cuda`` when a GPU is visible, else ``cpu``."""
    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def quiet_peft() -> Iterator[None]:
    """Hide the deprecation warnings peft 0.21 triggers in transformers 5 (nothing we can act
    on)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*gradient_checkpointing.*", category=FutureWarning
        )
        warnings.filterwarnings("ignore", message=r".*use_reentrant.*", category=UserWarning)
        yield


@dataclass(frozen=True)
class Route:
    """Examples of a micro-batch that run through the model together, in ``context``."""

    examples: list[Example]
    context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext


class MethodRuntime(ABC):
    """A model prepared by one method. The job calls, per optimizer step::

        loss = runtime.model(**batch).loss; loss.backward(); optimizer.step()
        runtime.after_optimizer_step(step); optimizer.zero_grad()

    and, to checkpoint or finish, :meth:`trainable_state`, :meth:`extra_state` and :meth:`save`.
    """

    output_format: str = "peft"

    def __init__(
        self,
        *,
        model: Any,
        tokenizer: Any,
        config: MethodConfig,
        base: BaseModelRef,
        plan: TargetPlan,
        device: str,
    ) -> None:
        self.model: Any = model
        """The module to call (a peft model or a transformers model)."""
        self.tokenizer = tokenizer
        self.config = config
        self.base = base
        self.plan = plan
        self.device = device
        self._trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not self._trainable:
            raise RuntimeError(f"{config.method}: the prepared model has no trainable parameter")

    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The parameters the optimizer updates, in a fixed order (fixed at build time)."""
        return list(self._trainable)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """Copies (on CPU) of the trainable parameters, keyed by name: what a checkpoint
        restores."""
        return {n: p.detach().to("cpu", copy=True).contiguous() for n, p in self._trainable}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`trainable_state`; every trainable parameter must be present."""
        missing = [n for n, _ in self._trainable if n not in state]
        if missing:
            raise KeyError(f"checkpoint lacks trainable parameter(s): {', '.join(missing[:5])}")
        with torch.no_grad():
            for name, param in self._trainable:
                param.copy_(state[name].to(param.device))

    def route(self, examples: Sequence[Example]) -> list[Route]:
        """How a micro-batch runs: the groups its examples are split into, each forward pass
        (and its backward) inside that group's context. One group and no context by default;
        a method that routes examples to experts activates the group's expert there."""
        return [Route(list(examples))]

    def after_optimizer_step(self, step: int) -> None:
        """Called after every optimizer step (0-based ``step``) while gradients still exist.
        Most methods need nothing here (AdaLoRA reallocates its rank budget)."""
        return None

    def extra_state(self) -> dict[str, Any]:
        """Method state beyond parameters that a resumed run needs (tensors, ints, strings only)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_state` (nothing to restore by default)."""
        return None

    def describe(self) -> dict[str, Any]:
        """Effective settings recorded in the manifest (targets, trainable parameter count, ...)."""
        trainable = sum(p.numel() for _, p in self._trainable)
        total = sum(p.numel() for p in self.model.parameters())
        return {"trainable_parameters": trainable, "total_parameters": total, "device": self.device}

    @abstractmethod
    def save(self, adapter_dir: Path) -> None:
        """Write the training output into the (existing, empty) folder ``adapter_dir``."""


class PeftRuntime(MethodRuntime):
    """A peft-wrapped model saved with ``save_pretrained`` as a standard adapter folder."""

    def __init__(self, *, target_modules: list[str], target_parameters: list[str], **kwargs: Any):
        super().__init__(**kwargs)
        self.target_modules = target_modules
        self.target_parameters = target_parameters

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "requested_target_modules": self.target_modules,
            "requested_target_parameters": self.target_parameters,
            **effective_targets(self.model.peft_config["default"]),
        }

    def save(self, adapter_dir: Path) -> None:
        for peft_config in self.model.peft_config.values():
            peft_config.base_model_name_or_path = self.base.name
        # Embeddings are never adapted here; "auto" would look the base name up on a model hub.
        self.model.save_pretrained(
            str(adapter_dir), state_dict=tensors_by_name(self.model), save_embedding_layers=False
        )
        # peft writes a model card template; it is not part of the adapter.
        (adapter_dir / PEFT_README).unlink(missing_ok=True)


class MergeablePeftRuntime(PeftRuntime):
    """A peft adapter on an fp32 base, which can also be merged into a plain model."""

    def save_merged(self, folder: Path) -> Any:
        """Merge the adapter into the base weights, save and return the merged model (the
        runtime's peft model is spent)."""
        merged = self.model.merge_and_unload()
        merged.save_pretrained(str(folder))
        return merged


def tensors_by_name(model: Any) -> dict[str, torch.Tensor]:
    """Parameters and buffers of ``model`` keyed like its state dict, without calling
    ``state_dict()``.

    bitsandbytes 0.50 re-packs the quantization state of 4-bit weights on every ``state_dict()``
    call on CPU, which changes the model's outputs afterwards; saving from this mapping leaves a
    QLoRA model exactly as it was trained.
    """
    named = dict(model.named_buffers())
    named.update((name, param.detach()) for name, param in model.named_parameters())
    return named


def effective_targets(peft_config: Any) -> dict[str, list[str]]:
    """The targets a peft config ended up with.

    They can differ from what was requested: for MoE families whose expert layout changed in
    transformers 5 (DeepSeek-V2/V3, Qwen3-MoE, OLMoE, GLM-4-MoE, ...), peft 0.21 reads every
    LoRA target ending in ``gate_proj``/``up_proj``/``down_proj`` as a routed-expert weight and
    adapts the fused experts instead of the dense or shared MLP.
    """
    modules = peft_config.target_modules
    parameters = getattr(peft_config, "target_parameters", None)
    return {
        "target_modules": sorted(modules) if not isinstance(modules, str) else [modules],
        "target_parameters": sorted(parameters or []),
    }


def lora_targets(config: AdapterMethodConfig, plan: TargetPlan) -> tuple[list[str], list[str]]:
    """``(target_modules, target_parameters)`` for an adapter config on a model with ``plan``."""
    if config.target_modules is not None:
        return list(config.target_modules), []
    scope = TargetScope(config.targets)
    return plan.modules_for(scope), plan.parameters_for(scope)
