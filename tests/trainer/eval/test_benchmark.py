"""The seed benchmark covers every cell in both languages, and the loader locates every error."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ingest.records import Discipline, TaskType
from trainer.eval import (
    DEFAULT_WEIGHTS,
    EVAL_TASK_TYPES,
    BenchmarkError,
    CodeChecker,
    ExpressionChecker,
    Scorer,
    load_benchmark,
    load_seed_benchmark,
)
from trainer.eval.metrics import extract_choice, key_term_recall
from trainer.eval.sandbox import SandboxLimits

SECRET = "Zhang San 13800138000"  # stands for submitted text; it must never appear in an error


def test_eval_task_types_are_intake_task_types_with_chinese_names() -> None:
    names = {
        "知识问答": "knowledge_qa",
        "实验报告分析": "lab_report_analysis",
        "教学对话": "teaching_dialogue",
        "代码解释": "code_explanation",
        "公式推导": "formula_derivation",
        "文献综述": "literature_review",
        "案例分析": "case_analysis",
        "项目规划": "project_planning",
        "Case Study": "case_analysis",
        "实验报告": "lab_report_analysis",
    }
    for name, value in names.items():
        assert TaskType.parse(name).value == value
    assert len(EVAL_TASK_TYPES) == 8 and set(DEFAULT_WEIGHTS) == set(EVAL_TASK_TYPES)
    assert {TaskType.CONCEPT_EXPLANATION, TaskType.SUMMARIZATION} <= set(TaskType)


def test_seed_benchmark_covers_every_cell_in_both_languages() -> None:
    benchmark = load_seed_benchmark()
    cells = benchmark.cells()
    assert set(cells) == {(d, t) for d in Discipline for t in EVAL_TASK_TYPES}
    for cell, items in cells.items():
        assert len(items) >= 5, cell
        assert {i.language.value for i in items} == {"zh", "en"}, cell
    assert Counter(i.language.value for i in benchmark)["en"] >= 48
    for item in benchmark:
        assert item.reference.strip() and item.key_terms
        if item.task_type is TaskType.FORMULA_DERIVATION:
            assert isinstance(item.checker, ExpressionChecker), item.id


def test_seed_references_satisfy_their_own_scoring() -> None:
    """A reference answer names all its key terms, picks its own answer key and passes its
    own checker: the seed's hints and checkers are consistent with its content."""
    benchmark = load_seed_benchmark()
    checked = 0
    with Scorer(formula_timeout_s=20, sandbox_limits=SandboxLimits(wall_s=20)) as scorer:
        for item in benchmark:
            assert key_term_recall(item.reference, item.key_terms) == 1.0, item.id
            if item.is_choice:
                chosen = extract_choice(item.reference, n_choices=len(item.choices))
                assert chosen == item.answer_key, item.id
            if item.checker is not None:
                score = scorer.score(item, item.reference)
                assert score.metrics["checker"] == 1.0, (item.id, score.checker_outcome)
                checked += 1
    assert checked >= 30
    assert any(isinstance(i.checker, CodeChecker) for i in benchmark)


def _write(folder: Path, lines: list[Any], *, manifest: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(
        json.dumps(manifest or {"name": "t", "version": "1", "files": ["items.jsonl"]})
    )
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    (folder / "items.jsonl").write_text(text + "\n", encoding="utf-8")
    return folder


def _good(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "x-1",
        "discipline": "信号处理",
        "task_type": "公式推导",
        "language": "zh",
        "prompt": "推导 N 点 DFT 的频率分辨率。",
        "reference": "\\boxed{f_s/N}",
        "key_terms": ["分辨率"],
        "checker": {"kind": "expression", "expected": "f_s/N"},
    } | overrides


def test_loader_accepts_names_and_applies_default_weights(tmp_path: Path) -> None:
    benchmark = load_benchmark(_write(tmp_path, [_good()]))
    (item,) = benchmark.items
    assert (item.discipline, item.task_type) == (
        Discipline.SIGNAL_PROCESSING,
        TaskType.FORMULA_DERIVATION,
    )
    assert item.weights == DEFAULT_WEIGHTS[TaskType.FORMULA_DERIVATION]
    assert item.checker == ExpressionChecker(expected="f_s/N")


def _messages(tmp_path: Path, lines: list[Any]) -> list[str]:
    with pytest.raises(BenchmarkError) as e:
        load_benchmark(_write(tmp_path, lines))
    assert SECRET not in str(e.value)
    return [str(issue) for issue in e.value.issues]


def test_loader_errors_are_located_and_never_quote_values(tmp_path: Path) -> None:
    messages = _messages(
        tmp_path,
        [
            _good(),
            _good(id="x-1"),
            _good(id="x-3", discipline=SECRET),
            _good(id="x-4", task_type="concept_explanation"),
            _good(id="x-5", task_type=SECRET),
            _good(id="x-6", language="fr", key_terms=[]),
            "{not json " + SECRET,
            _good(id="x-8", choices=["a", "b"]),
            _good(id="x-9", choices=["a", "b"], answer_key="C"),
            _good(id="x-10", checker={"kind": SECRET}),
            _good(id="x-11", weights={"knowledge": 1}),
            _good(id="x-12", extra=SECRET),
            _good(id="X 13", prompt=""),
            [SECRET],
        ],
    )
    assert messages == [
        "items.jsonl:2: field 'id': duplicate id (first used at items.jsonl:1)",
        "items.jsonl:3: field 'discipline': unknown Discipline; expected one of: "
        "communication_principles, network_security, information_theory, signal_processing, "
        "computer_networks, data_science (or their English or Chinese names)",
        "items.jsonl:4: field 'task_type': not an evaluation task type; expected one of: "
        "knowledge_qa, lab_report_analysis, teaching_dialogue, code_explanation, "
        "formula_derivation, literature_review, case_analysis, project_planning",
        "items.jsonl:5: field 'task_type': unknown TaskType; expected one of: "
        + ", ".join(t.value for t in TaskType)
        + " (or their English or Chinese names)",
        "items.jsonl:6: field 'language': must be 'zh' or 'en'",
        "items.jsonl:6: field 'key_terms': must hold at least 1 entries",
        "items.jsonl:7: not valid JSON",
        "items.jsonl:8: field 'answer_key': choices and answer_key go together",
        "items.jsonl:9: field 'answer_key': names a letter beyond the listed choices",
        "items.jsonl:10: field 'checker': 'kind' must be one of: expression, code",
        "items.jsonl:11: field 'weights': must be an object with exactly the keys "
        "application, knowledge, teaching",
        "items.jsonl:12: field 'extra': unknown field",
        "items.jsonl:13: field 'id': must be 1-128 characters of lowercase letters, digits, "
        "'_', '.', '-', starting with a letter or digit",
        "items.jsonl:13: field 'prompt': must not be empty",
        "items.jsonl:14: must be a JSON object",
    ]


def test_loader_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match=r"manifest.json: missing"):
        load_benchmark(tmp_path)
    folder = _write(
        tmp_path / "b",
        [_good()],
        manifest={"name": "t", "version": "1", "files": ["../escape.jsonl", "gone.jsonl"]},
    )
    with pytest.raises(BenchmarkError) as e:
        load_benchmark(folder)
    assert [str(i) for i in e.value.issues] == [
        "manifest.json: field 'files': entry 0 must be a .jsonl file in the folder"
    ]
    folder = _write(
        tmp_path / "c", [_good()], manifest={"name": "t", "version": "1", "files": ["gone.jsonl"]}
    )
    with pytest.raises(BenchmarkError, match=r"gone.jsonl: listed in the manifest but missing"):
        load_benchmark(folder)


def test_loader_rejects_non_utf8(tmp_path: Path) -> None:
    folder = _write(tmp_path, [_good()])
    (folder / "items.jsonl").write_bytes(b"\xff\xfe{}")
    with pytest.raises(BenchmarkError, match=r"items.jsonl: not valid UTF-8"):
        load_benchmark(folder)


def test_loader_refuses_deep_nesting_before_parsing(tmp_path: Path) -> None:
    folder = _write(tmp_path, [_good(), "[" * 100_000 + "]" * 100_000])
    with pytest.raises(BenchmarkError) as e:
        load_benchmark(folder)
    assert [str(i) for i in e.value.issues] == ["items.jsonl:2: nested deeper than 32 levels"]
