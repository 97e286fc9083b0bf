"""Multi-turn records through the HTTP door: submitted in each shape as a JSON body, located
issues for a broken dialogue, the record served with its turns, and its proof verified."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import ApiSettings, create_app
from ledger.settings import LedgerSettings
from tests.homes import TestKeys, issue_keys
from tests.ingest.test_dialogue import ALPACA, MESSAGES, SHAREGPT, SYSTEM, TURNS


@pytest.fixture(scope="module")
def keys(ledger_settings: LedgerSettings) -> TestKeys:
    return issue_keys(ledger_settings)


@pytest.fixture(scope="module")
def client(ledger_settings: LedgerSettings, keys: TestKeys) -> Iterator[TestClient]:
    app = create_app(settings=ledger_settings, api_settings=ApiSettings())
    with TestClient(app, headers=keys.bupt) as client:
        yield client


def test_dialogues_are_submitted_served_and_proved(client: TestClient) -> None:
    broken = {
        "conversations": [
            {"from": "human", "value": "Q1"},
            {"from": "human", "value": "Q2"},
            {"from": "gpt", "value": "A"},
        ],
        "discipline": "signal_processing",
    }
    other = {
        **MESSAGES,
        "messages": [*MESSAGES["messages"][:-1], {"role": "assistant", "content": "Aliasing."}],
    }
    response = client.post(
        "/v1/batches",
        json={"institution_id": "bupt", "records": [SHAREGPT, broken, other, ALPACA]},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    errors = [
        (i["index"], i["field"], i["code"]) for i in body["issues"] if i["severity"] == "error"
    ]
    assert errors == [(1, "conversations[1].from", "turn_order"), (3, None, "duplicate_in_batch")]
    assert len(body["record_ids"]) == 2

    record = client.get(f"/v1/records/{body['record_ids'][0]}").json()["record"]
    assert record["system"] == SYSTEM
    assert record["history"] == [list(pair) for pair in TURNS[:-1]]
    assert (record["instruction"], record["output"]) == TURNS[-1]

    listed = client.get(f"/v1/batches/{body['batch_id']}/records").json()
    assert [r["record"]["output"] for r in listed] == [TURNS[-1][1], "Aliasing."]

    bundle = client.get(f"/v1/records/{body['record_ids'][1]}/proof").json()
    assert bundle["record"]["history"] == [list(pair) for pair in TURNS[:-1]]
    report = client.post("/v1/verify", params={"offline": True}, json=bundle).json()
    assert report["ok"] is True, report
    bundle["record"]["history"][0][1] += " "
    tampered = client.post("/v1/verify", params={"offline": True}, json=bundle).json()
    assert [c["name"] for c in tampered["checks"] if not c["ok"]] == ["record_hash"]
