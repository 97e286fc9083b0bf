"""Fixtures shared by the chain tests: both backends, deployed contracts, a small Merkle tree."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_abi import encode
from eth_utils import keccak

from ledger.chain import (
    ACADEMIC_CHAIN_ID,
    INCENTIVE_CHAIN_ID,
    AcademicLedgerClient,
    BYRTokenClient,
    Chain,
    Deployments,
    DevAccounts,
    ServiceRoles,
    connect_rpc,
    connect_tester,
    deploy_contracts,
    dev_accounts,
)
from ledger.chain.accounts import DEV_PRIVATE_KEYS
from ledger.chain.anvil import ANVIL_BINARY, AnvilNode

INSTITUTION = "bupt"
OTHER_INSTITUTION = "tsinghua"


def require_anvil() -> None:
    if not ANVIL_BINARY.is_file():
        pytest.skip(f"anvil binary not installed at {ANVIL_BINARY} (run `npm ci`)")


@pytest.fixture(scope="session")
def anvil_nodes() -> Iterator[tuple[AnvilNode, AnvilNode]]:
    """Two anvil nodes, academic and incentive chain ids, for the whole session."""
    require_anvil()
    academic = AnvilNode(chain_id=ACADEMIC_CHAIN_ID).start()
    try:
        incentive = AnvilNode(chain_id=INCENTIVE_CHAIN_ID).start()
    except BaseException:
        academic.stop()
        raise
    yield academic, incentive
    incentive.stop()
    academic.stop()


@dataclass(frozen=True)
class ChainPair:
    academic: Chain
    incentive: Chain


@pytest.fixture(scope="module", params=["tester", pytest.param("anvil", marks=pytest.mark.anvil)])
def chains(request: pytest.FixtureRequest) -> Iterator[ChainPair]:
    """The academic and incentive chains on one backend (the test id names which)."""
    if request.param == "tester":
        pair = ChainPair(
            academic=connect_tester(chain_id=ACADEMIC_CHAIN_ID, name="academic"),
            incentive=connect_tester(chain_id=INCENTIVE_CHAIN_ID, name="incentive"),
        )
    else:
        academic_node, incentive_node = request.getfixturevalue("anvil_nodes")
        pair = ChainPair(
            academic=connect_rpc(
                url=academic_node.url, private_key=DEV_PRIVATE_KEYS[0], name="academic"
            ),
            incentive=connect_rpc(
                url=incentive_node.url, private_key=DEV_PRIVATE_KEYS[0], name="incentive"
            ),
        )
    yield pair
    pair.academic.close()
    pair.incentive.close()


@dataclass(frozen=True)
class World:
    """Deployed contracts with one client per role."""

    chains: ChainPair
    deployments: Deployments
    accounts: DevAccounts
    admin: AcademicLedgerClient
    submitter: AcademicLedgerClient
    trainer: AcademicLedgerClient
    token_admin: BYRTokenClient
    minter: BYRTokenClient


@pytest.fixture(scope="module")
def world(chains: ChainPair) -> World:
    """Contracts deployed with the service roles granted and institution ``bupt`` registered."""
    accounts = dev_accounts()
    deployments = deploy_contracts(
        academic=chains.academic,
        incentive=chains.incentive,
        roles=ServiceRoles.from_dev(accounts),
    )
    admin = deployments.academic_client(chains.academic)
    admin.register_institution(institution_id=INSTITUTION, account=accounts.institutions[0].address)
    token_admin = deployments.token_client(chains.incentive)
    return World(
        chains=chains,
        deployments=deployments,
        accounts=accounts,
        admin=admin,
        submitter=admin.with_signer(accounts.submitter),
        trainer=admin.with_signer(accounts.trainer),
        token_admin=token_admin,
        minter=token_admin.with_signer(accounts.minter),
    )


@pytest.fixture
def isolated(world: World) -> Iterator[World]:
    """``world``, with every change a test makes to either chain undone afterwards."""
    snapshots = (world.chains.academic.snapshot(), world.chains.incentive.snapshot())
    yield world
    world.chains.academic.revert(snapshots[0])
    world.chains.incentive.revert(snapshots[1])


# ------------------------------------------------------------------ a small StandardMerkleTree


def standard_leaf(record_hash: bytes, salt: bytes) -> bytes:
    """OpenZeppelin StandardMerkleTree leaf of (record_hash, salt) typed (bytes32, bytes32)."""
    return keccak(keccak(encode(["bytes32", "bytes32"], [record_hash, salt])))


def _node(a: bytes, b: bytes) -> bytes:
    return keccak(min(a, b) + max(a, b))


@dataclass(frozen=True)
class SmallTree:
    """Four leaves, their sorted-pair root and the proof of each leaf."""

    leaves: tuple[bytes, ...]
    root: bytes
    proofs: tuple[tuple[bytes, ...], ...]


@pytest.fixture
def small_tree() -> SmallTree:
    leaves = tuple(
        standard_leaf(keccak(text=f"record {i}"), keccak(text=f"salt {i}")) for i in range(4)
    )
    left, right = _node(leaves[0], leaves[1]), _node(leaves[2], leaves[3])
    proofs = (
        (leaves[1], right),
        (leaves[0], right),
        (leaves[3], left),
        (leaves[2], left),
    )
    return SmallTree(leaves=leaves, root=_node(left, right), proofs=proofs)
