"""Typed chain errors, and the decoding of revert data into them.

Both backends report a reverted call with its raw revert data (eth-tester through the tester
provider, anvil through the JSON-RPC error's ``data``). :func:`decode_revert` maps the 4-byte
selector against the contract ABI's custom errors, so the same revert yields the same typed error,
with decoded arguments, whatever the backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from ledger.errors import LedgerError

ERROR_STRING_SELECTOR = function_signature_to_4byte_selector("Error(string)")
PANIC_SELECTOR = function_signature_to_4byte_selector("Panic(uint256)")


class ChainError(LedgerError):
    """Base class of every error raised by the chain layer."""


class ChainUnavailable(ChainError):
    """The node cannot be reached (down, refused, timed out). Retrying later may succeed."""


class ChainMismatch(ChainError):
    """The node or state file belongs to another chain than the one expected (wrong chain id)."""


class TransactionRejected(ChainError):
    """The node refused the transaction before executing it (bad nonce, fee or funds)."""


class TransactionReverted(ChainError):
    """The contract refused the call. Subclasses name the contract's custom errors.

    ``error_name`` is the Solidity error name (``""`` when the revert carried no data),
    ``arguments`` its decoded arguments by parameter name, ``data`` the raw revert data.
    """

    solidity_error: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        error_name: str = "",
        arguments: Mapping[str, Any] | None = None,
        data: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.error_name = error_name
        self.arguments: dict[str, Any] = dict(arguments or {})
        self.data = data


_BY_SOLIDITY_NAME: dict[str, type[TransactionReverted]] = {}


def _solidity_error(name: str) -> Any:
    """Register the decorated class as the Python form of Solidity custom error ``name``."""

    def register(cls: type[TransactionReverted]) -> type[TransactionReverted]:
        cls.solidity_error = name
        _BY_SOLIDITY_NAME[name] = cls
        return cls

    return register


@_solidity_error("AccessControlUnauthorizedAccount")
class Unauthorized(TransactionReverted):
    """The sender lacks the role the function needs (arguments: ``account``, ``neededRole``)."""


@_solidity_error("ZeroAddress")
class ZeroAddress(TransactionReverted):
    """A zero address was given where an account is required."""


@_solidity_error("InstitutionAlreadyRegistered")
class InstitutionAlreadyRegistered(TransactionReverted):
    """The institution key is already registered (argument: ``institutionId``)."""


@_solidity_error("UnknownInstitution")
class UnknownInstitution(TransactionReverted):
    """No institution is registered under the key (argument: ``institutionId``)."""


@_solidity_error("InactiveInstitution")
class InactiveInstitution(TransactionReverted):
    """The institution is registered but deactivated (argument: ``institutionId``)."""


@_solidity_error("BatchAlreadyAnchored")
class BatchAlreadyAnchored(TransactionReverted):
    """The batch is already anchored (argument: ``batchId``)."""


@_solidity_error("RootAlreadyAnchored")
class RootAlreadyAnchored(TransactionReverted):
    """Another batch already anchored this Merkle root (argument: ``merkleRoot``)."""


@_solidity_error("ZeroRoot")
class ZeroRoot(TransactionReverted):
    """A zero Merkle root (or zero adapter hash for a training run) was given."""


@_solidity_error("EmptyBatch")
class EmptyBatch(TransactionReverted):
    """A batch with zero records was given."""


@_solidity_error("RunAlreadyAnchored")
class RunAlreadyAnchored(TransactionReverted):
    """The training run is already anchored (argument: ``runId``)."""


@_solidity_error("AlreadyRewarded")
class AlreadyRewarded(TransactionReverted):
    """The contribution has already been rewarded (argument: ``contributionId``)."""


@_solidity_error("ZeroAmount")
class ZeroAmount(TransactionReverted):
    """A reward of zero was requested."""


def _custom_errors(abi: Sequence[Mapping[str, Any]]) -> dict[bytes, Mapping[str, Any]]:
    out: dict[bytes, Mapping[str, Any]] = {}
    for item in abi:
        if item.get("type") == "error":
            types = ",".join(inp["type"] for inp in item["inputs"])
            out[function_signature_to_4byte_selector(f"{item['name']}({types})")] = item
    return out


def decode_revert(data: bytes, abi: Sequence[Mapping[str, Any]]) -> TransactionReverted:
    """The typed error for revert ``data`` raised by a contract with ``abi``.

    Custom errors of the ABI map to their registered subclass (or to :class:`TransactionReverted`
    with ``error_name`` set); ``Error(string)`` and ``Panic(uint256)`` and unknown data map to
    :class:`TransactionReverted`.
    """
    selector, payload = data[:4], data[4:]
    if not data:
        return TransactionReverted("execution reverted without data", data=data)
    if selector == ERROR_STRING_SELECTOR:
        try:
            (reason,) = abi_decode(["string"], payload)
        except DecodingError:
            reason = payload.hex()
        return TransactionReverted(
            f"execution reverted: {reason}",
            error_name="Error",
            arguments={"reason": reason},
            data=data,
        )
    if selector == PANIC_SELECTOR:
        (code,) = abi_decode(["uint256"], payload)
        return TransactionReverted(
            f"execution panicked: 0x{code:02x}",
            error_name="Panic",
            arguments={"code": code},
            data=data,
        )
    item = _custom_errors(abi).get(selector)
    if item is None:
        return TransactionReverted(
            f"execution reverted with unknown data 0x{data.hex()}", data=data
        )
    name = item["name"]
    inputs = item["inputs"]
    try:
        values = abi_decode([inp["type"] for inp in inputs], payload)
    except DecodingError:
        values = ()
    arguments = {
        inp["name"]: to_checksum_address(v) if inp["type"] == "address" else v
        for inp, v in zip(inputs, values, strict=False)
    }
    rendered = ", ".join(f"{k}={_render(v)}" for k, v in arguments.items())
    cls = _BY_SOLIDITY_NAME.get(name, TransactionReverted)
    return cls(f"{name}({rendered})", error_name=name, arguments=arguments, data=data)


def _render(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)
