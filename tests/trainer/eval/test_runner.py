"""The evaluation runner on the tiny base and two tiny LoRA adapters: one base load for all of
them, answers equal to the adapter loaded alone, a rerun served by the cache, an interrupted run
resumed, and items found in an adapter's training data refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import trainer.models
from ledger.application import CorpusLedger
from ledger.batching import RecordInput
from ledger.eventlog import open_event_log
from ledger.eventlog.sqlite import sqlite_url
from ledger.projections.base import ProjectionStore
from tests.trainer.conftest import sample_records
from tests.trainer.eval.adapters import MAX_NEW_TOKENS, small_plan, train_tiny_adapter
from trainer.eval import EvaluationError, load_seed_benchmark
from trainer.eval.cache import EvalCache
from trainer.eval.report import build_report
from trainer.eval.results import EvaluationResult, Progress
from trainer.eval.runner import run_evaluation
from trainer.eval.switcher import ModelUnderTest
from trainer.eval.training_texts import ledger_training_texts
from trainer.generate import GenerationSettings, load_generator, stream_generate


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """``(adapter_a, adapter_b, model_cache)``: two short LoRA runs on different data."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("eval-adapters")
    cache = root / "models"
    a = train_tiny_adapter(root / "a", records=sample_records(12), cache_dir=cache, seed=0)
    b = train_tiny_adapter(root / "b", records=sample_records(16)[4:], cache_dir=cache, seed=1)
    return a, b, cache


@pytest.fixture()
def load_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Path]]:
    """Every folder a model is loaded from (``trainer.models.load_model``, which every loader
    goes through), in order."""
    calls: list[Path] = []
    real = trainer.models.load_model

    def counting(path: Path, **kwargs: Any) -> Any:
        calls.append(Path(path))
        return real(path, **kwargs)

    monkeypatch.setattr(trainer.models, "load_model", counting)
    yield calls


def models_of(adapters: tuple[Path, Path, Path]) -> list[ModelUnderTest]:
    a, b, _ = adapters
    return [ModelUnderTest("base"), ModelUnderTest("a", a), ModelUnderTest("b", b)]


def evaluate(adapters: tuple[Path, Path, Path], cache_dir: Path, **kwargs: Any) -> EvaluationResult:
    with EvalCache(cache_dir) as cache:
        return run_evaluation(
            models=models_of(adapters),
            plan=kwargs.pop("plan", None) or small_plan(),
            base="tiny",
            cache=cache,
            model_cache_dir=adapters[2],
            **kwargs,
        )


def scores(result: EvaluationResult) -> dict[str, list[tuple[str, float, float | None]]]:
    return {
        m.model.name: [(i.item_id, i.overall, i.log_likelihood) for i in [*m.items, *m.control]]
        for m in result.models
    }


@pytest.fixture(scope="module")
def first_run(
    adapters: tuple[Path, Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> tuple[EvaluationResult, Path]:
    cache_dir = tmp_path_factory.mktemp("eval-cache")
    return evaluate(adapters, cache_dir), cache_dir


def test_the_base_loads_once_for_the_base_and_two_adapters(
    adapters: tuple[Path, Path, Path], load_calls: list[Path], tmp_path: Path
) -> None:
    result = evaluate(adapters, tmp_path / "cache")
    assert len(load_calls) == 1  # one base model for three models under test
    assert result.stats["loads"] == {"base": 1, "adapter": 2}
    plan = result.plan
    assert [len(m.items) for m in result.models] == [len(plan.items)] * 3 == [4] * 3
    assert all(len(m.control) == len(plan.control_items) == 2 for m in result.models)
    assert all(set(m.glossary) == set(plan.glossary) for m in result.models)
    assert result.stats["generated"] == 3 * (4 + 2)
    # the adapters answer differently from the base: the swap really happened
    base, a, b = (scores(result)[n] for n in ("base", "a", "b"))
    assert [x[2] for x in base] != [x[2] for x in a] != [x[2] for x in b]


def test_a_swapped_adapter_answers_as_when_loaded_alone(
    first_run: tuple[EvaluationResult, Path], adapters: tuple[Path, Path, Path]
) -> None:
    result, _ = first_run
    _, b_dir, cache = adapters
    b = next(m for m in result.models if m.model.name == "b")
    item = next(i for i in result.plan.items if i.id == b.items[0].item_id)
    model, tokenizer = load_generator(adapter_dir=b_dir, cache_dir=cache)
    alone = "".join(
        stream_generate(
            model,
            tokenizer,
            messages=[{"role": "user", "content": item.question()}],
            settings=GenerationSettings(max_new_tokens=MAX_NEW_TOKENS),
        )
    )
    assert b.items[0].answer == alone


def test_a_rerun_generates_nothing(
    first_run: tuple[EvaluationResult, Path],
    adapters: tuple[Path, Path, Path],
    load_calls: list[Path],
) -> None:
    result, cache_dir = first_run
    again = evaluate(adapters, cache_dir)
    assert again.stats["generated"] == again.stats["likelihoods"] == 0
    assert load_calls == [] and again.stats["loads"] == {}  # nothing missing: nothing loaded
    assert scores(again) == scores(result)
    assert all(i.cached for m in again.models for i in m.items)


def test_an_interrupted_evaluation_resumes_where_it_stopped(
    first_run: tuple[EvaluationResult, Path], adapters: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    def stop_in_b(progress: Progress) -> None:
        if progress.model == "b" and progress.stage == "benchmark" and progress.done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate(adapters, tmp_path / "cache", progress=stop_in_b)
    resumed = evaluate(adapters, tmp_path / "cache")
    # base and a (4 items + 2 control items each) and 3 items of b were done before the stop
    assert resumed.stats["generated"] == 3 * 6 - (6 + 6 + 3)
    assert scores(resumed) == scores(first_run[0])


def test_items_in_an_adapters_training_data_are_refused(
    adapters: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """An adapter trained on a record that quotes a benchmark item's reference answer is not
    scored on that item; the base still is, and the report lists it."""
    plan = small_plan()
    leaked = plan.items[1]
    ledger = CorpusLedger(
        log=open_event_log(sqlite_url(tmp_path / "events.db")),
        store=ProjectionStore(tmp_path / "state.db"),
    )
    ledger.register_institution(institution_id="bupt", name="BUPT", account="0x" + "11" * 20)
    canonical = [
        {
            "instruction": f"Question {i} about channels.",
            "input": "",
            "output": leaked.reference if i == 0 else f"Answer number {i} about coding.",
            "discipline": "information_theory",
            "task_type": "knowledge_qa",
            "language": "en",
            "license": "CC-BY-4.0",
            "institution_id": "bupt",
        }
        for i in range(8)
    ]
    submitted = ledger.submit_batch(
        institution_id="bupt",
        source_name="leak.jsonl",
        records=[RecordInput(canonical=c) for c in canonical],
        policy_version="test",
    )
    records = [
        {"record_id": v.record_id, "leaf": v.leaf, **(v.record or {})}
        for v in ledger.records(submitted.batch_id)
    ]
    leaky = train_tiny_adapter(tmp_path / "leaky", records=records, cache_dir=adapters[2])
    with EvalCache(tmp_path / "cache") as cache:
        result = run_evaluation(
            models=[ModelUnderTest("base"), ModelUnderTest("leaky", leaky)],
            plan=plan,
            base="tiny",
            cache=cache,
            model_cache_dir=adapters[2],
            training_texts=ledger_training_texts(ledger),
        )
    base, adapter = result.models
    assert adapter.contamination is not None
    assert adapter.contamination.refused == {leaked.id}
    assert adapter.contamination.texts_available == adapter.contamination.training_records == 8
    assert leaked.id not in {i.item_id for i in adapter.items}
    assert leaked.id in {i.item_id for i in base.items}
    report = build_report(result, report_id="eval-test")
    (section,) = [m for m in report["models"] if m["name"] == "leaky"]
    (listed,) = section["contamination"]["items"]
    assert listed["item_id"] == leaked.id and listed["fields"] == ["reference"]
    assert listed["record_ids"] == [records[0]["record_id"]]
    # the comparison with the base covers only the items both were scored on
    cell = next(c for c in report["comparisons"][0]["cells"] if c["task_type"] == "knowledge_qa")
    assert cell["paired_items"] == 1
    ledger.log.close()
    ledger.store.close()


def test_an_adapter_of_another_base_is_refused(
    adapters: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    with (
        EvalCache(tmp_path / "cache") as cache,
        pytest.raises(EvaluationError, match="trained on the base tiny"),
    ):
        run_evaluation(
            models=[ModelUnderTest("a", adapters[0])],
            plan=small_plan(),
            base="tiny-qwen2",
            cache=cache,
            model_cache_dir=adapters[2],
        )


def test_a_cell_without_items_is_refused() -> None:
    from ledger.vocabulary import Discipline, TaskType
    from trainer.eval.plan import plan_evaluation

    benchmark = load_seed_benchmark()
    only_en = plan_evaluation(benchmark, languages=["en"], limit=1)
    assert {i.language.value for i in only_en.items} == {"en"}
    assert len(only_en.items) == 48  # one English item in each of the 6 x 8 cells
    with pytest.raises(EvaluationError, match="no item in the cell"):
        plan_evaluation(
            benchmark.__class__(manifest=benchmark.manifest, items=benchmark.items[:5]),
            cells=[(Discipline.DATA_SCIENCE, TaskType.CASE_ANALYSIS)],
        )
