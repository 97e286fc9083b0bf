"""Builds six LoRA experts, one per discipline, as named adapters of one ``PeftModel``.

Routing is a hard prior taken from the data: :meth:`DisciplineMoeLoraRuntime.route` splits each
micro-batch by the examples' discipline and runs every group with only that discipline's expert
active (plus the shared expert when the config has one). peft's ``set_adapter`` leaves the
inactive experts out of the forward pass, so they get no gradient and the optimizer (AdamW skips
parameters without a gradient, weight decay included) leaves them untouched.

The output is one plain peft LoRA adapter folder per expert (:mod:`.inference` and
docs/TRAINER.md describe the layout and how a prompt picks its expert).
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model

from ledger.vocabulary import Discipline
from trainer.architecture import detect_targets
from trainer.data import Example
from trainer.errors import DatasetError
from trainer.methods.moe_lora_discipline.config import DisciplineMoeLoraConfig
from trainer.methods.moe_lora_discipline.inference import (
    LAYOUT_FILE,
    SHARED_EXPERT,
    expert_names,
)
from trainer.methods.runtime import (
    PEFT_README,
    MethodRuntime,
    Route,
    effective_targets,
    lora_targets,
    quiet_peft,
    select_device,
    tensors_by_name,
)
from trainer.models import BaseModelRef, load_base


class DisciplineMoeLoraRuntime(MethodRuntime):
    output_format = "peft"

    def __init__(self, *, target_modules: list[str], **kwargs: Any):
        super().__init__(**kwargs)
        self.target_modules = target_modules
        config = self.config
        assert isinstance(config, DisciplineMoeLoraConfig)
        self.shared = SHARED_EXPERT if config.shared_expert else None

    def _experts_for(self, discipline: str | None) -> list[str]:
        known = Discipline.lookup(discipline) if discipline else None
        if known is not None:
            return [known.value] + ([self.shared] if self.shared else [])
        if self.shared:
            return [self.shared]
        raise DatasetError(
            f"discipline {discipline!r} has no expert (known: "
            f"{', '.join(d.value for d in Discipline)}); set shared_expert: true to train such "
            "records on the shared expert"
        )

    def route(self, examples: Sequence[Example]) -> list[Route]:
        """One route per discipline present, in vocabulary order, each with that discipline's
        expert (and the shared one) active; raises :class:`DatasetError` for an example whose
        discipline has no expert and no shared expert to fall back on."""
        groups: dict[tuple[str, ...], list[Example]] = {}
        for example in examples:
            groups.setdefault(tuple(self._experts_for(example.discipline)), []).append(example)
        order = {name: i for i, name in enumerate(expert_names(shared=self.shared is not None))}
        return [
            Route(group, context=functools.partial(self._active, list(names)))
            for names, group in sorted(groups.items(), key=lambda kv: order[kv[0][0]])
        ]

    @contextlib.contextmanager
    def _active(self, names: list[str]) -> Iterator[None]:
        self.model.base_model.set_adapter(names)
        yield

    def describe(self) -> dict[str, Any]:
        first = next(iter(self.model.peft_config.values()))
        return {
            **super().describe(),
            "experts": list(self.model.peft_config),
            "requested_target_modules": self.target_modules,
            **effective_targets(first),
        }

    def save(self, adapter_dir: Path) -> None:
        config = self.config
        assert isinstance(config, DisciplineMoeLoraConfig)
        names = list(self.model.peft_config)
        for peft_config in self.model.peft_config.values():
            peft_config.base_model_name_or_path = self.base.name
        # No adapter is named "default", so peft writes each one into its own subfolder.
        self.model.save_pretrained(
            str(adapter_dir),
            state_dict=tensors_by_name(self.model),
            selected_adapters=names,
            save_embedding_layers=False,
        )
        for readme in adapter_dir.rglob(PEFT_README):
            readme.unlink()
        layout = {
            "disciplines": [d.value for d in Discipline],
            "shared": self.shared,
            "fallback": config.fallback,
        }
        (adapter_dir / LAYOUT_FILE).write_text(json.dumps(layout, indent=2) + "\n")


def build(
    config: DisciplineMoeLoraConfig,
    *,
    base: BaseModelRef,
    total_steps: int,
    device: str | None = None,
) -> DisciplineMoeLoraRuntime:
    """A :class:`DisciplineMoeLoraRuntime` (``total_steps`` is unused): one LoRA expert per
    discipline, and the shared one when asked, all trainable."""
    device = select_device(device)
    model, tokenizer = load_base(base, device=device)
    plan = detect_targets(model)
    modules, _ = lora_targets(config, plan)
    expert_config = PeftLoraConfig(
        task_type="CAUSAL_LM",
        r=config.rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.dropout,
        target_modules=modules,
    )
    names = expert_names(shared=config.shared_expert)
    with quiet_peft():
        peft_model = get_peft_model(model, expert_config, adapter_name=names[0])
        for name in names[1:]:
            peft_model.add_adapter(name, expert_config)
    # Every expert is trainable; routing later activates (and unfreezes) only the ones in use.
    tuner: Any = peft_model.base_model
    tuner.set_adapter(names)
    peft_model.to(device)
    return DisciplineMoeLoraRuntime(
        model=peft_model,
        tokenizer=tokenizer,
        config=config,
        base=base,
        plan=plan,
        device=device,
        target_modules=modules,
    )
