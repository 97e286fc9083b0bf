"""The console in a real browser against a real ``byr serve``: a trainer's run page draws the
memory chart (resident MB per step) from the run's metrics stream, and an evaluation of the base
and that run's adapter, started from the evaluations page, finishes and opens on its heatmap."""

from __future__ import annotations

from typing import Any

import pytest

from tests.console import test_console_browser as browser_suite
from tests.console.test_console_browser import DESKTOP, RUN_TIMEOUT_MS, Console, _fill_run_form

pytestmark = pytest.mark.slow

#: The tabs of the browser suite (each with its accessibility and width checks).
console = browser_suite.console

EVAL_TIMEOUT_MS = 240_000


def _trains_a_short_run(tab: Console) -> str:
    page = tab.page
    tab.open("training")
    _fill_run_form(tab, max_steps=4)
    page.click("#run-start")
    page.wait_for_selector("#run-status")
    tab.ready()
    # the memory chart fills from the step lines' system samples (CPU RSS on this machine)
    assert tab.wait_points("memory", 0) >= 1
    page.wait_for_selector("#run-status[data-status=anchored]", timeout=RUN_TIMEOUT_MS)
    assert tab.wait_points("memory", 3) == 4 == tab.points("loss")
    assert tab.points("memory", "gpu-points") == 0  # a CPU run writes no GPU memory
    drawn = page.evaluate(
        "() => document.querySelector('[data-chart=memory] canvas') !== null"
        " && document.querySelector('[data-chart=memory]').textContent.includes('MB')"
    )
    assert drawn
    tab.check("trainer-run-memory")
    answer = tab.server.get("/v1/training/runs", "trainer").json()
    finished = [r["run_id"] for r in answer if r["status"] == "anchored"]
    assert len(finished) == 1
    return str(finished[0])


def test_memory_chart_and_an_evaluation_started_from_the_console(console: Any) -> None:
    tab: Console = console(DESKTOP)
    page = tab.page
    tab.sign_in("trainer")
    run_id = _trains_a_short_run(tab)

    tab.open("evaluations")
    page.wait_for_selector("#eval-form")
    assert page.is_checked("#eval-models input[value=base]")
    page.check(f"#eval-models input[value='{run_id}']")
    page.fill("#eval-cells", "information_theory:knowledge_qa")
    page.fill("#eval-limit", "1")
    page.fill("#eval-max-tokens", "4")
    tab.check("trainer-evaluation-form")
    page.click("#eval-start")
    page.wait_for_selector("#eval-job[data-status]")
    # done: the page goes to the report, whose heatmap has a scored cell per model
    page.wait_for_function(
        "() => location.hash.startsWith('#/evaluations/eval')", timeout=EVAL_TIMEOUT_MS
    )
    tab.ready()
    page.wait_for_selector("#heatmap table.heatmap")
    models = page.eval_on_selector_all(
        "#heatmaps table.heatmap", "(tables) => tables.map((t) => t.dataset.model)"
    )
    assert models == ["base", run_id]
    scored = page.eval_on_selector_all(
        "#heatmaps td.heat-cell[data-value]", "(cells) => cells.length"
    )
    assert scored == 2
    report_id = page.evaluate("() => location.hash").rsplit("/", 1)[-1]
    recorded = tab.server.get(f"/v1/evaluations/{report_id}", "auditor").json()
    assert [m["name"] for m in recorded["models"]] == ["base", run_id]
    tab.check("trainer-evaluation-report")

    # a contributor sees the recorded evaluations, not the form
    tab.sign_out()
    tab.sign_in("bupt")
    tab.open("evaluations")
    page.wait_for_selector("#evaluations")
    assert page.query_selector("#eval-form") is None
    assert report_id in tab.main_text()
