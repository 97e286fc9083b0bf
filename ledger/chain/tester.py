"""The embedded chain: py-evm through eth-tester, in memory or persisted to a SQLite file.

Persistence keeps py-evm's own key-value store (headers, blocks, receipts, transaction index, state
tries) in SQLite, so a later process rebuilds the chain from its canonical head with every contract,
balance, nonce, receipt and log intact. Each state-changing request runs under SQLite's write lock
and commits the keys it wrote as one transaction, together with a generation counter; every request
first compares that counter with the one it last saw and reloads the chain when another process
moved it. Several processes (the CLI, the API) can therefore share one state file.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import rlp
from eth.abc import BlockHeaderAPI
from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.db.backends.memory import MemoryDB
from eth.exceptions import Revert
from eth.exceptions import TransactionNotFound as EVMTransactionNotFound
from eth.typing import AccountDetails
from eth.vm.forks import PragueVM
from eth.vm.spoof import SpoofTransaction
from eth_bloom import BloomFilter
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.backends.pyevm.main import (
    _execute_and_revert_transaction,
    get_default_genesis_params,
)
from eth_tester.backends.pyevm.serializers import (
    serialize_transaction,
    serialize_transaction_receipt,
)
from eth_tester.exceptions import TransactionFailed, TransactionNotFound
from eth_typing import Address, BlockNumber, Hash32
from eth_utils import ValidationError as EthValidationError
from eth_utils import to_canonical_address
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.providers.eth_tester import EthereumTesterProvider
from web3.providers.eth_tester.defaults import API_ENDPOINTS, static_return
from web3.types import RPCEndpoint, RPCResponse

from ledger.chain.accounts import DEV_BALANCE_WEI, DEV_PRIVATE_KEYS
from ledger.chain.errors import ChainMismatch, TransactionRejected
from ledger.chain.sqlite_kv import SqliteKV
from ledger.files import private_database

#: Format tag stored in a state file; a file with another tag is refused rather than misread.
_FORMAT = "byr-tester-chain/1"

#: RPC methods that change chain state; they run under the state file's write lock.
WRITE_METHODS = frozenset(
    {
        "eth_sendRawTransaction",
        "eth_sendTransaction",
        "evm_mine",
        "evm_revert",
        "testing_timeTravel",
    }
)


def chain_class(chain_id: int) -> type[MiningChain]:
    """A post-merge Prague chain class with ``chain_id`` whose blocks keep a constant gas limit."""

    class EmbeddedChain(MiningChain):
        vm_configuration = ((BlockNumber(0), PragueVM),)

        def create_header_from_parent(
            self, parent_header: BlockHeaderAPI, **header_params: Any
        ) -> BlockHeaderAPI:
            header_params["gas_limit"] = parent_header.gas_limit
            return super().create_header_from_parent(parent_header, **header_params)

        def get_transaction_builder(self) -> Any:
            return self.get_vm().get_transaction_builder()

    EmbeddedChain.chain_id = chain_id
    return EmbeddedChain


def _genesis_state() -> dict[Address, AccountDetails]:
    from eth_account import Account

    return {
        Address(to_canonical_address(Account.from_key(key).address)): AccountDetails(
            balance=DEV_BALANCE_WEI, nonce=0, code=b"", storage={}
        )
        for key in DEV_PRIVATE_KEYS
    }


class EmbeddedBackend(PyEVMBackend):
    """eth-tester's py-evm backend over a given chain, with indexed transaction lookups.

    It keeps the raw revert data of failed calls (eth-tester renders it as text) and finds
    transactions through py-evm's transaction index instead of scanning every block.
    """

    def __init__(self, chain: MiningChain) -> None:
        self.account_keys = ()
        self.chain = chain

    def _locate(self, transaction_hash: bytes) -> tuple[Any, Any, int]:
        try:
            number, index = self.chain.chaindb.get_transaction_index(Hash32(transaction_hash))
            block = self.chain.get_canonical_block_by_number(number)
        except EVMTransactionNotFound:
            raise TransactionNotFound(f"no transaction 0x{transaction_hash.hex()}") from None
        transactions = block.transactions
        # The index may still point into a block a snapshot revert took off the canonical chain.
        if index >= len(transactions) or transactions[index].hash != transaction_hash:
            raise TransactionNotFound(f"no transaction 0x{transaction_hash.hex()}")
        return block, transactions[index], index

    def get_transaction_by_hash(self, transaction_hash: bytes) -> Any:
        block, transaction, index = self._locate(transaction_hash)
        return serialize_transaction(block, transaction, index, False)

    def get_transaction_receipt(self, transaction_hash: bytes) -> Any:
        block, transaction, index = self._locate(transaction_hash)
        receipts = block.get_receipts(self.chain.chaindb)
        return serialize_transaction_receipt(
            block, receipts, transaction, index, False, self.chain.get_vm()
        )

    def send_raw_transaction(self, raw_transaction: bytes) -> bytes:
        """Apply a signed transaction, refusing (as a node does) a bad nonce or another chain id."""
        vm = self.chain.get_vm()
        try:
            transaction = vm.get_transaction_builder().decode(raw_transaction)
        except (ValueError, EthValidationError, rlp.DecodingError) as exc:
            raise TransactionRejected(f"undecodable transaction: {exc}") from exc
        if transaction.chain_id is not None and transaction.chain_id != self.chain.chain_id:
            raise TransactionRejected(
                f"transaction for chain {transaction.chain_id} sent to chain {self.chain.chain_id}"
            )
        try:
            self.chain.apply_transaction(transaction)
        except EthValidationError as exc:
            raise TransactionRejected(str(exc)) from exc
        return bytes(transaction.hash)

    def call(self, transaction: dict[str, Any], block_number: Any = "latest") -> bytes:
        """Like eth-tester's, but a revert raises ``TransactionFailed(raw_revert_data)`` and any
        other failure ``TransactionFailed("<error>: <detail>")``.
        """
        defaulted = dict(transaction)
        defaulted.setdefault("gas", self._max_available_gas())
        unsigned = self._get_normalized_and_unsigned_evm_transaction(defaulted, block_number)
        spoofed = SpoofTransaction(unsigned, from_=transaction["from"])
        computation = _execute_and_revert_transaction(self.chain, spoofed, block_number)
        if computation.is_error:
            error = computation._error
            if isinstance(error, Revert):
                data = error.args[0] if error.args and isinstance(error.args[0], bytes) else b""
                raise TransactionFailed(data)
            raise TransactionFailed(f"{type(error).__name__}: {error}")
        return bytes(computation.output)


class EmbeddedTester(EthereumTester):
    """eth-tester whose log search skips, by their header's bloom filter, blocks with no match.

    eth-tester otherwise serializes every receipt of every block in the range (recovering each
    sender), which makes a search over a long chain take seconds.
    """

    def get_logs(
        self,
        from_block: Any = None,
        to_block: Any = None,
        address: Any = None,
        topics: Any = None,
    ) -> tuple[Any, ...]:
        self.validator.validate_inbound_filter_params(
            from_block=from_block, to_block=to_block, address=address, topics=topics
        )
        _, _, raw_address, raw_topics = self.normalizer.normalize_inbound_filter_params(
            from_block=from_block, to_block=to_block, address=address, topics=topics
        )
        lower, upper = self._block_bound(from_block), self._block_bound(to_block)
        chain = self.backend.chain
        found: list[Any] = []
        for number in range(lower, upper + 1):
            header = chain.get_canonical_block_header_by_number(BlockNumber(number))
            if _bloom_may_match(BloomFilter(header.bloom), raw_address, raw_topics):
                found.extend(
                    super().get_logs(
                        from_block=number, to_block=number, address=address, topics=topics
                    )
                )
        return tuple(found)

    def _block_bound(self, block: Any) -> int:
        if isinstance(block, int):
            return block
        return int(self.get_block_by_number("latest" if block is None else block)["number"])


def _bloom_may_match(bloom: BloomFilter, addresses: Any, topics: Any) -> bool:
    """Whether a block with ``bloom`` may hold a log of one of ``addresses`` matching ``topics``."""

    def any_in(options: Any) -> bool:
        if options is None:
            return True
        if isinstance(options, bytes):
            return options in bloom
        return any(option in bloom for option in options)

    return any_in(addresses) and all(any_in(topic) for topic in topics or ())


def _call_keeping_revert_data(tester: EthereumTester, params: Any) -> Any:
    """``eth_call`` reporting reverts as a node does: a contract logic error with the data."""
    transaction, block = (params[0], params[1]) if len(params) > 1 else (params[0], "latest")
    try:
        return tester.call(transaction, block)
    except TransactionFailed as exc:
        detail = exc.args[0] if exc.args else b""
        if isinstance(detail, str):
            raise ContractLogicError(f"execution failed: {detail}", data="0x") from None
        if not detail:
            raise ContractLogicError("execution reverted", data="0x") from None
        hex_data = "0x" + bytes(detail).hex()
        raise ContractCustomError(hex_data, data=hex_data) from None


def _endpoints(chain_id: int) -> dict[str, dict[str, Callable[..., Any]]]:
    # One copy per chain: the chain id is a static answer, and deepcopy of the table fails.
    endpoints = {ns: dict(fns) for ns, fns in API_ENDPOINTS.items()}
    endpoints["eth"]["chainId"] = static_return(chain_id)
    endpoints["net"]["version"] = static_return(str(chain_id))
    endpoints["eth"]["call"] = _call_keeping_revert_data
    return endpoints


class EmbeddedProvider(EthereumTesterProvider):
    """Provider over one embedded chain; serializes requests and keeps a state file in step."""

    def __init__(
        self, *, tester: EthereumTester, chain_id: int, store: SqliteKV | None = None
    ) -> None:
        super().__init__(tester, api_endpoints=_endpoints(chain_id))
        self._store = store
        self._lock = threading.RLock()

    @property
    def backend(self) -> EmbeddedBackend:
        backend = self.ethereum_tester.backend  # type: ignore[union-attr]
        assert isinstance(backend, EmbeddedBackend)
        return backend

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self._lock:
            if self._store is None:
                return super().make_request(method, params)
            if method not in WRITE_METHODS:
                self._sync()
                return super().make_request(method, params)
            with self._writing():
                return super().make_request(method, params)

    def close(self) -> None:
        """Release the state file; the provider must not be used afterwards."""
        with self._lock:
            if self._store is not None:
                self._store.close()

    def _sync(self) -> None:
        assert self._store is not None
        if self._store.stored_generation() != self._store.seen_generation:
            self._store.forget()
            self._reload()

    def _reload(self) -> None:
        assert self._store is not None
        cls = type(self.backend.chain)
        self.backend.chain = cls(AtomicDB(self._store))

    @contextmanager
    def _writing(self) -> Iterator[None]:
        assert self._store is not None
        self._store.begin()
        try:
            self._sync()
            yield
        except BaseException:
            # The in-memory chain may hold half-applied work: rebuild it from the file.
            self._store.rollback()
            self._store.forget()
            self._reload()
            raise
        self._store.commit()


def open_embedded(*, chain_id: int, state_path: Path | None = None) -> EmbeddedProvider:
    """A provider over an embedded chain with ``chain_id`` and funded development accounts.

    With ``state_path`` the chain lives in that SQLite file: created with a fresh genesis when
    absent, reloaded otherwise. Raises :class:`ChainMismatch` when the file holds another chain id.
    The file and its folder are owner-only (see :mod:`ledger.files`).
    """
    cls = chain_class(chain_id)
    store: SqliteKV | None = None
    chain: MiningChain
    if state_path is None:
        chain = _from_genesis(cls, AtomicDB(MemoryDB()))
    else:
        store = SqliteKV(private_database(state_path))
        store.begin()
        try:
            if store.is_empty():
                chain = _from_genesis(cls, AtomicDB(store))
                store.commit(format=_FORMAT, chain_id=str(chain_id))
            else:
                stored_id = store.meta("chain_id")
                if stored_id != str(chain_id) or store.meta("format") != _FORMAT:
                    raise ChainMismatch(
                        f"{state_path} holds chain {stored_id} ({store.meta('format')}), "
                        f"expected chain {chain_id} ({_FORMAT})"
                    )
                store.rollback()
                store.forget()
                chain = cls(AtomicDB(store))
        except BaseException:
            store.rollback()
            store.close()
            raise
    tester = EmbeddedTester(EmbeddedBackend(chain), auto_mine_transactions=True)
    return EmbeddedProvider(tester=tester, chain_id=chain_id, store=store)


def _from_genesis(cls: type[MiningChain], db: AtomicDB) -> MiningChain:
    chain = cls.from_genesis(db, _genesis_params(), _genesis_state())
    assert isinstance(chain, MiningChain)
    return chain


def _genesis_params() -> dict[str, Any]:
    params: dict[str, Any] = get_default_genesis_params()  # post-merge, timestamped now
    return params
