"""Submissions that do not block the server: intake runs outside the writer's turn, and with
``Prefer: respond-async`` the answer is 202 with a status URL that later holds the outcome."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import ApiSettings, create_app
from ledger.settings import LedgerSettings
from tests.api.test_app import GOOD
from tests.homes import TestKeys, issue_keys


@pytest.fixture(scope="module")
def keys(ledger_settings: LedgerSettings) -> TestKeys:
    return issue_keys(ledger_settings)


@pytest.fixture(scope="module")
def client(ledger_settings: LedgerSettings, keys: TestKeys) -> Iterator[TestClient]:
    app = create_app(settings=ledger_settings, api_settings=ApiSettings())
    with TestClient(app, headers=keys.bupt) as client:
        yield client


def poll(client: TestClient, url: str, *, headers: dict[str, str] | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body = client.get(url, headers=headers).json()
        if body["status"] in ("done", "failed"):
            return dict(body)
        time.sleep(0.1)
    raise AssertionError(f"{url} did not finish")


def test_respond_async_answers_202_then_the_outcome(client: TestClient, keys: TestKeys) -> None:
    accepted = client.post(
        "/v1/batches",
        json={"institution_id": "bupt", "records": GOOD},
        headers={"Prefer": "respond-async"},
    )
    assert accepted.status_code == 202, accepted.text
    assert accepted.headers["preference-applied"] == "respond-async"
    url = accepted.headers["location"]
    assert url == accepted.json()["status_url"] and url.startswith("/v1/submissions/sub_")
    done = poll(client, url)
    assert done["status"] == "done" and done["http_status"] == 201
    batch_id = done["result"]["batch_id"]
    assert client.get(f"/v1/batches/{batch_id}").json()["record_count"] == 3
    # Only the submitting institution reads it; an unknown id is a 404.
    assert client.get(url, headers=keys.xidian).status_code == 403
    assert client.get(url, headers=keys.auditor).status_code == 403
    assert client.get("/v1/submissions/sub_nope").status_code == 404


def test_a_failing_async_submission_reports_what_a_sync_one_would(client: TestClient) -> None:
    accepted = client.post(
        "/v1/batches",
        json={"institution_id": "bupt", "records": [{"instruction": "no output"}]},
        headers={"Prefer": "respond-async"},
    )
    assert accepted.status_code == 202
    failed = poll(client, accepted.headers["location"])
    assert failed["status"] == "failed" and failed["http_status"] == 422
    assert failed["result"]["error"] == "BatchNotRecorded" and failed["result"]["issues"]


def test_reads_and_status_answer_while_a_submission_is_read(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow intake (a big upload) holds no writer's turn: status (which takes the writer's
    turn) and reads answer meanwhile. (Intake in the server's threads here, where a test can
    slow it down; the worker process is the default.)"""
    state = client.app.state.byr  # type: ignore[attr-defined]
    monkeypatch.setitem(state.parts.__dict__, "intake_pool", None)
    service = state.parts.submission
    original = service.read_bytes
    started, release = threading.Event(), threading.Event()

    def slow_read(*args: Any, **kwargs: Any) -> Any:
        started.set()
        release.wait(30)
        return original(*args, **kwargs)

    service.read_bytes = slow_read  # type: ignore[method-assign]
    try:
        accepted = client.post(
            "/v1/batches",
            json={"institution_id": "bupt", "records": GOOD[:1]},
            headers={"Prefer": "respond-async"},
        )
        assert accepted.status_code == 202
        assert started.wait(30)
        t0 = time.monotonic()
        assert client.get("/v1/status").status_code == 200
        assert client.get("/v1/batches").status_code == 200
        assert time.monotonic() - t0 < 10  # answered while intake still runs
        assert client.get(accepted.headers["location"]).json()["status"] == "reading"
    finally:
        release.set()
        service.read_bytes = original  # type: ignore[method-assign]
    assert poll(client, accepted.headers["location"])["status"] == "done"


def test_the_intake_worker_records_on_the_sqlite_log(tmp_path: Path) -> None:
    """On the embedded log the worker process reads and records a batch; what it records is the
    server's at once (the answer, the reads, the key it came with), and a ledger error raised in
    the worker (an inactive institution) reaches the client as its problem document."""
    from api.composition import Parts
    from ledger.events import InstitutionDeactivated, decode
    from ledger.ids import batch_stream, institution_stream
    from tests.homes import initialized_settings

    settings = initialized_settings(tmp_path / "home")
    keys = issue_keys(settings)
    with Parts(settings) as parts:
        assert parts.intake_pool is not None and parts.intake_pool.records
        parts.ledger.append(
            institution_stream("xidian"),
            [InstitutionDeactivated(institution_id="xidian", reason="left the consortium")],
        )
    kafka = settings.model_copy(update={"event_log": "kafka://127.0.0.1:9/byr"})
    with Parts(kafka) as parts:
        pool = parts.intake_pool
        assert pool is not None and not pool.records  # Kafka: the server records what it reads

    app = create_app(settings=settings, api_settings=ApiSettings())
    with TestClient(app, headers=keys.bupt) as client:
        made = client.post("/v1/batches", json={"institution_id": "bupt", "records": GOOD})
        assert made.status_code == 201, made.text
        batch_id = made.json()["batch_id"]
        assert client.get(f"/v1/batches/{batch_id}").json()["record_count"] == 3
        refused = client.post(
            "/v1/batches", json={"institution_id": "xidian", "records": GOOD}, headers=keys.xidian
        )
        assert refused.status_code == 422, refused.text
        assert "not active" in refused.json()["message"]
    with Parts(settings) as parts:
        (envelope,) = parts.log.read_stream(batch_stream(batch_id))
        assert decode(envelope).submitted_by == keys.ids["bupt"]
        assert [b.institution_id for b in parts.ledger.batches()] == ["bupt"]
