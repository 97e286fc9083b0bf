"""What an evaluation produced: scored items per model, glossary probe sums, contamination
checks, and the whole result with its counters. Plain data, filled by
:mod:`trainer.eval.runner` and read by :mod:`trainer.eval.analysis` and the report."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trainer.eval.contamination import Contamination
from trainer.eval.plan import EvaluationPlan
from trainer.eval.switcher import ModelUnderTest
from trainer.manifest import AdapterManifest


@dataclass(frozen=True)
class TrainingTexts:
    """The texts an adapter was trained on, as far as they can still be read: ``records`` were
    trained on, ``texts`` (record id, text) are the ``available`` ones (erased records are gone)."""

    texts: tuple[tuple[str, str], ...]
    records: int
    available: int


TrainingTextSource = Callable[[AdapterManifest], TrainingTexts]


@dataclass(frozen=True)
class ItemResult:
    """One model's answer to one item, scored. Benchmark items have a discipline, task type and
    dimensions; control items only text metrics and ``overall`` (their mean)."""

    item_id: str
    language: str
    metrics: dict[str, float | None]
    overall: float
    dimensions: dict[str, float] = field(default_factory=dict)
    discipline: str | None = None
    task_type: str | None = None
    checker_outcome: str | None = None
    log_likelihood: float | None = None
    """Natural-log probability of the reference answer (``None``: it does not fit the model)."""
    tokens: int | None = None
    """Reference tokens scored."""
    completion_tokens: int = 0
    finish_reason: str = ""
    answer: str = ""
    cached: bool = False
    """The answer came from the cache."""

    @property
    def mean_log_likelihood(self) -> float | None:
        if self.log_likelihood is None or not self.tokens:
            return None
        return self.log_likelihood / self.tokens

    @property
    def perplexity(self) -> float | None:
        mean = self.mean_log_likelihood
        return math.exp(-mean) if mean is not None else None

    def as_dict(self) -> dict[str, Any]:
        """Scores only (the answer text is written separately)."""
        return {
            "item_id": self.item_id,
            "discipline": self.discipline,
            "task_type": self.task_type,
            "language": self.language,
            "metrics": dict(self.metrics),
            "dimensions": dict(self.dimensions),
            "overall": self.overall,
            "checker_outcome": self.checker_outcome,
            "log_likelihood": self.log_likelihood,
            "tokens": self.tokens,
            "mean_log_likelihood": self.mean_log_likelihood,
            "perplexity": self.perplexity,
            "completion_tokens": self.completion_tokens,
            "finish_reason": self.finish_reason,
        }


@dataclass(frozen=True)
class GlossaryScore:
    """Summed log-likelihood of a discipline's glossary probes."""

    log_likelihood: float
    tokens: int
    probes: int

    @property
    def mean_log_likelihood(self) -> float:
        return self.log_likelihood / self.tokens if self.tokens else 0.0


@dataclass(frozen=True)
class ContaminationCheck:
    training_records: int
    texts_available: int
    contaminated: tuple[Contamination, ...]

    @property
    def refused(self) -> frozenset[str]:
        return frozenset(c.item_id for c in self.contaminated)


@dataclass
class ModelResult:
    model: ModelUnderTest
    lineage: dict[str, Any]
    contamination: ContaminationCheck | None = None
    """``None`` for the base, and for an adapter when no training texts were given."""
    items: list[ItemResult] = field(default_factory=list)
    control: list[ItemResult] = field(default_factory=list)
    glossary: dict[str, GlossaryScore] = field(default_factory=dict)


@dataclass
class EvaluationResult:
    plan: EvaluationPlan
    base_model: dict[str, str]
    """``name``, ``hash`` and ``path`` of the base every model runs on."""
    models: list[ModelResult]
    started_at: str
    seconds: float
    stats: dict[str, Any]
    """``loads`` (base, adapter, standalone), ``generated``, ``likelihoods`` (computed),
    ``cache_hits``."""


@dataclass(frozen=True)
class Progress:
    """One result done: ``done`` of ``total`` for ``model`` in ``stage`` (benchmark, control,
    glossary); ``cached`` when it came from the cache."""

    model: str
    stage: str
    done: int
    total: int
    cached: bool
