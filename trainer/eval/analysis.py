"""What the scores say: per-cell means, adapter-minus-base deltas, forgetting flags and knowledge
injection. Pure functions over scored items (no model, no I/O), so the rules can be checked with
hand-made numbers.

How the dimensions combine: an item's knowledge, teaching and application scores and its weighted
overall score come from :mod:`trainer.eval.scoring`; a cell's score in a dimension is the mean over
its scored items; a model's score is the mean over its cells (each cell counts once, however many
items it has). Deltas compare an adapter with the base on the items both were scored on (items
refused for contamination are left out on both sides).

Forgetting (defaults in :class:`Thresholds`):

- a cell is flagged when the adapter's mean overall score is more than ``cell_overall_drop``
  below the base's;
- the control set is flagged when its mean text score (ROUGE-L and BLEU) drops by more than
  ``control_overall_drop``, or its mean reference log-likelihood per token drops by more than
  ``control_log_likelihood_drop`` nats (0.1 nats/token: the control perplexity rises by ~10.5 %).

Knowledge injection: per discipline, the mean log-likelihood per token of its glossary terms under
the adapter minus under the base; ``injected`` from ``glossary_gain`` nats/token up.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Protocol

DIMENSIONS = ("knowledge", "teaching", "application", "overall")
ITEM_METRICS = ("rouge_l", "bleu", "key_term_recall", "exact_match", "checker")


class Scored(Protocol):
    """What the analysis reads of a scored item (:class:`trainer.eval.runner.ItemResult`)."""

    @property
    def item_id(self) -> str: ...

    @property
    def discipline(self) -> str | None: ...

    @property
    def task_type(self) -> str | None: ...

    @property
    def metrics(self) -> dict[str, float | None]: ...

    @property
    def dimensions(self) -> dict[str, float]: ...

    @property
    def overall(self) -> float: ...

    @property
    def mean_log_likelihood(self) -> float | None: ...


class GlossaryMean(Protocol):
    @property
    def mean_log_likelihood(self) -> float: ...

    @property
    def probes(self) -> int: ...


@dataclass(frozen=True)
class Thresholds:
    """When a drop is flagged as forgetting, and a gain counted as injected knowledge."""

    cell_overall_drop: float = field(
        default=0.05,
        metadata={"help": "Flag a cell whose mean overall score falls by more than this."},
    )
    control_overall_drop: float = field(
        default=0.05,
        metadata={"help": "Flag the control set when its mean text score falls by more."},
    )
    control_log_likelihood_drop: float = field(
        default=0.10,
        metadata={
            "help": "Flag the control set when its mean reference log-likelihood per token "
            "falls by more than this many nats."
        },
    )
    glossary_gain: float = field(
        default=0.05,
        metadata={
            "help": "A discipline's glossary terms gaining at least this many nats per token "
            "count as injected knowledge."
        },
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{f.name} must be a non-negative number")

    def as_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def item_scores(item: Scored) -> dict[str, float]:
    """The item's three dimension scores and its overall score."""
    return {**item.dimensions, "overall": item.overall}


def cell_stats(items: Sequence[Scored]) -> dict[str, Any]:
    """Means over ``items`` (one cell): dimensions, metrics, log-likelihood per token."""
    mean_ll = _mean(i.mean_log_likelihood for i in items)
    return {
        "items": len(items),
        **{d: _mean(item_scores(i).get(d) for i in items) for d in DIMENSIONS},
        "metrics": {m: _mean(i.metrics.get(m) for i in items) for m in ITEM_METRICS},
        "mean_log_likelihood": mean_ll,
        "perplexity": math.exp(-mean_ll) if mean_ll is not None else None,
    }


def by_cell(items: Iterable[Scored]) -> dict[tuple[str, str], list[Scored]]:
    grouped: dict[tuple[str, str], list[Scored]] = {}
    for item in items:
        assert item.discipline is not None and item.task_type is not None
        grouped.setdefault((item.discipline, item.task_type), []).append(item)
    return dict(sorted(grouped.items()))


def model_summary(items: Sequence[Scored]) -> dict[str, Any]:
    """Each dimension's mean over cells (macro average), and the item counts."""
    cells = [cell_stats(group) for group in by_cell(items).values()]
    mean_ll = _mean(i.mean_log_likelihood for i in items)
    return {
        "items_scored": len(items),
        "cells": len(cells),
        **{d: _mean(c[d] for c in cells) for d in DIMENSIONS},
        "mean_log_likelihood": mean_ll,
        "perplexity": math.exp(-mean_ll) if mean_ll is not None else None,
    }


def control_summary(items: Sequence[Scored]) -> dict[str, Any]:
    mean_ll = _mean(i.mean_log_likelihood for i in items)
    return {
        "items": len(items),
        "overall": _mean(i.overall for i in items),
        "rouge_l": _mean(i.metrics.get("rouge_l") for i in items),
        "bleu": _mean(i.metrics.get("bleu") for i in items),
        "mean_log_likelihood": mean_ll,
        "perplexity": math.exp(-mean_ll) if mean_ll is not None else None,
    }


def _paired(base: Iterable[Scored], adapter: Iterable[Scored]) -> tuple[list[Scored], list[Scored]]:
    mine = {i.item_id: i for i in adapter}
    pairs = [(b, mine[b.item_id]) for b in base if b.item_id in mine]
    return [b for b, _ in pairs], [a for _, a in pairs]


def _delta(after: float | None, before: float | None) -> float | None:
    return after - before if after is not None and before is not None else None


def compare_cells(
    base: Sequence[Scored], adapter: Sequence[Scored], thresholds: Thresholds
) -> list[dict[str, Any]]:
    """Per cell: the adapter's means minus the base's over the items both were scored on, and
    whether the overall drop exceeds ``cell_overall_drop`` (``forgetting``)."""
    before, after = _paired(base, adapter)
    rows = []
    grouped_after = by_cell(after)
    for cell, group in by_cell(before).items():
        b, a = cell_stats(group), cell_stats(grouped_after[cell])
        delta = {d: _delta(a[d], b[d]) for d in DIMENSIONS}
        delta["mean_log_likelihood"] = _delta(a["mean_log_likelihood"], b["mean_log_likelihood"])
        drop = delta["overall"]
        rows.append(
            {
                "discipline": cell[0],
                "task_type": cell[1],
                "paired_items": len(group),
                "delta": delta,
                "forgetting": drop is not None and drop < -thresholds.cell_overall_drop,
            }
        )
    return rows


def compare_control(
    base: Sequence[Scored], adapter: Sequence[Scored], thresholds: Thresholds
) -> dict[str, Any]:
    """The control set's mean text score and log-likelihood per token, adapter minus base over
    the shared items, and the reasons it is flagged for forgetting (none: not flagged)."""
    before, after = _paired(base, adapter)
    b, a = control_summary(before), control_summary(after)
    delta_overall = _delta(a["overall"], b["overall"])
    delta_ll = _delta(a["mean_log_likelihood"], b["mean_log_likelihood"])
    reasons = []
    if delta_overall is not None and delta_overall < -thresholds.control_overall_drop:
        reasons.append(
            f"mean text score fell by {-delta_overall:.3f} "
            f"(more than {thresholds.control_overall_drop})"
        )
    if delta_ll is not None and delta_ll < -thresholds.control_log_likelihood_drop:
        reasons.append(
            f"mean log-likelihood fell by {-delta_ll:.3f} nats/token "
            f"(more than {thresholds.control_log_likelihood_drop})"
        )
    return {
        "paired_items": len(before),
        "delta_overall": delta_overall,
        "delta_mean_log_likelihood": delta_ll,
        "forgetting": bool(reasons),
        "reasons": reasons,
    }


def compare_glossary(
    base: Mapping[str, GlossaryMean],
    adapter: Mapping[str, GlossaryMean],
    thresholds: Thresholds,
) -> list[dict[str, Any]]:
    """Per discipline: glossary log-likelihood per token before (base) and after (adapter), the
    change, and whether it counts as injected knowledge."""
    rows = []
    for discipline in sorted(set(base) & set(adapter)):
        before, after = base[discipline], adapter[discipline]
        if not before.probes or not after.probes:
            continue
        delta = after.mean_log_likelihood - before.mean_log_likelihood
        rows.append(
            {
                "discipline": discipline,
                "before": before.mean_log_likelihood,
                "after": after.mean_log_likelihood,
                "delta": delta,
                "injected": delta >= thresholds.glossary_gain,
            }
        )
    return rows


def forgetting_flags(
    cells: Sequence[Mapping[str, Any]], control: Mapping[str, Any] | None
) -> list[dict[str, Any]]:
    """Every forgetting flag of one comparison, cells first."""
    flags: list[dict[str, Any]] = [
        {
            "scope": "cell",
            "discipline": c["discipline"],
            "task_type": c["task_type"],
            "reason": f"mean overall score fell by {-c['delta']['overall']:.3f}",
        }
        for c in cells
        if c["forgetting"]
    ]
    if control is not None and control["forgetting"]:
        flags.append({"scope": "control", "reason": "; ".join(control["reasons"])})
    return flags
