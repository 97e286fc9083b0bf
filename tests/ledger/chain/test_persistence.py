"""The embedded tester chain persisted to a file, reopened by a new process with all history."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from eth_utils import keccak

from ledger.chain import (
    ACADEMIC_CHAIN_ID,
    INCENTIVE_CHAIN_ID,
    ServiceRoles,
    connect_tester,
    deploy_contracts,
    dev_accounts,
)
from ledger.chain.errors import BatchAlreadyAnchored, ChainMismatch

REPO = Path(__file__).resolve().parents[3]


def test_persisted_chain_survives_a_new_process(tmp_path: Path) -> None:
    accounts = dev_accounts()
    academic_db, incentive_db = tmp_path / "academic.db", tmp_path / "incentive.db"
    deployments_file = tmp_path / "deployments.json"
    academic = connect_tester(chain_id=ACADEMIC_CHAIN_ID, state_path=academic_db)
    incentive = connect_tester(chain_id=INCENTIVE_CHAIN_ID, state_path=incentive_db)
    deployments = deploy_contracts(
        academic=academic, incentive=incentive, roles=ServiceRoles.from_dev(accounts)
    )
    deployments.save(deployments_file)
    ledger = deployments.academic_client(academic)
    ledger.register_institution(institution_id="bupt", account=accounts.institutions[0].address)
    anchored = ledger.with_signer(accounts.submitter).anchor_batch(
        batch_id="batch-1",
        merkle_root=keccak(text="root-1"),
        metadata_hash=keccak(text="meta-1"),
        institution_id="bupt",
        record_count=3,
    )
    rewarded = (
        deployments.token_client(incentive)
        .with_signer(accounts.minter)
        .mint(
            to=accounts.institutions[0].address,
            amount_wei=42,
            contribution_id=keccak(text="contribution-1"),
            academic_ref=keccak(text="root-1"),
        )
    )
    deployer_balance = academic.balance(accounts.deployer.address)
    academic.close()
    incentive.close()

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.ledger.chain.persisted_chain_check",
            str(academic_db),
            str(incentive_db),
            str(deployments_file),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["anchor_tx"] == anchored.tx_hash
    assert seen["anchor_block"] == anchored.block_number
    assert seen["anchor_root"] == keccak(text="root-1").hex()
    assert seen["receipt_status"] == 1
    assert seen["reward_tx"] == rewarded.tx_hash
    assert seen["balance"] == 42
    assert seen["deployer_balance"] == deployer_balance
    assert seen["nonce_before"] == 1  # the submitter sent batch-1
    assert seen["block_number"] == anchored.block_number + 1

    # Back in this process: the other process's batch is there, and nonces continue.
    academic = connect_tester(chain_id=ACADEMIC_CHAIN_ID, state_path=academic_db)
    ledger = deployments.academic_client(academic)
    second = ledger.find_batch_anchor("batch-2")
    assert second is not None and second.tx_hash == seen["second_tx"]
    assert second.record_count == 7
    with pytest.raises(BatchAlreadyAnchored):
        ledger.with_signer(accounts.submitter).anchor_batch(
            batch_id="batch-2",
            merkle_root=keccak(text="root-3"),
            metadata_hash=keccak(text="meta-3"),
            institution_id="bupt",
            record_count=1,
        )
    third = ledger.with_signer(accounts.submitter).anchor_batch(
        batch_id="batch-3",
        merkle_root=keccak(text="root-3"),
        metadata_hash=keccak(text="meta-3"),
        institution_id="bupt",
        record_count=1,
    )
    assert third.block_number == seen["block_number"] + 1
    academic.close()


def test_two_connections_to_one_state_file_stay_in_step(tmp_path: Path) -> None:
    """Each connection sees the other's writes before its next request, as processes do."""
    accounts = dev_accounts()
    path = tmp_path / "academic.db"
    first = connect_tester(chain_id=ACADEMIC_CHAIN_ID, state_path=path)
    incentive = connect_tester(chain_id=INCENTIVE_CHAIN_ID)
    deployments = deploy_contracts(
        academic=first, incentive=incentive, roles=ServiceRoles.from_dev(accounts)
    )
    second = connect_tester(chain_id=ACADEMIC_CHAIN_ID, state_path=path)
    one = deployments.academic_client(first)
    two = deployments.academic_client(second)

    one.register_institution(institution_id="bupt", account=accounts.institutions[0].address)
    assert two.institution("bupt") is not None
    two.register_institution(institution_id="pku", account=accounts.institutions[1].address)
    assert one.institution("pku") is not None
    # Both sign as the deployer: each fetches the nonce the other left.
    one.register_institution(institution_id="zju", account=accounts.institutions[2].address)
    assert first.block_number() == second.block_number()
    first.close()
    second.close()
    incentive.close()


def test_state_file_of_another_chain_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "academic.db"
    connect_tester(chain_id=ACADEMIC_CHAIN_ID, state_path=path).close()
    with pytest.raises(ChainMismatch):
        connect_tester(chain_id=INCENTIVE_CHAIN_ID, state_path=path)


def test_reopened_empty_chain_keeps_its_genesis(tmp_path: Path) -> None:
    path = tmp_path / "academic.db"
    chain = connect_tester(chain_id=ACADEMIC_CHAIN_ID, state_path=path)
    genesis = chain.w3.eth.get_block(0)["hash"]
    chain.close()
    again = connect_tester(chain_id=ACADEMIC_CHAIN_ID, state_path=path)
    assert again.w3.eth.get_block(0)["hash"] == genesis
    assert again.block_number() == 0
    again.close()
