"""Inference with discipline experts: load every expert folder into one ``PeftModel`` and
activate the expert of a prompt's discipline, or the fallback when it is unknown.

Layout of the output folder (each expert is a plain peft LoRA adapter)::

    experts.json                          disciplines, shared expert (or null), fallback
    <discipline>/adapter_config.json      one folder per discipline ...
    <discipline>/adapter_model.safetensors
    shared/...                            only with shared_expert

Fallbacks for a prompt of unknown discipline: ``uniform`` is the mean of the six experts'
updates (peft ``add_weighted_adapter`` with ``combination_type="cat"``, weights 1/6: the sum of
each expert's scaled update times 1/6), plus the shared expert when there is one; ``shared`` is
the shared expert alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.vocabulary import Discipline

LAYOUT_FILE = "experts.json"
SHARED_EXPERT = "shared"
UNIFORM_EXPERT = "uniform"
"""The adapter name the ``uniform`` fallback is built under (on first use)."""


def expert_names(*, shared: bool) -> list[str]:
    """The expert adapter names in order: the six disciplines, then ``shared`` when present."""
    return [d.value for d in Discipline] + ([SHARED_EXPERT] if shared else [])


@dataclass(frozen=True)
class ExpertLayout:
    """What ``experts.json`` records."""

    disciplines: list[str]
    shared: str | None
    fallback: str

    @classmethod
    def read(cls, adapter_dir: Path) -> ExpertLayout:
        data = json.loads((Path(adapter_dir) / LAYOUT_FILE).read_text())
        return cls(
            disciplines=list(data["disciplines"]),
            shared=data.get("shared"),
            fallback=str(data.get("fallback", "uniform")),
        )

    @property
    def experts(self) -> list[str]:
        return self.disciplines + ([self.shared] if self.shared else [])


def is_discipline_experts(adapter_dir: Path) -> bool:
    """Whether ``adapter_dir`` holds discipline experts (it has an ``experts.json``)."""
    return (Path(adapter_dir) / LAYOUT_FILE).is_file()


class DisciplineExperts:
    """A base model with every expert of a discipline-experts folder loaded; :meth:`use` picks
    the adapters that answer a prompt."""

    def __init__(self, base_model: Any, adapter_dir: Path) -> None:
        from peft import PeftModel

        self.adapter_dir = Path(adapter_dir)
        self.layout = ExpertLayout.read(self.adapter_dir)
        first, *others = self.layout.experts
        self.model: Any = PeftModel.from_pretrained(
            base_model, str(self.adapter_dir / first), adapter_name=first
        )
        for name in others:
            self.model.load_adapter(str(self.adapter_dir / name), adapter_name=name)
        self.model.eval()

    def adapters_for(self, discipline: str | None) -> list[str]:
        """The adapter names active for a prompt of ``discipline`` (``None``: unknown)."""
        known = Discipline.lookup(discipline) if discipline else None
        chosen: list[str]
        if known is not None and known.value in self.layout.disciplines:
            chosen = [known.value]
        elif self.layout.fallback == "shared":
            return [str(self.layout.shared)]
        else:
            chosen = [self._uniform()]
        return chosen + ([self.layout.shared] if self.layout.shared else [])

    def use(self, discipline: str | None) -> Any:
        """Activate the adapters for ``discipline`` and return the (eval-mode) model."""
        self.model.base_model.set_adapter(self.adapters_for(discipline), inference_mode=True)
        self.model.eval()
        return self.model

    def _uniform(self) -> str:
        if UNIFORM_EXPERT not in self.model.peft_config:
            experts = self.layout.disciplines
            self.model.add_weighted_adapter(
                experts,
                [1.0 / len(experts)] * len(experts),
                adapter_name=UNIFORM_EXPERT,
                combination_type="cat",
            )
        return UNIFORM_EXPERT


def load_discipline_experts(
    base_model: Any, adapter_dir: Path, *, discipline: str | None = None
) -> Any:
    """``base_model`` with the experts of ``adapter_dir``, the one of ``discipline`` active
    (the fallback when ``None`` or unknown)."""
    return DisciplineExperts(base_model, adapter_dir).use(discipline)
