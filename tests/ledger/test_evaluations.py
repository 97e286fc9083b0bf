"""EvaluationCompleted and the evaluations read model: recorded once per report, read back by id
and in order, rebuilt identically by a replay."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.application import CorpusLedger, NotFound
from ledger.eventlog import open_event_log
from ledger.eventlog.sqlite import sqlite_url
from ledger.events import EvaluatedModel, EvaluationCompleted, decode
from ledger.ids import evaluation_stream
from ledger.projections.base import ProjectionStore


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[CorpusLedger]:
    ledger = CorpusLedger(
        log=open_event_log(sqlite_url(tmp_path / "events.db")),
        store=ProjectionStore(tmp_path / "state.db"),
    )
    yield ledger
    ledger.log.close()
    ledger.store.close()


def completed(report_id: str) -> EvaluationCompleted:
    return EvaluationCompleted(
        report_id=report_id,
        report_sha256="ab" * 32,
        report_dir=f"/home/eval/reports/{report_id}",
        base_model="tiny",
        base_model_hash="cd" * 32,
        models=[
            EvaluatedModel(name="base", items_scored=4, overall=0.25),
            EvaluatedModel(
                name="run-1",
                adapter_hash="ef" * 32,
                run_id="run-1",
                items_scored=3,
                items_refused=1,
                overall=0.3,
                forgetting_flags=2,
            ),
        ],
        benchmark_name="seed",
        benchmark_version="1.0.0",
        benchmark_hash="12" * 32,
        items=4,
        cells=2,
        control_items=2,
        started_at="2026-01-01T00:00:00+00:00",
        seconds=12.5,
    )


def test_an_evaluation_is_recorded_and_read_back(ledger: CorpusLedger) -> None:
    for report_id in ("eval-1", "eval-2"):
        ledger.append(evaluation_stream(report_id), [completed(report_id)], expected_version=0)
    assert [e.report_id for e in ledger.evaluations()] == ["eval-1", "eval-2"]
    view = ledger.evaluation("eval-2")
    assert view.report_sha256 == "ab" * 32 and view.items == 4 and view.seconds == 12.5
    assert view.models[1] == {
        "name": "run-1",
        "adapter_hash": "ef" * 32,
        "run_id": "run-1",
        "items_scored": 3,
        "items_refused": 1,
        "overall": 0.3,
        "forgetting_flags": 2,
    }
    (envelope,) = ledger.log.read_stream(evaluation_stream("eval-2"))
    assert decode(envelope) == completed("eval-2")
    assert view.completed_at == envelope.occurred_at
    with pytest.raises(NotFound, match="eval-3"):
        ledger.evaluation("eval-3")
    report = ledger.replay()
    assert report.equal and report.tables["evaluations"] == 2
