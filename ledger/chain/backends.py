"""Chain connections: the embedded tester chain and JSON-RPC nodes, behind one :class:`Chain` type.

Both backends go through the same code path: transactions are signed locally with an explicit nonce,
gas limit, fee caps and chain id, simulated first with ``eth_call`` (so a revert surfaces as a typed
error with its decoded arguments and costs no gas), then sent raw and awaited.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)
from web3.types import RPCEndpoint, TxParams, TxReceipt, Wei

from ledger.chain.accounts import dev_accounts
from ledger.chain.errors import (
    ChainError,
    ChainMismatch,
    ChainUnavailable,
    TransactionRejected,
    TransactionReverted,
    decode_revert,
)

#: Chain id of the academic chain (AcademicLedger) on local backends.
ACADEMIC_CHAIN_ID = 31337001
#: Chain id of the incentive chain (BYRToken) on local backends.
INCENTIVE_CHAIN_ID = 31337002

#: Priority fee offered by every transaction; local nodes include anything above zero.
PRIORITY_FEE_WEI = 10**9


class BackendKind(StrEnum):
    TESTER = "tester"
    """py-evm in process (eth-tester), in memory or persisted to a file."""
    RPC = "rpc"
    """A JSON-RPC node (anvil locally)."""


@dataclass(frozen=True)
class TxResult:
    """Outcome of a mined, successful transaction."""

    tx_hash: str
    """0x-prefixed hex."""
    block_number: int
    gas_used: int


_UNAVAILABLE: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    ProviderConnectionError,
    ConnectionError,
    TimeoutError,
)


@contextmanager
def translating_errors(what: str) -> Iterator[None]:
    """Translate connection-level library errors raised in the block into ChainErrors."""
    try:
        yield
    except ChainError:
        raise
    except _UNAVAILABLE as exc:
        raise ChainUnavailable(f"{what}: node unreachable ({exc})") from exc
    except TimeExhausted as exc:
        raise ChainUnavailable(f"{what}: no receipt in time ({exc})") from exc


class Chain:
    """One chain: a web3 connection, its chain id, a name, and the local account that signs by
    default.

    Methods are safe to call from several threads: transactions of one :class:`Chain` are serialized
    so that nonces stay consecutive.
    """

    def __init__(
        self,
        *,
        w3: Web3,
        chain_id: int,
        name: str,
        account: LocalAccount,
        backend: BackendKind,
        url: str | None = None,
        receipt_timeout_s: float = 60.0,
    ) -> None:
        self.w3 = w3
        self.chain_id = chain_id
        self.name = name
        self.account = account
        self.backend = backend
        self.url = url
        self.receipt_timeout_s = receipt_timeout_s
        self._tx_lock = threading.Lock()
        # Calls that name no sender (web3 contract reads) come from the signing account.
        self.w3.eth.default_account = account.address

    def __repr__(self) -> str:
        return f"Chain(name={self.name!r}, chain_id={self.chain_id}, backend={self.backend.value})"

    # ------------------------------------------------------------------ reads

    def call(
        self,
        *,
        to: str,
        data: bytes,
        abi: Sequence[Mapping[str, Any]],
        sender: str | None = None,
        gas: int | None = None,
        value: int = 0,
    ) -> bytes:
        """Execute a call against the latest block; a revert raises its typed error."""
        params: TxParams = {
            "from": to_checksum_address(sender or self.account.address),
            "to": to_checksum_address(to),
            "data": HexBytes(data),
            "value": Wei(value),
        }
        if gas is not None:
            params["gas"] = gas
        with translating_errors(f"call on {self.name}"):
            try:
                return bytes(self.w3.eth.call(params, "latest"))
            except ContractLogicError as exc:
                data = _revert_data(exc)
                if data:
                    raise decode_revert(data, abi) from exc
                raise TransactionReverted(
                    f"call on {self.name} failed: {exc.message or exc}"
                ) from exc
            except Web3RPCError as exc:
                # A node answering eth_call with an error that is not a revert (e.g. out of gas).
                raise TransactionReverted(f"call on {self.name} failed: {exc}") from exc

    def block_number(self) -> int:
        with translating_errors(f"block number of {self.name}"):
            return int(self.w3.eth.block_number)

    def balance(self, address: str) -> int:
        """Native balance in wei."""
        with translating_errors(f"balance on {self.name}"):
            return int(self.w3.eth.get_balance(to_checksum_address(address)))

    def receipt(self, tx_hash: str) -> TxReceipt | None:
        """The receipt of a mined transaction, or None when the node does not know it."""
        with translating_errors(f"receipt on {self.name}"):
            try:
                return self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                return None

    # ------------------------------------------------------------------ writes

    def transact(
        self,
        *,
        to: str | None,
        data: bytes,
        gas: int,
        abi: Sequence[Mapping[str, Any]],
        signer: LocalAccount | None = None,
        value: int = 0,
    ) -> TxReceipt:
        """Sign, send and await one transaction; ``to=None`` deploys ``data`` as creation code.

        Raises the typed revert error (decoded with ``abi``) when the call would revert,
        :class:`TransactionRejected` when the node refuses it, :class:`ChainUnavailable` when the
        node cannot be reached, :class:`TransactionReverted` when it was mined but failed.
        """
        account = signer or self.account
        with self._tx_lock, translating_errors(f"transaction on {self.name}"):
            if to is not None:
                # Simulate first: reverts come back with their data and cost nothing.
                self.call(to=to, data=data, abi=abi, sender=account.address, gas=gas, value=value)
            tx: dict[str, Any] = {
                "type": 2,
                "chainId": self.chain_id,
                "nonce": self.w3.eth.get_transaction_count(account.address, "pending"),
                "gas": gas,
                "maxFeePerGas": self._max_fee_per_gas(),
                "maxPriorityFeePerGas": PRIORITY_FEE_WEI,
                "value": value,
                "data": HexBytes(data),
            }
            if to is not None:
                tx["to"] = to_checksum_address(to)
            signed = account.sign_transaction(tx)
            try:
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except (Web3RPCError, ValueError) as exc:
                raise TransactionRejected(f"{self.name} refused the transaction: {exc}") from exc
            receipt = self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=self.receipt_timeout_s, poll_latency=0.05
            )
        if receipt["status"] != 1:
            raise TransactionReverted(
                f"transaction 0x{bytes(tx_hash).hex()} failed on {self.name} "
                f"(gas used {receipt['gasUsed']} of {gas})"
            )
        return receipt

    def _max_fee_per_gas(self) -> int:
        base_fee = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
        # Twice the base fee survives several full blocks of base-fee increase.
        return 2 * base_fee + PRIORITY_FEE_WEI

    # ------------------------------------------------------------------ test support

    def snapshot(self) -> Any:
        """Snapshot the chain state (``evm_snapshot``); returns the id for :meth:`revert`."""
        return self._rpc("evm_snapshot", [])

    def revert(self, snapshot_id: Any) -> None:
        """Return to a snapshot taken with :meth:`snapshot` (``evm_revert``)."""
        self._rpc("evm_revert", [snapshot_id])

    def _rpc(self, method: str, params: list[Any]) -> Any:
        with translating_errors(f"{method} on {self.name}"):
            response = self.w3.provider.make_request(RPCEndpoint(method), params)
        if "error" in response:
            raise ChainError(f"{method} failed on {self.name}: {response['error']}")
        return response["result"]

    def close(self) -> None:
        """Release the connection (and the state file of a persisted tester chain)."""
        close = getattr(self.w3.provider, "close", None)
        if callable(close):
            close()


def _revert_data(exc: ContractLogicError) -> bytes:
    data = exc.data
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return b""
    return b""


def _web3(provider: Any) -> Web3:
    w3 = Web3(provider)
    # Transactions are signed here with the chain id checked at connect time, and local chains have
    # no ENS: these layers would only add an eth_chainId round trip to every call and send.
    w3.middleware_onion.remove("validation")
    w3.middleware_onion.remove("ens_name_to_address")
    return w3


def connect_tester(
    *,
    chain_id: int,
    state_path: Path | None = None,
    name: str | None = None,
    private_key: str | None = None,
) -> Chain:
    """An embedded py-evm chain with ``chain_id`` whose development accounts are funded.

    Without ``state_path`` it lives in memory; with it, in that SQLite file, which later processes
    reopen with all state and history. Transactions are signed by ``private_key`` (default: the
    development deployer, see :mod:`ledger.chain.accounts`). Several tester chains with different
    ids coexist in one process.
    """
    # py-evm is heavy to import and only the embedded backend needs it.
    from ledger.chain.tester import open_embedded

    provider = open_embedded(chain_id=chain_id, state_path=state_path)
    account: LocalAccount = (
        Account.from_key(private_key) if private_key else dev_accounts().deployer
    )
    return Chain(
        w3=_web3(provider),
        chain_id=chain_id,
        name=name or f"tester-{chain_id}",
        account=account,
        backend=BackendKind.TESTER,
        url=str(state_path) if state_path else None,
    )


def connect_rpc(
    *,
    url: str,
    private_key: str,
    chain_id: int | None = None,
    name: str | None = None,
    timeout_s: float = 10.0,
) -> Chain:
    """A JSON-RPC node at ``url``; transactions are signed locally by ``private_key``.

    Asks the node for its chain id; raises :class:`ChainMismatch` when ``chain_id`` is given and
    differs, :class:`ChainUnavailable` when the node cannot be reached.
    """
    w3 = _web3(HTTPProvider(url, request_kwargs={"timeout": timeout_s}))
    with translating_errors(f"connect to {url}"):
        node_chain_id = int(w3.eth.chain_id)
    if chain_id is not None and node_chain_id != chain_id:
        raise ChainMismatch(f"{url} serves chain {node_chain_id}, expected {chain_id}")
    return Chain(
        w3=w3,
        chain_id=node_chain_id,
        name=name or f"rpc-{node_chain_id}",
        account=Account.from_key(private_key),
        backend=BackendKind.RPC,
        url=url,
    )
