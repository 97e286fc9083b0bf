"""Forgetting flags and knowledge injection with hand-made numbers: what crosses a threshold is
flagged, what stays within it is not, and only items scored for both models are compared."""

from __future__ import annotations

import math

import pytest

from trainer.eval.analysis import (
    Thresholds,
    cell_stats,
    compare_cells,
    compare_control,
    compare_glossary,
    forgetting_flags,
    model_summary,
)
from trainer.eval.results import GlossaryScore, ItemResult

IT_QA = ("information_theory", "knowledge_qa")
CN_TD = ("computer_networks", "teaching_dialogue")


def item(
    item_id: str,
    overall: float,
    *,
    cell: tuple[str, str] | None = IT_QA,
    ll: float | None = None,
    tokens: int = 10,
) -> ItemResult:
    """An item whose three dimensions all equal ``overall``; ``ll`` is the mean log-likelihood
    per token (``None``: not scored)."""
    return ItemResult(
        item_id=item_id,
        language="en",
        metrics={"rouge_l": overall, "bleu": overall},
        overall=overall,
        dimensions=(
            {"knowledge": overall, "teaching": overall, "application": overall} if cell else {}
        ),
        discipline=cell[0] if cell else None,
        task_type=cell[1] if cell else None,
        log_likelihood=None if ll is None else ll * tokens,
        tokens=None if ll is None else tokens,
    )


def test_a_cell_dropping_more_than_the_threshold_is_flagged() -> None:
    base = [item("a", 0.50), item("b", 0.70), item("c", 0.40, cell=CN_TD)]
    adapter = [item("a", 0.44), item("b", 0.64), item("c", 0.37, cell=CN_TD)]
    rows = {
        (r["discipline"], r["task_type"]): r for r in compare_cells(base, adapter, Thresholds())
    }
    assert rows[IT_QA]["delta"]["overall"] == pytest.approx(-0.06)
    assert rows[IT_QA]["forgetting"] is True  # 0.06 > 0.05
    assert rows[CN_TD]["delta"]["overall"] == pytest.approx(-0.03)
    assert rows[CN_TD]["forgetting"] is False  # within 0.05
    strict = compare_cells(base, adapter, Thresholds(cell_overall_drop=0.02))
    assert all(r["forgetting"] for r in strict)
    flags = forgetting_flags(compare_cells(base, adapter, Thresholds()), None)
    assert [(f["scope"], f["discipline"], f["task_type"]) for f in flags] == [("cell", *IT_QA)]
    assert "0.060" in flags[0]["reason"]


def test_only_items_scored_for_both_models_are_compared() -> None:
    """An item refused for the adapter (contamination) leaves the base's mean too."""
    base = [item("a", 0.9), item("b", 0.1)]
    adapter = [item("b", 0.1)]  # "a" was refused
    (row,) = compare_cells(base, adapter, Thresholds())
    assert row["paired_items"] == 1 and row["delta"]["overall"] == pytest.approx(0.0)
    assert row["forgetting"] is False


def test_the_control_set_is_flagged_by_its_log_likelihood_or_its_text_score() -> None:
    base = [item(f"c{i}", 0.30, cell=None, ll=-2.0) for i in range(4)]
    by_likelihood = [item(f"c{i}", 0.30, cell=None, ll=-2.15) for i in range(4)]
    verdict = compare_control(base, by_likelihood, Thresholds())
    assert verdict["delta_mean_log_likelihood"] == pytest.approx(-0.15)
    assert verdict["forgetting"] is True and "nats/token" in verdict["reasons"][0]
    within = [item(f"c{i}", 0.28, cell=None, ll=-2.05) for i in range(4)]
    assert compare_control(base, within, Thresholds())["forgetting"] is False
    by_text = [item(f"c{i}", 0.20, cell=None, ll=-1.9) for i in range(4)]
    verdict = compare_control(base, by_text, Thresholds())
    assert verdict["forgetting"] is True and verdict["reasons"] == [
        "mean text score fell by 0.100 (more than 0.05)"
    ]
    flags = forgetting_flags([], verdict)
    assert flags == [{"scope": "control", "reason": verdict["reasons"][0]}]


def test_glossary_gains_count_as_injected_knowledge() -> None:
    base = {
        "information_theory": GlossaryScore(log_likelihood=-40.0, tokens=10, probes=4),
        "data_science": GlossaryScore(log_likelihood=-30.0, tokens=10, probes=4),
    }
    adapter = {
        "information_theory": GlossaryScore(log_likelihood=-35.0, tokens=10, probes=4),
        "data_science": GlossaryScore(log_likelihood=-30.2, tokens=10, probes=4),
    }
    rows = {r["discipline"]: r for r in compare_glossary(base, adapter, Thresholds())}
    assert rows["information_theory"]["delta"] == pytest.approx(0.5)
    assert rows["information_theory"]["injected"] is True
    assert rows["data_science"]["delta"] == pytest.approx(-0.02)
    assert rows["data_science"]["injected"] is False


def test_a_model_score_is_the_mean_over_its_cells() -> None:
    items = [item("a", 1.0), item("b", 1.0), item("c", 1.0), item("d", 0.0, cell=CN_TD)]
    summary = model_summary(items)
    assert summary["overall"] == pytest.approx(0.5)  # cells count once: (1.0 + 0.0) / 2
    assert summary["items_scored"] == 4 and summary["cells"] == 2
    stats = cell_stats([item("a", 0.5, ll=-1.0), item("b", 0.7, ll=-3.0)])
    assert stats["overall"] == pytest.approx(0.6)
    assert stats["mean_log_likelihood"] == pytest.approx(-2.0)
    assert stats["perplexity"] == pytest.approx(math.exp(2.0))


def test_thresholds_must_be_non_negative() -> None:
    with pytest.raises(ValueError, match="cell_overall_drop"):
        Thresholds(cell_overall_drop=-0.1)
    assert Thresholds().as_dict() == {
        "cell_overall_drop": 0.05,
        "control_overall_drop": 0.05,
        "control_log_likelihood_drop": 0.1,
        "glossary_gain": 0.05,
    }
