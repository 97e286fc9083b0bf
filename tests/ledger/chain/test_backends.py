"""Connections: errors at the boundary, anvil nodes, development accounts, chain ids."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_utils import keccak

from ledger.chain import (
    ACADEMIC_CHAIN_ID,
    INCENTIVE_CHAIN_ID,
    ServiceRoles,
    connect_rpc,
    connect_tester,
    deploy_contracts,
    dev_accounts,
)
from ledger.chain.accounts import DEV_BALANCE_WEI, DEV_PRIVATE_KEYS
from ledger.chain.anvil import AnvilNode, free_port, rpc_chain_id, stop_pid
from ledger.chain.errors import ChainMismatch, ChainUnavailable, TransactionRejected
from tests.ledger.chain.conftest import require_anvil


@pytest.fixture
def anvil_node() -> Iterator[AnvilNode]:
    """A node of its own, for tests that stop or restart it."""
    require_anvil()
    node = AnvilNode(chain_id=ACADEMIC_CHAIN_ID).start()
    yield node
    node.stop()


def test_two_tester_chains_coexist_with_their_own_ids() -> None:
    academic = connect_tester(chain_id=ACADEMIC_CHAIN_ID)
    incentive = connect_tester(chain_id=INCENTIVE_CHAIN_ID)
    assert (academic.w3.eth.chain_id, incentive.w3.eth.chain_id) == (
        ACADEMIC_CHAIN_ID,
        INCENTIVE_CHAIN_ID,
    )
    receiver = dev_accounts().institutions[5].address
    academic.transact(to=receiver, data=b"", gas=21_000, abi=[], value=7)
    assert academic.balance(receiver) == DEV_BALANCE_WEI + 7
    assert incentive.balance(receiver) == DEV_BALANCE_WEI


def test_tester_chain_funds_the_development_accounts() -> None:
    chain = connect_tester(chain_id=ACADEMIC_CHAIN_ID)
    for account in dev_accounts().all:
        assert chain.balance(account.address) == DEV_BALANCE_WEI


def test_tester_refuses_a_transaction_signed_for_another_chain() -> None:
    chain = connect_tester(chain_id=ACADEMIC_CHAIN_ID)
    signed = dev_accounts().deployer.sign_transaction(
        {
            "type": 2,
            "chainId": INCENTIVE_CHAIN_ID,
            "nonce": 0,
            "gas": 21_000,
            "maxFeePerGas": 10**10,
            "maxPriorityFeePerGas": 10**9,
            "to": dev_accounts().minter.address,
            "value": 1,
        }
    )
    with pytest.raises(TransactionRejected, match="for chain"):
        chain.w3.eth.send_raw_transaction(signed.raw_transaction)
    assert chain.block_number() == 0


def test_unreachable_node_is_unavailable() -> None:
    with pytest.raises(ChainUnavailable):
        connect_rpc(url=f"http://127.0.0.1:{free_port()}", private_key=DEV_PRIVATE_KEYS[0])


@pytest.mark.anvil
def test_anvil_serves_the_development_accounts(anvil_node: AnvilNode) -> None:
    chain = connect_rpc(url=anvil_node.url, private_key=DEV_PRIVATE_KEYS[0])
    assert list(chain.w3.eth.accounts) == [a.address for a in dev_accounts().all]
    assert chain.balance(dev_accounts().trainer.address) == DEV_BALANCE_WEI


@pytest.mark.anvil
def test_wrong_chain_id_is_refused(anvil_node: AnvilNode) -> None:
    with pytest.raises(ChainMismatch):
        connect_rpc(
            url=anvil_node.url, private_key=DEV_PRIVATE_KEYS[0], chain_id=INCENTIVE_CHAIN_ID
        )


@pytest.mark.anvil
def test_a_node_that_goes_down_is_unavailable_for_reads_and_writes(anvil_node: AnvilNode) -> None:
    chain = connect_rpc(
        url=anvil_node.url, private_key=DEV_PRIVATE_KEYS[0], chain_id=ACADEMIC_CHAIN_ID
    )
    assert chain.block_number() == 0
    anvil_node.stop()
    with pytest.raises(ChainUnavailable):
        chain.block_number()
    with pytest.raises(ChainUnavailable):
        chain.transact(to=dev_accounts().minter.address, data=b"", gas=21_000, abi=[], value=1)


@pytest.mark.anvil
def test_anvil_state_file_keeps_contracts_and_logs_across_restarts(tmp_path: Path) -> None:
    require_anvil()
    accounts = dev_accounts()
    state = tmp_path / "academic.json"
    node = AnvilNode(chain_id=ACADEMIC_CHAIN_ID, state_path=state).start()
    try:
        academic = connect_rpc(url=node.url, private_key=DEV_PRIVATE_KEYS[0])
        deployments = deploy_contracts(
            academic=academic,
            incentive=connect_tester(chain_id=INCENTIVE_CHAIN_ID),
            roles=ServiceRoles.from_dev(accounts),
        )
        ledger = deployments.academic_client(academic)
        ledger.register_institution(institution_id="bupt", account=accounts.institutions[0].address)
        anchored = ledger.with_signer(accounts.submitter).anchor_batch(
            batch_id="batch-1",
            merkle_root=keccak(text="root"),
            metadata_hash=keccak(text="meta"),
            institution_id="bupt",
            record_count=3,
        )
    finally:
        node.stop()
    assert state.is_file()
    with AnvilNode(chain_id=ACADEMIC_CHAIN_ID, state_path=state, port=node.port):
        record = deployments.academic_client(academic).find_batch_anchor("batch-1")
        assert record is not None and record.tx_hash == anchored.tx_hash


@pytest.mark.anvil
def test_detached_node_is_stopped_by_pid() -> None:
    require_anvil()
    node = AnvilNode(chain_id=INCENTIVE_CHAIN_ID).start(detach=True)
    assert node.pid is not None
    assert rpc_chain_id(node.url) == INCENTIVE_CHAIN_ID
    assert stop_pid(node.pid)
    assert rpc_chain_id(node.url) is None
    assert not stop_pid(node.pid)
