"""Tiny adapters and a small evaluation plan for the evaluation tests (trainer and API)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ledger.vocabulary import Discipline, TaskType
from tests.trainer.conftest import quick_recipe
from trainer.eval import load_seed_benchmark
from trainer.eval.control import load_default_control_set
from trainer.eval.glossary import load_glossary_terms
from trainer.eval.plan import EvaluationPlan, plan_evaluation
from trainer.generate import GenerationSettings
from trainer.job import run_training

CELLS = (
    (Discipline.INFORMATION_THEORY, TaskType.KNOWLEDGE_QA),
    (Discipline.COMPUTER_NETWORKS, TaskType.TEACHING_DIALOGUE),
)
MAX_NEW_TOKENS = 6


def train_tiny_adapter(
    output_dir: Path,
    *,
    records: Sequence[Mapping[str, Any]],
    cache_dir: Path,
    seed: int = 0,
    steps: int = 4,
) -> Path:
    """A short LoRA run on the tiny base; its adapter folder."""
    result = run_training(
        base="tiny",
        recipe=quick_recipe("lora", **{"training.seed": seed}),
        dataset=list(records),
        output_dir=output_dir,
        max_steps=steps,
        progress=False,
        cache_dir=cache_dir,
    )
    return result.adapter_dir


def small_plan(*, limit: int = 2, glossary_terms: int = 2) -> EvaluationPlan:
    """Two cells of the seed benchmark, ``limit`` items each, as many control items, a few
    glossary terms per discipline, and short answers."""
    return plan_evaluation(
        load_seed_benchmark(),
        cells=CELLS,
        limit=limit,
        control=load_default_control_set(),
        glossary=load_glossary_terms(per_discipline=glossary_terms),
        settings=GenerationSettings(max_new_tokens=MAX_NEW_TOKENS),
    )
