"""Deploy the contracts, grant the service roles, and record the deployments per chain (JSON)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

from eth_utils import to_checksum_address

from contracts import load_artifact
from ledger.chain.accounts import DevAccounts
from ledger.chain.backends import Chain, translating_errors
from ledger.chain.clients import AcademicLedgerClient, BYRTokenClient, Role
from ledger.chain.errors import ChainError, ChainMismatch
from ledger.files import private_dir, private_file

DEPLOYMENTS_VERSION = 1
GAS_DEPLOY = 3_000_000


class DeploymentsError(ChainError):
    """A deployments file is missing, malformed, or does not match the chain it names."""


@dataclass(frozen=True)
class ServiceRoles:
    """Accounts of the services that write to the chains."""

    submitter: str
    """Anchors corpus batches (SUBMITTER_ROLE on AcademicLedger)."""
    trainer: str
    """Anchors training runs (TRAINER_ROLE on AcademicLedger)."""
    minter: str
    """Mints rewards (MINTER_ROLE on BYRToken)."""

    @classmethod
    def from_dev(cls, accounts: DevAccounts) -> Self:
        return cls(
            submitter=accounts.submitter.address,
            trainer=accounts.trainer.address,
            minter=accounts.minter.address,
        )


@dataclass(frozen=True)
class ContractDeployment:
    """Where one contract lives: chain, address and the transaction that created it."""

    chain_name: str
    chain_id: int
    contract: str
    address: str
    deploy_tx: str
    block_number: int
    backend: str
    """``tester`` or ``rpc``."""
    admin: str

    def check(self, chain: Chain) -> None:
        """Raise :class:`ChainMismatch` unless ``chain`` has this chain id and contract code."""
        if chain.chain_id != self.chain_id:
            raise ChainMismatch(
                f"{self.contract} was deployed on chain {self.chain_id}, not {chain.chain_id}"
            )
        with translating_errors(f"code of {self.contract} on {chain.name}"):
            code = bytes(chain.w3.eth.get_code(to_checksum_address(self.address)))
        expected = bytes.fromhex(load_artifact(self.contract).deployed_bytecode[2:])
        if code != expected:
            raise ChainMismatch(
                f"no {self.contract} at {self.address} on chain {chain.chain_id} "
                "(was the chain reset?)"
            )


@dataclass(frozen=True)
class Deployments:
    """AcademicLedger on the academic chain and BYRToken on the incentive chain."""

    academic: ContractDeployment
    incentive: ContractDeployment

    def save(self, path: Path) -> None:
        """Write as JSON (atomically: a reader never sees half a file)."""
        private_dir(path.parent)
        data = {
            "version": DEPLOYMENTS_VERSION,
            "chains": {"academic": asdict(self.academic), "incentive": asdict(self.incentive)},
        }
        tmp = private_file(path.with_suffix(path.suffix + ".tmp"))
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Self:
        """Read a file written by :meth:`save`; :class:`DeploymentsError` if absent or bad."""
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DeploymentsError(
                f"no deployments at {path}: deploy the contracts first"
            ) from None
        except json.JSONDecodeError as exc:
            raise DeploymentsError(f"{path} is not valid JSON: {exc}") from exc
        if data.get("version") != DEPLOYMENTS_VERSION:
            raise DeploymentsError(f"{path}: unsupported version {data.get('version')!r}")
        try:
            chains = data["chains"]
            return cls(
                academic=ContractDeployment(**chains["academic"]),
                incentive=ContractDeployment(**chains["incentive"]),
            )
        except (KeyError, TypeError) as exc:
            raise DeploymentsError(f"{path} is malformed: {exc}") from exc

    def academic_client(self, chain: Chain) -> AcademicLedgerClient:
        """A client of the deployed AcademicLedger on ``chain`` (checked to be the right chain)."""
        self.academic.check(chain)
        return AcademicLedgerClient(
            chain, self.academic.address, from_block=self.academic.block_number
        )

    def token_client(self, chain: Chain) -> BYRTokenClient:
        """A client of the deployed BYRToken on ``chain`` (checked to be the right chain)."""
        self.incentive.check(chain)
        return BYRTokenClient(chain, self.incentive.address, from_block=self.incentive.block_number)


def deploy_contract(chain: Chain, *, contract: str, chain_name: str) -> ContractDeployment:
    """Deploy ``contract`` (constructor argument: the admin) signed by the chain's account."""
    artifact = load_artifact(contract)
    factory = chain.w3.eth.contract(abi=artifact.abi_list, bytecode=artifact.bytecode)
    creation = factory.constructor(chain.account.address).data_in_transaction
    receipt = chain.transact(
        to=None, data=bytes.fromhex(creation[2:]), gas=GAS_DEPLOY, abi=artifact.abi
    )
    if receipt["contractAddress"] is None:
        raise ChainError(f"deploying {contract} on {chain.name} created no contract")
    return ContractDeployment(
        chain_name=chain_name,
        chain_id=chain.chain_id,
        contract=contract,
        address=to_checksum_address(receipt["contractAddress"]),
        deploy_tx="0x" + bytes(receipt["transactionHash"]).hex(),
        block_number=int(receipt["blockNumber"]),
        backend=chain.backend.value,
        admin=chain.account.address,
    )


def deploy_contracts(*, academic: Chain, incentive: Chain, roles: ServiceRoles) -> Deployments:
    """Deploy AcademicLedger on ``academic`` and BYRToken on ``incentive``, and grant the roles.

    Each chain's signing account becomes the contract's admin.
    """
    ledger = deploy_contract(academic, contract="AcademicLedger", chain_name="academic")
    token = deploy_contract(incentive, contract="BYRToken", chain_name="incentive")
    deployments = Deployments(academic=ledger, incentive=token)
    ledger_client = deployments.academic_client(academic)
    ledger_client.grant_role(role=Role.SUBMITTER, account=roles.submitter)
    ledger_client.grant_role(role=Role.TRAINER, account=roles.trainer)
    deployments.token_client(incentive).grant_role(role=Role.MINTER, account=roles.minter)
    return deployments
