"""Training over HTTP against real parts: a run queued with POST, performed by the app's own
trainer thread on a tiny real model, watched through its SSE metrics stream, stopped and resumed,
then talked to through the generate endpoint.

The accepted corpus is recorded as the events governance appends (no embedding model loads).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from api.app import ApiSettings, create_app
from api.composition import Parts
from ledger.settings import LedgerSettings
from tests.homes import TestKeys, initialized_settings, issue_keys
from tests.trainer.test_lineage import _accepted_batch

QUICK = {
    "training.max_seq_length": 64,
    "training.batch_size": 4,
    "training.learning_rate": 1e-2,
    "training.warmup_ratio": 0.0,
    "training.scheduler": "constant",
    "training.checkpoint_every": 0,
    "training.val_size": 2,
    "training.eval_steps": 2,
}
#: Long enough that a stop asked after step 2 lands before the run ends (a tiny step is ~10 ms).
STOP_RUN_STEPS = 60


@pytest.fixture(scope="module", autouse=True)
def single_thread_torch() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> LedgerSettings:
    home = tmp_path_factory.mktemp("byr-train")
    settings = initialized_settings(home, model_cache=home / "models")
    with Parts(settings) as parts:
        _accepted_batch(parts, "bupt", 0, 8)
        _accepted_batch(parts, "xidian", 100, 6)
        parts.pipeline.drain()
    return settings


@pytest.fixture(scope="module")
def keys(settings: LedgerSettings) -> TestKeys:
    return issue_keys(settings)


@pytest.fixture(scope="module")
def client(settings: LedgerSettings, keys: TestKeys) -> Iterator[TestClient]:
    app = create_app(settings=settings, api_settings=ApiSettings(trainer=True))
    with TestClient(app, headers=keys.trainer) as client:
        yield client


def sse(text: str) -> list[dict[str, Any]]:
    """The events of an SSE body: ``event``, ``id`` and the decoded ``data``."""
    events = []
    for block in text.strip().split("\n\n"):
        event: dict[str, Any] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            if name == "data":
                event["data"] = json.loads(value)
            elif name in ("event", "id"):
                event[name] = value
        if "data" in event:
            events.append(event)
    return events


def start(client: TestClient, **body: Any) -> dict[str, Any]:
    payload = {"recipe": "knowledge_qa", "overrides": QUICK, **body}
    response = client.post("/v1/training/runs", json=payload)
    assert response.status_code == 202, response.text
    return response.json()  # type: ignore[no-any-return]


def wait_for(client: TestClient, run: str, condition: Any, timeout_s: float = 120) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        shown = client.get(f"/v1/training/runs/{run}").json()
        if condition(shown):
            return shown
        time.sleep(0.05)
    raise AssertionError(f"run {run} never reached the condition: {shown}")


@pytest.fixture(scope="module")
def finished(client: TestClient) -> dict[str, Any]:
    """A run queued over HTTP and followed to its end through the metrics stream."""
    accepted = start(client, max_steps=6)
    stream = client.get(accepted["metrics_url"])
    assert stream.status_code == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = sse(stream.text)
    run = wait_for(client, accepted["request_id"], lambda r: r["status"] == "anchored")
    return {"accepted": accepted, "events": events, "run": run}


def test_post_queues_a_run_with_its_urls_and_advice(finished: dict[str, Any]) -> None:
    accepted = finished["accepted"]
    assert accepted["status"] == "queued"
    assert accepted["run_url"] == f"/v1/training/runs/{accepted['request_id']}"
    advice = {w["field"]: w["message"] for w in accepted["warnings"]}
    assert "training.learning_rate" in advice and "advised" in advice["training.learning_rate"]


def test_the_stream_has_every_step_eval_losses_and_an_end(finished: dict[str, Any]) -> None:
    events = finished["events"]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert [e["data"]["step"] for e in events if e["event"] == "step"] == [1, 2, 3, 4, 5, 6]
    evals = [e["data"] for e in events if e["event"] == "eval"]
    assert [e["step"] for e in evals] == [2, 4, 6] and all(e["eval_loss"] > 0 for e in evals)
    step = next(e["data"] for e in events if e["event"] == "step")
    for name in ("epoch", "loss", "learning_rate", "tokens_per_second", "grad_norm", "cpu_rss_mb"):
        assert name in step
    assert events[-1]["data"]["status"] == "completed"
    assert [int(e["id"]) for e in events] == list(range(1, len(events) + 1))


def test_the_run_shows_its_lineage_and_is_listed(
    client: TestClient, keys: TestKeys, finished: dict[str, Any]
) -> None:
    run = finished["run"]
    assert run["run_id"] and run["request_id"] == finished["accepted"]["request_id"]
    assert run["dataset_root"].startswith("0x") and run["last_step"] == 6
    lineage = run["lineage"]
    assert lineage["adapter_hash"] and lineage["anchor_tx_hash"]
    assert lineage["train_records"] + lineage["validation_records"] == 14
    for who in (keys.bupt, keys.auditor, keys.admin):
        listed = client.get("/v1/training/runs", headers=who)
        assert listed.status_code == 200
        assert run["run_id"] in {r["run_id"] for r in listed.json()}
        shown = client.get(f"/v1/training/runs/{run['run_id']}", headers=who)
        assert shown.status_code == 200 and shown.json()["lineage"] == lineage


def test_last_event_id_resumes_without_loss_or_repeats(
    client: TestClient, finished: dict[str, Any]
) -> None:
    url = finished["accepted"]["metrics_url"]
    everything = sse(client.get(url, params={"follow": "false"}).text)
    assert everything == finished["events"]
    head = everything[:3]
    rest = sse(client.get(url, headers={"Last-Event-ID": head[-1]["id"]}).text)
    assert head + rest == everything
    bad = client.get(url, headers={"Last-Event-ID": "x-1"})
    assert bad.status_code == 422 and "Last-Event-ID" in bad.json()["message"]


def test_stop_then_resume_continues_the_same_loss_curve(client: TestClient) -> None:
    reference = start(client, max_steps=STOP_RUN_STEPS)
    ref_steps = [
        e["data"] for e in sse(client.get(reference["metrics_url"]).text) if e["event"] == "step"
    ]

    accepted = start(client, max_steps=STOP_RUN_STEPS)
    run_id = accepted["request_id"]
    wait_for(client, run_id, lambda r: (r.get("last_step") or 0) >= 2)
    stopping = client.post(accepted["stop_url"])
    assert stopping.status_code == 202, stopping.text
    assert stopping.json()["status"] in ("stopping", "stopped")
    stopped = wait_for(client, run_id, lambda r: r["status"] == "stopped")
    assert 2 <= stopped["last_step"] < STOP_RUN_STEPS
    assert [c["step"] for c in stopped["checkpoints"]] == [stopped["last_step"]]
    first = sse(client.get(accepted["metrics_url"]).text)  # ends at the stop
    assert first[-1]["data"] == {**first[-1]["data"], "status": "stopped"}
    assert client.post(accepted["stop_url"]).status_code == 409

    resumed = client.post(accepted["resume_url"])
    assert resumed.status_code == 202 and resumed.json()["status"] == "resuming"
    assert client.post(accepted["resume_url"]).status_code == 409
    rest = sse(client.get(accepted["metrics_url"], headers={"Last-Event-ID": first[-1]["id"]}).text)
    assert rest[0]["data"]["resumed_from_step"] == stopped["last_step"]
    assert rest[-1]["data"]["status"] == "completed"
    steps = [e["data"] for e in first + rest if e["event"] == "step"]
    assert [s["step"] for s in steps] == list(range(1, STOP_RUN_STEPS + 1))
    assert [s["loss"] for s in steps] == pytest.approx([s["loss"] for s in ref_steps], abs=1e-5)
    done = wait_for(client, run_id, lambda r: r["status"] == "anchored")
    assert done["run_id"] == stopped["run_id"]


def test_generation_streams_tokens_from_the_adapter(
    client: TestClient, finished: dict[str, Any]
) -> None:
    run_id = finished["run"]["run_id"]
    body = {"prompt": "What is the Nyquist rate?", "max_new_tokens": 6}
    response = client.post(f"/v1/models/{run_id}/generate", json=body)
    assert response.status_code == 200, response.text
    events = sse(response.text)
    tokens = [e for e in events if e["event"] == "token"]
    assert tokens and all(isinstance(e["data"]["text"], str) for e in tokens)
    end = events[-1]
    assert end["event"] == "end"
    assert 1 <= end["data"]["completion_tokens"] <= 6 and end["data"]["prompt_tokens"] > 0
    again = sse(client.post(f"/v1/models/{run_id}/generate", json=body).text)
    # greedy: the same answer, from the cached model
    assert [e for e in again if e["event"] == "token"] == tokens
    base = client.post(
        "/v1/models/base/generate",
        json={"messages": [{"role": "user", "content": "hi"}], "max_new_tokens": 3},
    )
    assert base.status_code == 200 and sse(base.text)[-1]["event"] == "end"


def test_generation_refuses_what_it_cannot_answer(
    client: TestClient, finished: dict[str, Any]
) -> None:
    run_id = finished["run"]["run_id"]
    missing = client.post("/v1/models/run_nope/generate", json={"prompt": "hi"})
    assert missing.status_code == 404
    too_long = client.post(
        f"/v1/models/{run_id}/generate", json={"prompt": "hi", "max_new_tokens": 100_000}
    )
    assert too_long.status_code == 422 and "100000" not in too_long.text
    empty = client.post(f"/v1/models/{run_id}/generate", json={})
    assert empty.status_code == 422 and "prompt" in empty.json()["message"]


def test_roles(client: TestClient, keys: TestKeys, finished: dict[str, Any]) -> None:
    run_id = finished["run"]["run_id"]
    body = {"recipe": "knowledge_qa", "max_steps": 1}
    for who in (keys.bupt, keys.xidian, keys.auditor):
        assert client.post("/v1/training/runs", json=body, headers=who).status_code == 403
        assert client.post(f"/v1/training/runs/{run_id}/stop", headers=who).status_code == 403
        assert client.post(f"/v1/training/runs/{run_id}/resume", headers=who).status_code == 403
        metrics = client.get(f"/v1/training/runs/{run_id}/metrics", headers=who)
        assert metrics.status_code == 403
        generate = client.post(f"/v1/models/{run_id}/generate", json={"prompt": "x"}, headers=who)
        assert generate.status_code == 403
    assert (
        client.get("/v1/training/runs", headers={"Authorization": "Bearer nope"}).status_code == 401
    )
    # admin may do what a trainer does; a finished run neither stops nor resumes
    assert client.post(f"/v1/training/runs/{run_id}/stop", headers=keys.admin).status_code == 409
    assert client.get("/v1/training/runs/run_nope").status_code == 404


def test_bad_recipes_are_refused_naming_the_field(client: TestClient) -> None:
    unknown = client.post("/v1/training/runs", json={"recipe": "no_such_recipe"})
    assert unknown.status_code == 404
    bad = client.post(
        "/v1/training/runs",
        json={"recipe": "knowledge_qa", "overrides": {"training.learning_rate": 7.5}},
    )
    assert bad.status_code == 422
    assert "learning_rate" in bad.json()["message"] and "7.5" not in bad.text


def test_the_trainer_thread_is_on_by_default_for_an_embedded_home(
    settings: LedgerSettings, keys: TestKeys
) -> None:
    for api_settings, expected in ((ApiSettings(), True), (ApiSettings(trainer=False), False)):
        app = create_app(settings=settings, api_settings=api_settings)
        with TestClient(app, headers=keys.trainer):
            trainer = app.state.byr_trainer
            assert (trainer is not None) is expected
            # lazy: nothing is waiting, so no thread runs until a run is queued
            assert trainer is None or not trainer.running
