"""Typed clients of the ledger's contracts: :class:`AcademicLedgerClient` and
:class:`BYRTokenClient`.

String ids (batch, institution, run) become bytes32 keys with :func:`ledger.ids.id_key`. Writes
return a :class:`~ledger.chain.backends.TxResult` or raise the typed errors of
:mod:`ledger.chain.errors`; the ``find_*`` lookups read the contract's events, which is how a
dispatcher recovers after a crash and how an auditor checks a transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3.contract import Contract
from web3.types import EventData, TxReceipt

from contracts import ContractArtifact, load_artifact
from ledger.chain.backends import Chain, TxResult, translating_errors
from ledger.ids import id_key

UINT32_MAX = 2**32 - 1

# Gas limits per function: well above the measured use (see bench/anchor.py), below a block.
GAS_GRANT_ROLE = 120_000
GAS_REGISTER_INSTITUTION = 120_000
GAS_SET_INSTITUTION_ACTIVE = 80_000
GAS_ANCHOR_BATCH = 150_000
GAS_ANCHOR_TRAINING_RUN = 120_000
GAS_MINT = 200_000


class Role(StrEnum):
    """AccessControl roles of the two contracts."""

    ADMIN = "DEFAULT_ADMIN_ROLE"
    SUBMITTER = "SUBMITTER_ROLE"
    TRAINER = "TRAINER_ROLE"
    MINTER = "MINTER_ROLE"

    @property
    def key(self) -> bytes:
        """The bytes32 role id: zero for the admin role, keccak256 of the name otherwise."""
        return bytes(32) if self is Role.ADMIN else keccak(text=self.value)


@dataclass(frozen=True)
class InstitutionOnChain:
    institution_key: bytes
    account: str
    """Checksummed reward account."""
    active: bool


@dataclass(frozen=True)
class BatchAnchorRecord:
    """A batch anchor as recorded by its ``BatchAnchored`` event."""

    batch_key: bytes
    merkle_root: bytes
    metadata_hash: bytes
    institution_key: bytes
    record_count: int
    tx_hash: str
    block_number: int


@dataclass(frozen=True)
class TrainingRunRecord:
    """A training-run anchor as recorded by its ``TrainingRunAnchored`` event."""

    run_key: bytes
    dataset_root: bytes
    adapter_hash: bytes
    recipe_hash: bytes
    base_model_hash: bytes
    tx_hash: str
    block_number: int


@dataclass(frozen=True)
class RewardRecord:
    """A reward as recorded by its ``ContributionRewarded`` event."""

    contribution_id: bytes
    to: str
    amount_wei: int
    academic_ref: bytes
    tx_hash: str
    block_number: int


def _bytes32(value: bytes, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != 32:
        raise ValueError(f"{what} must be 32 bytes, got {value!r}")
    return bytes(value)


def _tx_result(receipt: TxReceipt) -> TxResult:
    return TxResult(
        tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
        block_number=int(receipt["blockNumber"]),
        gas_used=int(receipt["gasUsed"]),
    )


class _ContractClient:
    """Shared plumbing: encode, transact with the client's signer, read, and fetch events."""

    artifact_name: str

    def __init__(
        self,
        chain: Chain,
        address: str,
        *,
        signer: LocalAccount | None = None,
        from_block: int = 0,
    ) -> None:
        """``signer`` defaults to the chain's account; ``from_block`` (the deployment block)
        bounds event searches.
        """
        self.chain = chain
        self.address = to_checksum_address(address)
        self.signer = signer or chain.account
        self.from_block = from_block
        self.artifact: ContractArtifact = load_artifact(self.artifact_name)
        self._contract: Contract = chain.w3.eth.contract(
            address=self.address, abi=self.artifact.abi_list
        )

    def with_signer(self, signer: LocalAccount) -> Self:
        """The same client, sending transactions signed by ``signer``."""
        return type(self)(self.chain, self.address, signer=signer, from_block=self.from_block)

    def _transact(self, fn_name: str, args: Sequence[Any], *, gas: int) -> TxResult:
        data = bytes.fromhex(self._contract.encode_abi(fn_name, args=list(args))[2:])
        receipt = self.chain.transact(
            to=self.address, data=data, gas=gas, abi=self.artifact.abi, signer=self.signer
        )
        return _tx_result(receipt)

    def _read(self, fn_name: str, *args: Any) -> Any:
        with translating_errors(f"{fn_name} on {self.chain.name}"):
            return self._contract.get_function_by_name(fn_name)(*args).call(
                {"from": self.signer.address}
            )

    def _events(self, event_name: str, argument_filters: Mapping[str, Any]) -> list[EventData]:
        event = self._contract.events[event_name]
        with translating_errors(f"{event_name} logs on {self.chain.name}"):
            return list(
                event.get_logs(argument_filters=dict(argument_filters), from_block=self.from_block)
            )

    def has_role(self, role: Role, account: str) -> bool:
        return bool(self._read("hasRole", role.key, to_checksum_address(account)))

    def grant_role(self, *, role: Role, account: str) -> TxResult:
        """Grant ``role`` to ``account`` (signer needs the admin role)."""
        return self._transact(
            "grantRole", [role.key, to_checksum_address(account)], gas=GAS_GRANT_ROLE
        )

    def revoke_role(self, *, role: Role, account: str) -> TxResult:
        """Revoke ``role`` from ``account`` (signer needs the admin role)."""
        return self._transact(
            "revokeRole", [role.key, to_checksum_address(account)], gas=GAS_GRANT_ROLE
        )


def _tx_hash(log: EventData) -> str:
    return "0x" + bytes(log["transactionHash"]).hex()


class AcademicLedgerClient(_ContractClient):
    """Client of ``AcademicLedger`` on the academic chain."""

    artifact_name = "AcademicLedger"

    # -- institutions
    def register_institution(self, *, institution_id: str, account: str) -> TxResult:
        """Register ``institution_id`` (active) with its reward ``account``. Admin only.

        Raises InstitutionAlreadyRegistered, ZeroAddress, Unauthorized.
        """
        return self._transact(
            "registerInstitution",
            [id_key(institution_id), to_checksum_address(account)],
            gas=GAS_REGISTER_INSTITUTION,
        )

    def set_institution_active(self, *, institution_id: str, active: bool) -> TxResult:
        """Activate or deactivate a registered institution. Admin only.

        Raises UnknownInstitution, Unauthorized.
        """
        return self._transact(
            "setInstitutionActive",
            [id_key(institution_id), active],
            gas=GAS_SET_INSTITUTION_ACTIVE,
        )

    def institution(self, institution_id: str) -> InstitutionOnChain | None:
        """The registered institution, or None when it is unknown."""
        key = id_key(institution_id)
        account, active = self._read("institutionOf", key)
        if int(account, 16) == 0:
            return None
        return InstitutionOnChain(
            institution_key=key, account=to_checksum_address(account), active=bool(active)
        )

    # -- corpus batches
    def anchor_batch(
        self,
        *,
        batch_id: str,
        merkle_root: bytes,
        metadata_hash: bytes,
        institution_id: str,
        record_count: int,
    ) -> TxResult:
        """Anchor one batch's Merkle root. Submitter only.

        Raises BatchAlreadyAnchored, RootAlreadyAnchored, ZeroRoot, EmptyBatch, UnknownInstitution,
        InactiveInstitution, Unauthorized.
        """
        if not 0 <= record_count <= UINT32_MAX:
            raise ValueError(f"record_count {record_count} does not fit in uint32")
        return self._transact(
            "anchorBatch",
            [
                id_key(batch_id),
                _bytes32(merkle_root, "merkle_root"),
                _bytes32(metadata_hash, "metadata_hash"),
                id_key(institution_id),
                record_count,
            ],
            gas=GAS_ANCHOR_BATCH,
        )

    def root_of(self, batch_id: str) -> bytes | None:
        """The anchored root of ``batch_id``, or None when it is not anchored."""
        root = bytes(self._read("rootOf", id_key(batch_id)))
        return None if root == bytes(32) else root

    def batch_key_of_root(self, merkle_root: bytes) -> bytes | None:
        """The bytes32 key of the batch that anchored ``merkle_root``, or None."""
        key = bytes(self._read("batchOfRoot", _bytes32(merkle_root, "merkle_root")))
        return None if key == bytes(32) else key

    def find_batch_anchor(self, batch_id: str) -> BatchAnchorRecord | None:
        """The anchor of ``batch_id`` read from its ``BatchAnchored`` event, or None."""
        if self.root_of(batch_id) is None:
            return None
        logs = self._events("BatchAnchored", {"batchId": id_key(batch_id)})
        if not logs:
            return None
        log = logs[0]
        args = log["args"]
        return BatchAnchorRecord(
            batch_key=bytes(args["batchId"]),
            merkle_root=bytes(args["merkleRoot"]),
            metadata_hash=bytes(args["metadataHash"]),
            institution_key=bytes(args["institutionId"]),
            record_count=int(args["recordCount"]),
            tx_hash=_tx_hash(log),
            block_number=int(log["blockNumber"]),
        )

    def verify_record(self, *, batch_id: str, leaf: bytes, proof: Sequence[bytes]) -> bool:
        """Whether ``leaf`` with ``proof`` is in the anchored batch (False if not anchored)."""
        return bool(
            self._read(
                "verifyRecord",
                id_key(batch_id),
                _bytes32(leaf, "leaf"),
                [_bytes32(p, "proof node") for p in proof],
            )
        )

    def verify_proof(self, *, root: bytes, leaf: bytes, proof: Sequence[bytes]) -> bool:
        """Whether ``proof`` leads from ``leaf`` to ``root``, checked by the contract."""
        return bool(
            self._read(
                "verifyProof",
                _bytes32(root, "root"),
                _bytes32(leaf, "leaf"),
                [_bytes32(p, "proof node") for p in proof],
            )
        )

    # -- training runs
    def anchor_training_run(
        self,
        *,
        run_id: str,
        dataset_root: bytes,
        adapter_hash: bytes,
        recipe_hash: bytes,
        base_model_hash: bytes,
    ) -> TxResult:
        """Anchor a finished training run. Trainer only.

        Raises RunAlreadyAnchored, ZeroRoot (zero dataset root or adapter hash), Unauthorized.
        """
        return self._transact(
            "anchorTrainingRun",
            [
                id_key(run_id),
                _bytes32(dataset_root, "dataset_root"),
                _bytes32(adapter_hash, "adapter_hash"),
                _bytes32(recipe_hash, "recipe_hash"),
                _bytes32(base_model_hash, "base_model_hash"),
            ],
            gas=GAS_ANCHOR_TRAINING_RUN,
        )

    def adapter_of(self, run_id: str) -> bytes | None:
        """The anchored adapter hash of ``run_id``, or None."""
        value = bytes(self._read("adapterOf", id_key(run_id)))
        return None if value == bytes(32) else value

    def find_training_run(self, run_id: str) -> TrainingRunRecord | None:
        """The anchor of ``run_id`` read from its ``TrainingRunAnchored`` event, or None."""
        if self.adapter_of(run_id) is None:
            return None
        logs = self._events("TrainingRunAnchored", {"runId": id_key(run_id)})
        if not logs:
            return None
        log = logs[0]
        args = log["args"]
        return TrainingRunRecord(
            run_key=bytes(args["runId"]),
            dataset_root=bytes(args["datasetRoot"]),
            adapter_hash=bytes(args["adapterHash"]),
            recipe_hash=bytes(args["recipeHash"]),
            base_model_hash=bytes(args["baseModelHash"]),
            tx_hash=_tx_hash(log),
            block_number=int(log["blockNumber"]),
        )


class BYRTokenClient(_ContractClient):
    """Client of the ``BYRToken`` ERC-20 on the incentive chain."""

    artifact_name = "BYRToken"

    def mint(
        self, *, to: str, amount_wei: int, contribution_id: bytes, academic_ref: bytes
    ) -> TxResult:
        """Reward ``contribution_id`` with ``amount_wei`` to ``to``. Minter only.

        Raises AlreadyRewarded, ZeroAmount, Unauthorized.
        """
        if amount_wei < 0:
            raise ValueError(f"amount_wei must not be negative, got {amount_wei}")
        return self._transact(
            "mint",
            [
                to_checksum_address(to),
                amount_wei,
                _bytes32(contribution_id, "contribution_id"),
                _bytes32(academic_ref, "academic_ref"),
            ],
            gas=GAS_MINT,
        )

    def rewarded(self, contribution_id: bytes) -> bool:
        return bool(self._read("rewarded", _bytes32(contribution_id, "contribution_id")))

    def find_reward(self, contribution_id: bytes) -> RewardRecord | None:
        """The reward of ``contribution_id`` from its ``ContributionRewarded`` event, or None."""
        key = _bytes32(contribution_id, "contribution_id")
        if not self.rewarded(key):
            return None
        logs = self._events("ContributionRewarded", {"contributionId": key})
        if not logs:
            return None
        log = logs[0]
        args = log["args"]
        return RewardRecord(
            contribution_id=bytes(args["contributionId"]),
            to=to_checksum_address(args["to"]),
            amount_wei=int(args["amount"]),
            academic_ref=bytes(args["academicRef"]),
            tx_hash=_tx_hash(log),
            block_number=int(log["blockNumber"]),
        )

    def balance_of(self, address: str) -> int:
        return int(self._read("balanceOf", to_checksum_address(address)))

    def total_supply(self) -> int:
        return int(self._read("totalSupply"))

    def token_info(self) -> tuple[str, str, int]:
        """(name, symbol, decimals)."""
        return (str(self._read("name")), str(self._read("symbol")), int(self._read("decimals")))
