"""Plans of an evaluation: which items of a benchmark, which control items and glossary terms,
with which decoding settings; the same plan is applied to every model."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ledger.vocabulary import Discipline, TaskType
from trainer.eval.benchmark import Benchmark, BenchmarkItem
from trainer.eval.cache import benchmark_hash
from trainer.eval.control import ControlItem, ControlSet
from trainer.eval.errors import EvaluationError
from trainer.eval.glossary import GlossaryTerm
from trainer.generate import GenerationSettings


@dataclass(frozen=True)
class EvaluationPlan:
    """What every model is evaluated on."""

    benchmark_name: str
    benchmark_version: str
    benchmark_hash: str
    items: tuple[BenchmarkItem, ...]
    control_name: str | None = None
    control_version: str | None = None
    control_hash: str | None = None
    control_items: tuple[ControlItem, ...] = ()
    glossary: Mapping[str, tuple[GlossaryTerm, ...]] = field(default_factory=dict)
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    languages: tuple[str, ...] = ("en", "zh")
    """Languages of the glossary probes (items and control items are already filtered)."""

    @property
    def cells(self) -> list[tuple[str, str]]:
        return sorted({(i.discipline.value, i.task_type.value) for i in self.items})


def plan_evaluation(
    benchmark: Benchmark,
    *,
    cells: Sequence[tuple[Discipline, TaskType]] | None = None,
    limit: int | None = None,
    control: ControlSet | None = None,
    glossary: Mapping[str, tuple[GlossaryTerm, ...]] | None = None,
    settings: GenerationSettings | None = None,
    languages: Sequence[str] | None = None,
) -> EvaluationPlan:
    """The items of ``benchmark`` in ``cells`` (all cells by default) and ``languages`` (both by
    default), at most ``limit`` per cell, in benchmark order; the control items in those
    languages (the first ``limit`` of them with a limit) and the glossary terms. Raises
    :class:`EvaluationError` when a requested cell has no item."""
    if limit is not None and limit < 1:
        raise EvaluationError("limit must be at least 1")
    chosen = tuple(dict.fromkeys(languages)) if languages else ("en", "zh")
    unknown = [x for x in chosen if x not in ("en", "zh")]
    if unknown:
        raise EvaluationError("languages must be en and/or zh")
    wanted = set(cells) if cells else None
    selected = [item for item in benchmark if item.language.value in chosen]
    if wanted:
        present = {item.cell for item in selected}
        missing = sorted(f"{d.value}:{t.value}" for d, t in wanted - present)
        if missing:
            raise EvaluationError(
                f"the benchmark has no item in the cell(s) {', '.join(missing)} "
                f"in {' or '.join(chosen)}"
            )
    taken: Counter[tuple[Discipline, TaskType]] = Counter()
    items: list[BenchmarkItem] = []
    for item in selected:
        if wanted is not None and item.cell not in wanted:
            continue
        if limit is not None and taken[item.cell] >= limit:
            continue
        taken[item.cell] += 1
        items.append(item)
    manifest = benchmark.manifest
    control_pool = [i for i in control.items if i.language.value in chosen] if control else []
    control_items = tuple(control_pool[:limit] if limit else control_pool)
    return EvaluationPlan(
        benchmark_name=manifest.name,
        benchmark_version=manifest.version,
        benchmark_hash=benchmark_hash(
            name=manifest.name, version=manifest.version, items=benchmark.items
        ),
        items=tuple(items),
        control_name=control.manifest.name if control else None,
        control_version=control.manifest.version if control else None,
        control_hash=(
            benchmark_hash(
                name=control.manifest.name, version=control.manifest.version, items=control.items
            )
            if control
            else None
        ),
        control_items=control_items,
        glossary=dict(glossary or {}),
        settings=settings or GenerationSettings(),
        languages=chosen,
    )
