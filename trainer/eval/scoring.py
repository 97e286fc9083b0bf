"""One answer to one item -> an :class:`ItemScore` with metrics and the three dimension scores.

Which metric feeds which dimension (the formulas are in docs/EVALUATION.md):

- knowledge   = mean of the available: key-term recall, exact match (choice items), the
  checker verdict (1/0);
- teaching    = (ROUGE-L F1 + BLEU/100) / 2 against the reference answer;
- application = the checker verdict (formula equivalence, code tests) when the item has a
  checker, else exact match for choice items, else ROUGE-L F1;
- overall     = sum(w_d * s_d) / sum(w_d) with the item's weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from trainer.eval.benchmark import BenchmarkItem, CodeChecker, ExpressionChecker
from trainer.eval.formulas import DEFAULT_TIMEOUT_S, FormulaChecker
from trainer.eval.metrics import bleu, exact_match, key_term_recall, rouge_l
from trainer.eval.sandbox import SandboxLimits, extract_code, run_python_tests
from trainer.eval.vocabulary import Dimension


@dataclass(frozen=True)
class ItemScore:
    """Scores in [0, 1]. ``metrics`` holds rouge_l, bleu, key_term_recall, exact_match and
    checker (``None`` where a metric does not apply); ``checker_outcome`` is the formula or
    sandbox verdict name."""

    item_id: str
    discipline: str
    task_type: str
    language: str
    metrics: dict[str, float | None]
    dimensions: dict[str, float]
    overall: float
    checker_outcome: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "discipline": self.discipline,
            "task_type": self.task_type,
            "language": self.language,
            "metrics": dict(self.metrics),
            "dimensions": dict(self.dimensions),
            "overall": self.overall,
            "checker_outcome": self.checker_outcome,
            "details": dict(self.details),
        }


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def combine(
    item: BenchmarkItem, metrics: dict[str, float | None]
) -> tuple[dict[str, float], float]:
    """Dimension scores and the weighted overall score from ``metrics`` (see module doc)."""
    rouge, bleu_score = metrics["rouge_l"] or 0.0, metrics["bleu"] or 0.0
    checker, em = metrics["checker"], metrics["exact_match"]
    knowledge = _mean([metrics["key_term_recall"], em, checker])
    teaching = (rouge + bleu_score) / 2
    if checker is not None:
        application = checker
    elif em is not None:
        application = em
    else:
        application = rouge
    dimensions = {
        Dimension.KNOWLEDGE.value: knowledge if knowledge is not None else rouge,
        Dimension.TEACHING.value: teaching,
        Dimension.APPLICATION.value: application,
    }
    weights = item.weights
    total = sum(weights.of(d) for d in Dimension)
    overall = sum(weights.of(d) * dimensions[d.value] for d in Dimension) / total
    return dimensions, overall


class Scorer:
    """Scores answers; owns the formula-check worker, so use one per thread and close it
    (or use it as a context manager)."""

    def __init__(
        self,
        *,
        formula_timeout_s: float = DEFAULT_TIMEOUT_S,
        sandbox_limits: SandboxLimits | None = None,
        isolate_network: bool = True,
    ) -> None:
        self._formula_timeout_s = formula_timeout_s
        self._formulas: FormulaChecker | None = None
        self._sandbox_limits = sandbox_limits or SandboxLimits()
        self._isolate_network = isolate_network

    def __enter__(self) -> Scorer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._formulas is not None:
            self._formulas.close()
            self._formulas = None

    def _check(self, item: BenchmarkItem, prediction: str) -> tuple[float | None, str | None]:
        checker = item.checker
        if isinstance(checker, ExpressionChecker):
            if self._formulas is None:
                self._formulas = FormulaChecker(timeout_s=self._formula_timeout_s)
            formula = self._formulas.check(expected=checker.expected, answer=prediction)
            return (1.0 if formula.passed else 0.0), formula.outcome.value
        if isinstance(checker, CodeChecker):
            run = run_python_tests(
                code=extract_code(prediction),
                tests=checker.tests,
                limits=self._sandbox_limits,
                isolate_network=self._isolate_network,
            )
            return (1.0 if run.passed else 0.0), run.outcome.value
        return None, None

    def score(self, item: BenchmarkItem, prediction: str) -> ItemScore:
        """Every metric of ``prediction`` for ``item`` and the combined dimension scores."""
        checker, outcome = self._check(item, prediction)
        metrics: dict[str, float | None] = {
            "rouge_l": rouge_l(prediction, item.reference, language=item.language),
            "bleu": bleu(prediction, item.reference, language=item.language),
            "key_term_recall": key_term_recall(prediction, item.key_terms),
            "exact_match": (
                exact_match(prediction, item.answer_key, n_choices=len(item.choices))
                if item.is_choice
                else None
            ),
            "checker": checker,
        }
        dimensions, overall = combine(item, metrics)
        return ItemScore(
            item_id=item.id,
            discipline=item.discipline.value,
            task_type=item.task_type.value,
            language=item.language.value,
            metrics=metrics,
            dimensions=dimensions,
            overall=overall,
            checker_outcome=outcome,
        )


def score(item: BenchmarkItem, prediction: str) -> ItemScore:
    """Score one answer with default limits (starts and stops a formula worker when the item
    needs one; a runner scoring many answers should keep one :class:`Scorer`)."""
    with Scorer() as scorer:
        return scorer.score(item, prediction)
