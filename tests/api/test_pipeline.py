"""The pipeline table: every job kind has one stage, an unknown kind fails loudly, and the drivers
(``drain``, which ``--wait``, ``byr dispatch`` and ``POST /v1/dispatch`` call, and each worker)
perform their jobs through the same table.

Batches here are decided by appending ``BatchGoverned`` directly, so no governance model loads;
anchoring and rewarding run for real on the embedded chains.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import ApiSettings, create_app
from api.composition import Parts, pipeline_stages
from api.pipeline import Pipeline, Stage, UnknownJobKind
from api.workers import WORKER_STAGES, WorkerKind, run_worker, worker_step
from ledger.batching import RecordInput
from ledger.events import BatchGoverned
from ledger.ids import batch_stream
from ledger.jobs import JobHandler, JobResult
from ledger.projections.outbox import JobKind
from tests.homes import initialized_settings


@dataclass
class Recording:
    """Wraps a stage's real handler and notes each job it performs."""

    inner: JobHandler
    kind: JobKind
    log: list[tuple[JobKind, str]] = field(default_factory=list)

    def perform(self, key: str) -> JobResult:
        self.log.append((self.kind, key))
        return self.inner.perform(key)


def recorded_pipeline(parts: Parts) -> list[tuple[JobKind, str]]:
    """Replace ``parts.pipeline`` by the same table with each handler recorded; returns the log
    every stage writes to."""
    performed: list[tuple[JobKind, str]] = []

    def recorded(stage: Stage) -> Stage:
        def handler() -> JobHandler:
            return Recording(stage.handler(), stage.kind, performed)

        return Stage(stage.kind, stage.name, handler, detail_name=stage.detail_name)

    stages = [recorded(stage) for stage in pipeline_stages(parts)]
    parts.__dict__["pipeline"] = Pipeline(ledger=parts.ledger, stages=stages)
    return performed


def decided_batch(parts: Parts, *, n: int = 3, start: int = 0) -> str:
    """A submitted batch whose records governance accepted (decision appended directly)."""
    submitted = parts.ledger.submit_batch(
        institution_id="bupt",
        source_name="bupt.jsonl",
        records=[
            RecordInput(
                canonical={
                    "instruction": f"What does layer {start + i} of the OSI model do?",
                    "input": "",
                    "output": f"Layer {start + i} carries data for the layer above it.",
                    "discipline": "computer_networks",
                    "task_type": "knowledge_qa",
                    "language": "en",
                    "license": "CC-BY-4.0",
                    "institution_id": "bupt",
                }
            )
            for i in range(n)
        ],
        policy_version="2026.11-1",
    )
    parts.ledger.append(
        batch_stream(submitted.batch_id),
        [
            BatchGoverned(
                batch_id=submitted.batch_id,
                institution_id="bupt",
                policy_version="2026.11-1",
                accepted_record_ids=submitted.record_ids,
                rejected={},
                decisions=[],
                contribution_score=float(n),
                reward_wei=str(10**18),
            )
        ],
    )
    return submitted.batch_id


@pytest.fixture
def parts(tmp_path: Path) -> Iterator[Parts]:
    with Parts(initialized_settings(tmp_path / "home")) as parts:
        yield parts


def test_every_job_kind_has_exactly_one_stage(parts: Parts) -> None:
    kinds = [stage.kind for stage in pipeline_stages(parts)]
    assert sorted(kinds) == sorted(JobKind)
    assert len(set(kinds)) == len(kinds)
    names = [stage.name for stage in pipeline_stages(parts)]
    assert len(set(names)) == len(names)
    # Every worker runs stages of the table (the feed worker none: it only projects).
    for kind, stage_kinds in WORKER_STAGES.items():
        assert set(stage_kinds) <= set(kinds), kind


def test_an_unknown_job_kind_fails_loudly(parts: Parts) -> None:
    without_rewards = [s for s in pipeline_stages(parts) if s.kind is not JobKind.REWARD]
    pipeline = Pipeline(ledger=parts.ledger, stages=without_rewards)
    with pytest.raises(UnknownJobKind, match="reward"):
        pipeline.run_once(JobKind.REWARD)
    head = parts.log.head_position()
    with pytest.raises(UnknownJobKind):
        pipeline.step([JobKind.ANCHOR, JobKind.REWARD])
    assert parts.log.head_position() == head  # nothing ran before the unknown kind was found
    with pytest.raises(ValueError, match="twice"):
        Pipeline(ledger=parts.ledger, stages=[*without_rewards, without_rewards[0]])


def test_drain_runs_the_table_and_a_plain_submission_runs_nothing(parts: Parts) -> None:
    performed = recorded_pipeline(parts)
    batch_id = decided_batch(parts)
    rounds = parts.pipeline.drain()
    assert performed == [(JobKind.ANCHOR, batch_id), (JobKind.REWARD, batch_id)]
    assert [set(r) for r in rounds] == [{"anchor", "reward"}]
    assert rounds[0]["anchor"]["done"] == [batch_id]
    assert parts.ledger.batch(batch_id).status == "rewarded"

    # Without --wait a submission only records: no stage runs. (With --wait it drains this same
    # pipeline, governance first: tests/api/test_app_governance.py and test_cli_e2e.py run that
    # path with the governance models loaded.)
    performed.clear()
    outcome = parts.submission.submit_bytes(
        b'{"instruction": "What is a checksum?", "output": "A short value computed from data '
        b'to detect accidental changes.", "discipline": "computer_networks"}\n',
        source_name="one.jsonl",
        institution_id="bupt",
        wait=False,
    )
    assert outcome.batch is not None and outcome.pipeline == []
    assert performed == []


def test_workers_and_the_http_door_run_the_table(parts: Parts) -> None:
    performed = recorded_pipeline(parts)
    first = decided_batch(parts, start=0)
    assert run_worker(WorkerKind.ANCHOR, parts, max_steps=1, install_signal_handlers=False) == 1
    assert run_worker(WorkerKind.REWARDS, parts, max_steps=1, install_signal_handlers=False) == 1
    assert performed == [(JobKind.ANCHOR, first), (JobKind.REWARD, first)]

    # The feed worker runs no stage: its step only projects.
    step = worker_step(WorkerKind.FEED, parts)
    items, result = step()
    assert result.stages == {} and items == result.events_projected

    performed.clear()
    second = decided_batch(parts, start=10)
    admin = parts.keys.create(role="admin", label="dispatch test")
    app = create_app(parts=parts, api_settings=ApiSettings())
    with TestClient(app) as client:
        response = client.post("/v1/dispatch", headers={"Authorization": f"Bearer {admin.key}"})
    assert response.status_code == 200, response.text
    assert performed == [(JobKind.ANCHOR, second), (JobKind.REWARD, second)]
    assert response.json()["rounds"][0]["reward"]["done"] == [second]
