"""Decoding revert data into typed errors (no chain needed)."""

from __future__ import annotations

from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector, keccak

from contracts import load_artifact
from ledger.chain.errors import (
    BatchAlreadyAnchored,
    TransactionReverted,
    Unauthorized,
    decode_revert,
)

ABI = load_artifact("AcademicLedger").abi


def test_custom_error_maps_to_its_class_with_named_arguments() -> None:
    key = keccak(text="batch")
    data = function_signature_to_4byte_selector("BatchAlreadyAnchored(bytes32)") + key
    error = decode_revert(data, ABI)
    assert type(error) is BatchAlreadyAnchored
    assert error.arguments == {"batchId": key}
    assert error.data == data
    assert key.hex() in str(error)


def test_openzeppelin_access_error_maps_to_unauthorized_with_a_checksummed_account() -> None:
    account = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    role = keccak(text="SUBMITTER_ROLE")
    data = function_signature_to_4byte_selector(
        "AccessControlUnauthorizedAccount(address,bytes32)"
    ) + encode(["address", "bytes32"], [account, role])
    error = decode_revert(data, ABI)
    assert isinstance(error, Unauthorized)
    assert error.arguments == {"account": account, "neededRole": role}


def test_error_string_and_panic_are_generic_reverts() -> None:
    reason = decode_revert(
        function_signature_to_4byte_selector("Error(string)") + encode(["string"], ["nope"]), ABI
    )
    assert type(reason) is TransactionReverted
    assert (reason.error_name, reason.arguments) == ("Error", {"reason": "nope"})
    panic = decode_revert(
        function_signature_to_4byte_selector("Panic(uint256)") + encode(["uint256"], [0x11]), ABI
    )
    assert (panic.error_name, panic.arguments) == ("Panic", {"code": 0x11})


def test_unknown_and_empty_data_are_generic_reverts() -> None:
    unknown = decode_revert(bytes.fromhex("deadbeef"), ABI)
    assert type(unknown) is TransactionReverted and unknown.error_name == ""
    empty = decode_revert(b"", ABI)
    assert type(empty) is TransactionReverted and empty.data == b""


def test_an_abi_error_without_a_python_class_keeps_its_name() -> None:
    token_abi = load_artifact("BYRToken").abi
    data = function_signature_to_4byte_selector("ERC20InvalidReceiver(address)") + bytes(32)
    error = decode_revert(data, token_abi)
    assert type(error) is TransactionReverted
    assert error.error_name == "ERC20InvalidReceiver"
    assert error.arguments == {"receiver": "0x" + "0" * 40}
