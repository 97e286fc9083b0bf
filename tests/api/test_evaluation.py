"""``byr eval`` on a ledger home, end to end: the base and two tiny adapters (one named by its
finished run, one by its folder) over a few cells, the report's files, the EvaluationCompleted
event and its projection, and ``GET /v1/evaluations[/{id}]``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import ApiSettings, create_app
from api.cli import app
from api.composition import Parts
from ledger.events import TrainingRunCompleted, TrainingRunCreated, decode
from ledger.ids import evaluation_stream, run_stream
from ledger.settings import LedgerSettings
from tests.homes import issue_keys
from tests.trainer.conftest import sample_records
from tests.trainer.eval.adapters import train_tiny_adapter
from trainer.manifest import read_manifest


@pytest.fixture(scope="module")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("eval-api")
    cache = root / "models"
    a = train_tiny_adapter(root / "a", records=sample_records(12), cache_dir=cache)
    b = train_tiny_adapter(root / "b", records=sample_records(12), cache_dir=cache, seed=3)
    torch.set_num_threads(previous)
    return a, b, cache


@pytest.fixture(scope="module")
def finished_run(ledger_settings: LedgerSettings, adapters: tuple[Path, Path, Path]) -> str:
    """Adapter a recorded as a finished run of the home (as ``byr train`` records it)."""
    adapter_dir = adapters[0]
    manifest = read_manifest(adapter_dir)
    with Parts(ledger_settings) as parts:
        parts.ledger.append(
            run_stream(manifest.run_id),
            [
                TrainingRunCreated(
                    run_id=manifest.run_id,
                    recipe="knowledge_qa",
                    method="lora",
                    base_model="tiny",
                    config={},
                ),
                TrainingRunCompleted(
                    run_id=manifest.run_id,
                    adapter_dir=str(adapter_dir),
                    adapter_hash=manifest.adapter.hash,
                    recipe_hash=manifest.recipe_hash,
                    base_model_hash=manifest.base_model.hash,
                    dataset_root=manifest.dataset.root,
                    final_loss=1.0,
                ),
            ],
        )
    return manifest.run_id


def byr_eval(settings: LedgerSettings, cache: Path, *args: str) -> Any:
    env = {"BYR_HOME": str(settings.home), "BYR_MODEL_CACHE": str(cache)}
    return CliRunner().invoke(app, ["eval", *args], env=env)


@pytest.fixture(scope="module")
def evaluated(
    ledger_settings: LedgerSettings, adapters: tuple[Path, Path, Path], finished_run: str
) -> dict[str, Any]:
    _, b, cache = adapters
    result = byr_eval(
        ledger_settings,
        cache,
        *("--models", f"base,{finished_run},{b}"),
        *("--cells", "information_theory:knowledge_qa,计算机网络:教学对话"),
        *("--limit", "1", "--max-new-tokens", "4", "--glossary-terms", "1", "--json"),
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_byr_eval_writes_the_report_and_records_it(
    evaluated: dict[str, Any],
    ledger_settings: LedgerSettings,
    adapters: tuple[Path, Path, Path],
    finished_run: str,
) -> None:
    report_json = Path(evaluated["report_json"])
    assert report_json.parent == ledger_settings.home / "eval" / "reports" / evaluated["report_id"]
    assert Path(evaluated["report_html"]).read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    data = report_json.read_bytes()
    assert hashlib.sha256(data).hexdigest() == evaluated["report_sha256"]
    report = json.loads(data)
    lineage = {m["name"]: m for m in report["lineage"]["models"]}
    assert lineage[finished_run]["run_id"] == finished_run
    assert lineage[str(adapters[1])]["adapter_hash"] == read_manifest(adapters[1]).adapter.hash
    assert [m["name"] for m in evaluated["models"]] == ["base", finished_run, str(adapters[1])]
    assert evaluated["items"] == 2 and evaluated["cells"] == 2 and evaluated["control_items"] == 1
    assert report["stats"]["loads"] == {"base": 1, "adapter": 2}
    assert (ledger_settings.home / "eval" / "cache" / "cache.db").is_file()
    with Parts(ledger_settings) as parts:
        (envelope,) = parts.log.read_stream(evaluation_stream(evaluated["report_id"]))
        recorded = decode(envelope)
        assert recorded.report_sha256 == evaluated["report_sha256"]
        assert parts.ledger.replay().equal


def test_a_second_evaluation_comes_from_the_cache(
    evaluated: dict[str, Any], ledger_settings: LedgerSettings, adapters: tuple[Path, Path, Path]
) -> None:
    again = byr_eval(
        ledger_settings,
        adapters[2],
        *("--models", f"base,{adapters[1]}"),
        *("--cells", "information_theory:knowledge_qa", "--limit", "1"),
        *("--max-new-tokens", "4", "--glossary-terms", "1", "--json"),
    )
    assert again.exit_code == 0, again.output
    document = json.loads(again.stdout)
    assert document["stats"]["generated"] == 0 and document["stats"]["loads"] == {}
    assert document["report_id"] != evaluated["report_id"]


def test_the_routes_list_and_show_evaluations(
    evaluated: dict[str, Any], ledger_settings: LedgerSettings
) -> None:
    keys = issue_keys(ledger_settings)
    api = ApiSettings(trainer=False)
    with TestClient(create_app(settings=ledger_settings, api_settings=api)) as client:
        listed = client.get("/v1/evaluations", headers=keys.auditor)
        assert listed.status_code == 200
        assert evaluated["report_id"] in {e["report_id"] for e in listed.json()}
        shown = client.get(f"/v1/evaluations/{evaluated['report_id']}", headers=keys.bupt)
        assert shown.status_code == 200
        body = shown.json()
        assert body["report_sha256"] == evaluated["report_sha256"]
        assert body["benchmark_name"] == "seed" and len(body["benchmark_hash"]) == 64
        assert [m["items_scored"] for m in body["models"]] == [2, 2, 2]
        missing = client.get("/v1/evaluations/eval-nope", headers=keys.trainer)
        assert missing.status_code == 404 and missing.json()["error"] == "NotFound"


def test_the_report_route_serves_the_checked_report(
    evaluated: dict[str, Any], ledger_settings: LedgerSettings
) -> None:
    keys = issue_keys(ledger_settings)
    report_json = Path(evaluated["report_json"])
    original = report_json.read_bytes()
    path = f"/v1/evaluations/{evaluated['report_id']}/report"
    api = ApiSettings(trainer=False)
    with TestClient(create_app(settings=ledger_settings, api_settings=api)) as client:
        shown = client.get(path, headers=keys.xidian)
        assert shown.status_code == 200, shown.text
        body = shown.json()
        assert body["report_id"] == evaluated["report_id"]
        base, *adapters = body["models"]
        cells = {(c["discipline"], c["task_type"]) for c in base["cells"]}
        assert cells == {
            ("information_theory", "knowledge_qa"),
            ("computer_networks", "teaching_dialogue"),
        }
        for cell in base["cells"]:
            assert cell["items"] == 1
            assert {"knowledge", "teaching", "application", "overall"} <= set(cell)
        assert [c["model"] for c in body["comparisons"]] == [m["name"] for m in adapters]
        assert all("delta" in c for c in body["comparisons"][0]["cells"])
        assert "files" not in body and "adapter_dir" not in body["lineage"]["models"][1]
        # nothing of the answers file (or any benchmark text) comes back
        answers = Path(evaluated["answers"]).read_text(encoding="utf-8").splitlines()
        texts = {json.loads(line)["answer"] for line in answers}
        texts = {t for t in texts if len(t) >= 12}  # short ones could match a number's digits
        assert not [t for t in texts if t in shown.text]
        assert '"answer"' not in shown.text and '"prompt"' not in shown.text
        try:
            report_json.write_bytes(original.replace(b'"seconds"', b'"seconds" ', 1))
            changed = client.get(path, headers=keys.auditor)
            assert changed.status_code == 409 and changed.json()["error"] == "Conflict"
            report_json.unlink()
            gone = client.get(path, headers=keys.trainer)
            assert gone.status_code == 404 and "report not on this server" in gone.text
        finally:
            report_json.write_bytes(original)
        assert client.get(path, headers=keys.admin).status_code == 200
        unknown = client.get("/v1/evaluations/eval-nope/report", headers=keys.bupt)
        assert unknown.status_code == 404


def test_bad_models_and_cells_are_usage_errors(
    ledger_settings: LedgerSettings, adapters: tuple[Path, Path, Path]
) -> None:
    unknown = byr_eval(ledger_settings, adapters[2], "--models", "base,run_nope")
    assert unknown.exit_code == 2 and "run_nope" in unknown.output
    bad_cell = byr_eval(ledger_settings, adapters[2], "--models", "base", "--cells", "physics:qa")
    assert bad_cell.exit_code == 2 and "cell 1" in bad_cell.output
