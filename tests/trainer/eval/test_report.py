"""The evaluation report: a JSON document naming its lineage, a self-contained HTML page (no
script, no external asset) with a heatmap per model and dimension, and a screenshot of that page
in headless Chromium that is not blank."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli import ROOT
from trainer.eval import load_seed_benchmark
from trainer.eval.contamination import Contamination
from trainer.eval.control import load_default_control_set
from trainer.eval.glossary import load_glossary_terms
from trainer.eval.plan import plan_evaluation
from trainer.eval.report import build_report, write_report
from trainer.eval.results import (
    ContaminationCheck,
    EvaluationResult,
    GlossaryScore,
    ItemResult,
    ModelResult,
)
from trainer.eval.switcher import ModelUnderTest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACT = ROOT / "var" / "test-artifacts" / "eval-report.png"


def synthetic_result() -> EvaluationResult:
    """Base and one adapter over one item of every cell, with scores that vary by cell; the
    adapter forgets one cell, refuses one item and gains glossary likelihood."""
    plan = plan_evaluation(
        load_seed_benchmark(),
        limit=1,
        control=load_default_control_set(),
        glossary=load_glossary_terms(per_discipline=2),
    )
    refused = plan.items[5].id

    def scored(index: int, shift: float) -> ItemResult:
        item = plan.items[index]
        value = min(1.0, max(0.0, (index % 8) / 8 + (index % 6) / 20 + shift))
        return ItemResult(
            item_id=item.id,
            language=item.language.value,
            metrics={"rouge_l": value, "bleu": value / 2, "key_term_recall": value},
            overall=value,
            dimensions={"knowledge": value, "teaching": value / 2, "application": value},
            discipline=item.discipline.value,
            task_type=item.task_type.value,
            log_likelihood=-20.0 - index,
            tokens=10,
        )

    def control(shift: float) -> list[ItemResult]:
        return [
            ItemResult(
                item_id=c.id,
                language=c.language.value,
                metrics={"rouge_l": 0.3, "bleu": 0.1},
                overall=0.2,
                log_likelihood=(-2.5 + shift) * 10,
                tokens=10,
            )
            for c in plan.control_items
        ]

    def glossary(ll: float) -> dict[str, GlossaryScore]:
        return {d: GlossaryScore(log_likelihood=ll * 8, tokens=8, probes=4) for d in plan.glossary}

    base = ModelResult(
        model=ModelUnderTest("base"),
        lineage={"name": "base", "kind": "base", "base_model_hash": "ab" * 32},
        items=[scored(i, 0.0) for i in range(len(plan.items))],
        control=control(0.0),
        glossary=glossary(-6.0),
    )
    adapter = ModelResult(
        model=ModelUnderTest("run-1", Path("/runs/1/adapter")),
        lineage={
            "name": "run-1",
            "kind": "adapter",
            "adapter_hash": "cd" * 32,
            "adapter_verified": True,
            "run_id": "run-1",
            "dataset_root": "0x" + "ef" * 32,
            "train_records": 120,
            "base_model_hash": "ab" * 32,
        },
        contamination=ContaminationCheck(
            training_records=120,
            texts_available=118,
            contaminated=(
                Contamination(refused, ("reference",), 3, ("rec_00000000000000000001",)),
            ),
        ),
        items=[scored(i, -0.2 if i == 1 else 0.03) for i in range(len(plan.items)) if i != 5],
        control=control(-0.2),
        glossary=glossary(-5.5),
    )
    return EvaluationResult(
        plan=plan,
        base_model={"name": "tiny", "hash": "ab" * 32, "path": "/models/tiny"},
        models=[base, adapter],
        started_at="2026-01-01T00:00:00+00:00",
        seconds=1.5,
        stats={"loads": {"base": 1, "adapter": 1}, "generated": 0, "cache_hits": 0},
    )


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, Path]:
    result = synthetic_result()
    report = build_report(result, report_id="eval-test-1")
    files = write_report(report, result, tmp_path_factory.mktemp("report"))
    return report, files.json_path, files.html_path


def test_the_report_names_its_lineage_flags_and_refusals(
    written: tuple[dict, Path, Path],
) -> None:
    report, json_path, _ = written
    assert json.loads(json_path.read_text(encoding="utf-8")) == report
    assert report["lineage"]["base_model"]["hash"] == "ab" * 32
    adapter = report["lineage"]["models"][1]
    assert adapter["adapter_hash"] == "cd" * 32 and adapter["dataset_root"] == "0x" + "ef" * 32
    assert report["benchmark"]["name"] == "seed" and len(report["benchmark"]["hash"]) == 64
    assert len(report["benchmark"]["cells"]) == 48
    (comparison,) = report["comparisons"]
    scopes = [
        (f["scope"], f.get("discipline"), f.get("task_type")) for f in comparison["forgetting"]
    ]
    forgotten = report["models"][0]["items"][1]
    assert ("cell", forgotten["discipline"], forgotten["task_type"]) in scopes
    assert ("control", None, None) in scopes  # 0.2 nats/token lower on the control set
    assert all(g["injected"] for g in comparison["glossary"])  # +0.5 nats/token everywhere
    refused = report["models"][1]["contamination"]["items"]
    assert [r["item_id"] for r in refused] == [report["models"][0]["items"][5]["item_id"]]


def test_the_html_page_is_self_contained(written: tuple[dict, Path, Path]) -> None:
    _, _, html_path = written
    page = html_path.read_text(encoding="utf-8")
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "url(" not in page
    # one heatmap row per model, one of deltas, one glossary chart
    assert page.count('src="data:image/png;base64,') == 2 + 1 + 1
    assert "forgetting" in page and "1 item(s) refused" in page


def test_a_screenshot_of_the_report_is_not_blank(
    written: tuple[dict, Path, Path], tmp_path: Path
) -> None:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (make setup installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    _, _, html_path = written
    shot = tmp_path / "eval-report.png"
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--screenshot={shot}",
            "--window-size=1280,2000",
            html_path.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert shot.stat().st_size > 20_000
    from PIL import Image, ImageStat

    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        spread = ImageStat.Stat(image.convert("L")).stddev[0]
    assert spread > 10, f"the screenshot looks blank (grey-level deviation {spread:.1f})"
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, ARTIFACT)
