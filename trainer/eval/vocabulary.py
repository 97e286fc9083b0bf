"""The evaluation vocabulary: the eight task types a benchmark covers, the three dimensions an
answer is scored on, and the default weight of each dimension per task type.

Evaluation task types are intake task types (:class:`ledger.vocabulary.TaskType`), so a benchmark
cell and the records that train it share one name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from ledger.vocabulary import Discipline, TaskType

EVAL_TASK_TYPES: tuple[TaskType, ...] = (
    TaskType.KNOWLEDGE_QA,
    TaskType.LAB_REPORT_ANALYSIS,
    TaskType.TEACHING_DIALOGUE,
    TaskType.CODE_EXPLANATION,
    TaskType.FORMULA_DERIVATION,
    TaskType.LITERATURE_REVIEW,
    TaskType.CASE_ANALYSIS,
    TaskType.PROJECT_PLANNING,
)
"""The task types every benchmark cell is drawn from (6 disciplines x 8 task types)."""

DISCIPLINES: tuple[Discipline, ...] = tuple(Discipline)


class EvalLanguage(StrEnum):
    """Language of a benchmark item; an item is written in exactly one."""

    ZH = "zh"
    EN = "en"


class Dimension(StrEnum):
    """What an answer is scored on (formulas in docs/EVALUATION.md)."""

    KNOWLEDGE = "knowledge"
    TEACHING = "teaching"
    APPLICATION = "application"


@dataclass(frozen=True)
class Weights:
    """Non-negative weights of the three dimensions; they need not sum to 1 (they are
    normalised when combined), but at least one must be positive."""

    knowledge: float
    teaching: float
    application: float

    def __post_init__(self) -> None:
        values = (self.knowledge, self.teaching, self.application)
        if any(v < 0 for v in values) or sum(values) <= 0:
            raise ValueError("weights must be non-negative with a positive sum")

    def of(self, dimension: Dimension) -> float:
        return float(getattr(self, dimension.value))

    def as_dict(self) -> dict[str, float]:
        return {d.value: self.of(d) for d in Dimension}


DEFAULT_WEIGHTS: Mapping[TaskType, Weights] = MappingProxyType(
    {
        TaskType.KNOWLEDGE_QA: Weights(knowledge=0.6, teaching=0.2, application=0.2),
        TaskType.LAB_REPORT_ANALYSIS: Weights(knowledge=0.3, teaching=0.3, application=0.4),
        TaskType.TEACHING_DIALOGUE: Weights(knowledge=0.2, teaching=0.6, application=0.2),
        TaskType.CODE_EXPLANATION: Weights(knowledge=0.3, teaching=0.3, application=0.4),
        TaskType.FORMULA_DERIVATION: Weights(knowledge=0.3, teaching=0.2, application=0.5),
        TaskType.LITERATURE_REVIEW: Weights(knowledge=0.4, teaching=0.4, application=0.2),
        TaskType.CASE_ANALYSIS: Weights(knowledge=0.3, teaching=0.3, application=0.4),
        TaskType.PROJECT_PLANNING: Weights(knowledge=0.2, teaching=0.3, application=0.5),
    }
)
"""Weights used when an item does not state its own (the table in docs/EVALUATION.md)."""
