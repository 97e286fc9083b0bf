"""``POST /v1/evaluations`` on a ledger home: an evaluation of the base and a finished run's tiny
adapter started over HTTP, followed on its status URL to its recorded report; what is refused at
once (unknown or unfinished runs, bad cells and options, folders of the server)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import torch
from fastapi.testclient import TestClient

from api.app import ApiSettings, create_app
from api.composition import Parts
from ledger.events import TrainingRunCompleted, TrainingRunCreated
from ledger.ids import run_stream
from ledger.settings import LedgerSettings
from tests.homes import initialized_settings, issue_keys
from tests.trainer.conftest import sample_records
from tests.trainer.eval.adapters import train_tiny_adapter
from trainer.manifest import read_manifest

if TYPE_CHECKING:
    from tests.homes import TestKeys

CELLS = ["information_theory:knowledge_qa"]
WAIT_S = 120.0


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[LedgerSettings, str, Path]:
    """A home with the model cache set, one finished run (a tiny adapter) and the adapter folder."""
    root = tmp_path_factory.mktemp("eval-start")
    cache = root / "models"
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        adapter_dir = train_tiny_adapter(root / "a", records=sample_records(12), cache_dir=cache)
    finally:
        torch.set_num_threads(previous)
    settings = initialized_settings(root / "home", model_cache=cache)
    manifest = read_manifest(adapter_dir)
    with Parts(settings) as parts:
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
    return settings, manifest.run_id, adapter_dir


@pytest.fixture(scope="module")
def keys(home: tuple[LedgerSettings, str, Path]) -> TestKeys:
    return issue_keys(home[0])


@pytest.fixture(scope="module")
def client(home: tuple[LedgerSettings, str, Path]) -> Any:
    app = create_app(settings=home[0], api_settings=ApiSettings(trainer=False))
    with TestClient(app) as client:
        yield client


def wait_settled(client: TestClient, url: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    seen: set[str] = set()
    while time.monotonic() < deadline:
        answer = client.get(url, headers=headers)
        assert answer.status_code == 200, answer.text
        job: dict[str, Any] = answer.json()
        seen.add(job["status"])
        if job["status"] in ("done", "failed"):
            job["seen"] = seen
            return job
        time.sleep(0.1)
    raise AssertionError(f"evaluation job not settled after {WAIT_S} s: {seen}")


def test_an_evaluation_started_over_http_is_recorded(
    client: TestClient, keys: TestKeys, home: tuple[LedgerSettings, str, Path]
) -> None:
    settings, run_id, _ = home
    body = {
        "models": ["base", run_id],
        "cells": CELLS,
        "limit": 1,
        "max_new_tokens": 3,
        "glossary_terms": 1,
    }
    started = client.post("/v1/evaluations", json=body, headers=keys.trainer)
    assert started.status_code == 202, started.text
    accepted = started.json()
    assert accepted["status"] in ("queued", "running") and accepted["models"] == ["base", run_id]
    assert started.headers["Location"] == accepted["status_url"]
    assert accepted["status_url"] == f"/v1/evaluations/jobs/{accepted['job_id']}"

    job = wait_settled(client, accepted["status_url"], keys.admin)
    assert job["status"] == "done", job
    assert job["http_status"] == 201 and job["error"] is None
    assert job["progress"]["done"] == job["progress"]["total"] >= 1
    report_id = job["report_id"]
    assert job["evaluation_url"] == f"/v1/evaluations/{report_id}"

    recorded = client.get(job["evaluation_url"], headers=keys.auditor)
    assert recorded.status_code == 200, recorded.text
    assert [m["name"] for m in recorded.json()["models"]] == ["base", run_id]
    assert recorded.json()["cells"] == 1 and recorded.json()["items"] == 1
    report = client.get(f"{job['evaluation_url']}/report", headers=keys.trainer).json()
    cells = {(c["discipline"], c["task_type"]) for c in report["models"][0]["cells"]}
    assert cells == {("information_theory", "knowledge_qa")}
    assert (settings.home / "eval" / "reports" / report_id / "report.json").is_file()


def test_unknown_and_unfinished_models_are_refused_at_once(
    client: TestClient, keys: TestKeys, home: tuple[LedgerSettings, str, Path]
) -> None:
    unknown = client.post(
        "/v1/evaluations", json={"models": ["base", "run_nope"]}, headers=keys.trainer
    )
    assert unknown.status_code == 404, unknown.text
    assert unknown.json()["message"] == "model 2: no such finished training run"
    assert "run_nope" not in unknown.text
    with Parts(home[0]) as parts:
        parts.ledger.append(
            run_stream("run_unfinished"),
            [
                TrainingRunCreated(
                    run_id="run_unfinished",
                    recipe="knowledge_qa",
                    method="lora",
                    base_model="tiny",
                    config={},
                )
            ],
        )
    unfinished = client.post(
        "/v1/evaluations", json={"models": ["run_unfinished"]}, headers=keys.admin
    )
    assert unfinished.status_code == 409, unfinished.text
    assert "model 1" in unfinished.json()["message"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"models": []}, "models"),
        ({"models": ["base"], "cells": ["physics:qa"]}, "cell 1"),
        ({"models": ["base"], "cells": ["information_theory"]}, "cell 1"),
        ({"models": ["base"], "limit": 0}, "limit"),
        ({"models": ["base"], "max_new_tokens": 4096}, "max_new_tokens"),
        ({"models": ["base"], "language": "fr"}, "language"),
        ({"models": ["base"], "base": "/etc"}, "base"),
        ({"models": ["../adapters/a"]}, "models"),
        ({"models": ["base"], "benchmark": "/tmp"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_requests_are_422_naming_the_field(
    client: TestClient, keys: TestKeys, body: dict[str, Any], where: str
) -> None:
    answer = client.post("/v1/evaluations", json=body, headers=keys.trainer)
    assert answer.status_code == 422, answer.text
    assert where in answer.text
    for value in ("physics", "/etc", "../adapters", "4096", "fr"):
        if value in str(body):
            assert value not in answer.json()["message"]


def test_an_adapter_folder_is_not_a_model_over_http(
    client: TestClient, keys: TestKeys, home: tuple[LedgerSettings, str, Path]
) -> None:
    # the folder's last part is a valid name, but only run ids and base are looked up
    answer = client.post("/v1/evaluations", json={"models": [home[2].name]}, headers=keys.trainer)
    assert answer.status_code == 404


def test_only_trainers_and_admins_start_or_follow_evaluations(
    client: TestClient, keys: TestKeys
) -> None:
    for who in (keys.bupt, keys.auditor):
        refused = client.post("/v1/evaluations", json={"models": ["base"]}, headers=who)
        assert refused.status_code == 403
        assert client.get("/v1/evaluations/jobs/evj_nope", headers=who).status_code == 403
    assert client.post("/v1/evaluations", json={"models": ["base"]}).status_code == 401
    missing = client.get("/v1/evaluations/jobs/evj_nope", headers=keys.trainer)
    assert missing.status_code == 404 and missing.json()["error"] == "NotFound"
