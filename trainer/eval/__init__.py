"""Evaluation of fine-tuned models per discipline and task: the benchmark format and loader,
a seed benchmark (``benchmarks/seed``), text metrics, formula and code checkers, reference
log-likelihood and a 13-gram contamination check; and the evaluation itself (``byr eval``):
the plan (:mod:`.plan`), the runner with its cache and adapter switching (:mod:`.runner`,
:mod:`.cache`, :mod:`.switcher`), the control set and glossary probes (:mod:`.control`,
:mod:`.glossary`), forgetting analysis (:mod:`.analysis`) and the report (:mod:`.report`).

Nothing heavy is imported here: metrics import their libraries (jieba, rouge, sacrebleu,
math-verify, torch) when first used.
"""

from trainer.eval.benchmark import (
    Benchmark,
    BenchmarkItem,
    CodeChecker,
    ExpressionChecker,
    Manifest,
    item_from_dict,
    load_benchmark,
    load_seed_benchmark,
    seed_benchmark_path,
)
from trainer.eval.contamination import Contamination, find_contaminated, record_texts
from trainer.eval.errors import BenchmarkError, BenchmarkIssue, EvaluationError
from trainer.eval.likelihood import ReferenceLikelihood, reference_log_likelihood
from trainer.eval.scoring import ItemScore, Scorer, score
from trainer.eval.vocabulary import DEFAULT_WEIGHTS, EVAL_TASK_TYPES, Dimension, Weights

__all__ = [
    "DEFAULT_WEIGHTS",
    "EVAL_TASK_TYPES",
    "Benchmark",
    "BenchmarkError",
    "BenchmarkIssue",
    "BenchmarkItem",
    "CodeChecker",
    "Contamination",
    "Dimension",
    "EvaluationError",
    "ExpressionChecker",
    "ItemScore",
    "Manifest",
    "ReferenceLikelihood",
    "Scorer",
    "Weights",
    "find_contaminated",
    "item_from_dict",
    "load_benchmark",
    "load_seed_benchmark",
    "record_texts",
    "reference_log_likelihood",
    "score",
    "seed_benchmark_path",
]
