"""Deployments recorded as JSON and read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger.chain import (
    ACADEMIC_CHAIN_ID,
    INCENTIVE_CHAIN_ID,
    Deployments,
    DeploymentsError,
    ServiceRoles,
    connect_tester,
    deploy_contracts,
    dev_accounts,
)
from ledger.chain.errors import ChainMismatch


@pytest.fixture(scope="module")
def deployed() -> Deployments:
    return deploy_contracts(
        academic=connect_tester(chain_id=ACADEMIC_CHAIN_ID, name="academic"),
        incentive=connect_tester(chain_id=INCENTIVE_CHAIN_ID, name="incentive"),
        roles=ServiceRoles.from_dev(dev_accounts()),
    )


def test_deployments_round_trip(tmp_path: Path, deployed: Deployments) -> None:
    path = tmp_path / "var" / "deployments.json"
    deployed.save(path)
    assert Deployments.load(path) == deployed
    data = json.loads(path.read_text())
    assert data["chains"]["academic"]["contract"] == "AcademicLedger"
    assert data["chains"]["incentive"]["chain_id"] == INCENTIVE_CHAIN_ID
    assert data["chains"]["academic"]["backend"] == "tester"
    assert data["chains"]["academic"]["deploy_tx"].startswith("0x")


def test_missing_or_bad_deployments_are_reported(tmp_path: Path) -> None:
    with pytest.raises(DeploymentsError, match="no deployments"):
        Deployments.load(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(DeploymentsError, match="not valid JSON"):
        Deployments.load(bad)
    bad.write_text(json.dumps({"version": 99}))
    with pytest.raises(DeploymentsError, match="unsupported version"):
        Deployments.load(bad)
    bad.write_text(json.dumps({"version": 1, "chains": {"academic": {}}}))
    with pytest.raises(DeploymentsError, match="malformed"):
        Deployments.load(bad)


def test_a_fresh_chain_has_no_contract_where_the_deployments_say(deployed: Deployments) -> None:
    fresh = connect_tester(chain_id=ACADEMIC_CHAIN_ID)
    with pytest.raises(ChainMismatch, match="was the chain reset"):
        deployed.academic_client(fresh)
