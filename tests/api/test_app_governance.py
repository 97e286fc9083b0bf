"""One batch carried through governance, anchoring and reward by the API (``wait=true``), then
proved on chain. Governance loads the packaged sentence-embedding models: slow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import ApiSettings, create_app
from ledger.settings import LedgerSettings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(ledger_settings: LedgerSettings) -> Iterator[TestClient]:
    settings = ledger_settings
    # Keys are not what this module tests: every route is open.
    api_settings = ApiSettings(insecure_local=True)
    with TestClient(create_app(settings=settings, api_settings=api_settings)) as client:
        yield client


@pytest.fixture(scope="module")
def governed(client: TestClient) -> dict[str, Any]:
    response = client.post(
        "/v1/batches",
        params={"institution_id": "bupt", "wait": True, "filename": "small_batch.json"},
        content=(EXAMPLES / "small_batch.json").read_bytes(),
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_wait_governs_anchors_and_rewards(governed: dict[str, Any]) -> None:
    assert governed["status"] == "rewarded"
    assert governed["accepted"] >= 1
    assert governed["tx_hash"].startswith("0x") and governed["block_number"] >= 1
    assert int(governed["reward_wei"]) > 0 and governed["reward_tx_hash"]
    stages = {stage for round_ in governed["pipeline"] for stage in round_}
    assert stages == {"governance", "anchor", "reward"}


def test_report_holds_each_records_decision(client: TestClient, governed: dict[str, Any]) -> None:
    report = client.get(f"/v1/batches/{governed['batch_id']}/report").json()
    assert report["governed"] is True and report["status"] == "rewarded"
    assert report["accepted"] == governed["accepted"]
    assert report["reward_wei"] == governed["reward_wei"]
    assert report["anchor_tx_hash"] == governed["tx_hash"]
    assert [d["record_id"] for d in report["decisions"]] == governed["record_ids"]
    records = {
        r["record_id"]: r for r in client.get(f"/v1/batches/{governed['batch_id']}/records").json()
    }
    for decision in report["decisions"]:
        record = records[decision["record_id"]]
        assert decision["scores"] and decision["source_line"] == record["source_line"]
        assert record["status"] == ("accepted" if decision["accepted"] else "rejected")
    assert sum(report["reasons"].values()) == sum(len(d["reasons"]) for d in report["decisions"])


def test_anchored_proof_verifies_online(client: TestClient, governed: dict[str, Any]) -> None:
    accepted = client.get(f"/v1/batches/{governed['batch_id']}/records?status=accepted").json()
    bundle = client.get(f"/v1/records/{accepted[0]['record_id']}/proof").json()
    assert bundle["tx_hash"] == governed["tx_hash"]
    report = client.post("/v1/verify", json=bundle).json()
    assert report["ok"] is True, report
    assert {"anchor_tx", "anchored_root", "verify_record"} <= {c["name"] for c in report["checks"]}


def test_balances_and_status_show_the_reward(client: TestClient, governed: dict[str, Any]) -> None:
    balances = client.get("/v1/balances").json()
    bupt = client.get("/v1/institutions/bupt").json()
    assert balances == [
        {
            "account": bupt["account"],
            "institution_id": "bupt",
            "amount_wei": governed["reward_wei"],
            "rewards": 1,
        }
    ]
    status = client.get("/v1/status").json()
    assert status["rewarded_wei_total"] == governed["reward_wei"]
    assert status["pending_jobs"] == {} and status["projection_lag"] == 0


def test_dispatch_with_nothing_pending_does_nothing(
    client: TestClient, governed: dict[str, Any]
) -> None:
    before = client.get("/v1/status").json()["head_position"]
    assert client.post("/v1/dispatch").json() == {"rounds": []}
    assert client.get("/v1/status").json()["head_position"] == before
