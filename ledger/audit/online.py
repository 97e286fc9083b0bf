"""Online verification: what only the academic chain can confirm about a proof bundle."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from eth_hash.auto import keccak

from ledger.audit.bundle import ProofBundle
from ledger.audit.offline import offline_checks
from ledger.audit.verification import Check, VerificationReport, abbrev
from ledger.ids import id_key
from ledger.merkle import parse_bytes32, to_hex

BATCH_ANCHORED_SIGNATURE = "BatchAnchored(bytes32,bytes32,bytes32,bytes32,uint32)"
"""AcademicLedger's event; topics: signature, batchId, merkleRoot, institutionId."""
BATCH_ANCHORED_TOPIC = keccak(BATCH_ANCHORED_SIGNATURE.encode("ascii"))


class ChainView(Protocol):
    """What online verification reads from a chain connection (``ledger.chain.backends.Chain``)."""

    @property
    def chain_id(self) -> int:
        """The id of the chain the connection serves (checked against the node when connecting)."""
        ...

    @property
    def w3(self) -> Any:
        """A ``web3.Web3``; only ``w3.eth.get_code`` is used."""
        ...

    def receipt(self, tx_hash: str) -> Any:
        """The receipt (a mapping with ``status``, ``blockNumber``, ``logs``), or None."""
        ...


class AnchorView(Protocol):
    """The fields of a batch anchor that online verification compares."""

    @property
    def merkle_root(self) -> bytes | str: ...


class AcademicLedgerView(Protocol):
    """What online verification uses of ``ledger.chain.clients.AcademicLedgerClient``."""

    @property
    def chain(self) -> ChainView: ...

    @property
    def address(self) -> str: ...

    def find_batch_anchor(self, batch_id: str) -> AnchorView | None: ...

    def verify_record(self, *, batch_id: str, leaf: bytes, proof: list[bytes]) -> bool: ...


def verify_online(bundle: ProofBundle, *, academic: AcademicLedgerView) -> VerificationReport:
    """The offline checks, then what the academic chain confirms.

    Online checks: ``chain_id`` (the node serves the bundle's chain), ``contract_address`` (the
    client's AcademicLedger is the bundle's), ``contract_code`` (the contract runs AcademicLedger's
    committed bytecode; otherwise it is not asked anything), ``anchor_tx`` (the transaction is
    mined, succeeded and
    emitted ``BatchAnchored`` from that contract for ``id_key(batch_id)`` with the bundle's root, in
    the bundle's block when given), ``metadata_hash`` (when the bundle has one: the event's),
    ``anchored_root`` (the contract's root for the batch is the bundle's root) and ``verify_record``
    (the contract's ``verifyRecord`` view accepts the leaf and proof). Errors reaching the chain
    propagate as the chain layer's errors; they are not a verdict.
    """
    checks = offline_checks(bundle)
    checks += _online_checks(bundle, academic)
    return VerificationReport(
        batch_id=bundle.batch_id,
        record_id=bundle.record_id,
        root=bundle.root,
        checks=tuple(checks),
    )


def _online_checks(bundle: ProofBundle, academic: AcademicLedgerView) -> list[Check]:
    checks: list[Check] = []
    root = parse_bytes32(bundle.root)
    node_chain_id = academic.chain.chain_id

    if bundle.chain_id is None:
        checks.append(Check("chain_id", False, "the bundle names no chain (exported unanchored)"))
    elif bundle.chain_id == node_chain_id:
        checks.append(Check("chain_id", True, f"the node serves chain {node_chain_id}"))
    else:
        checks.append(
            Check(
                "chain_id",
                False,
                f"the bundle was anchored on chain {bundle.chain_id}, the node serves chain "
                f"{node_chain_id}",
            )
        )

    if bundle.contract_address is None:
        checks.append(Check("contract_address", False, "the bundle names no contract"))
    elif bundle.contract_address.lower() == academic.address.lower():
        checks.append(
            Check(
                "contract_address",
                True,
                f"the bundle names the AcademicLedger at {academic.address}",
            )
        )
    else:
        checks.append(
            Check(
                "contract_address",
                False,
                f"the bundle names contract {bundle.contract_address}, the ledger consulted is at "
                f"{academic.address}",
            )
        )

    code_check = _contract_code_check(academic)
    checks.append(code_check)
    checks += _anchor_tx_checks(bundle, academic, root)
    if not code_check.ok:
        # A contract that is not AcademicLedger can answer anything: do not ask it.
        not_asked = f"not asked: the contract at {academic.address} is not AcademicLedger"
        checks.append(Check("anchored_root", False, not_asked))
        checks.append(Check("verify_record", False, not_asked))
        return checks

    anchor = academic.find_batch_anchor(bundle.batch_id)
    if anchor is None:
        checks.append(
            Check(
                "anchored_root",
                False,
                f"batch {bundle.batch_id} is not anchored on AcademicLedger at {academic.address}",
            )
        )
    else:
        anchored = parse_bytes32(anchor.merkle_root, what="anchored root")
        checks.append(
            Check("anchored_root", True, f"the contract holds root {abbrev(root)} for the batch")
            if anchored == root
            else Check(
                "anchored_root",
                False,
                f"the root anchored for batch {bundle.batch_id} is {abbrev(anchored)}, the "
                f"bundle's root is {abbrev(root)}: the bundle's root was altered or belongs to "
                "another batch",
            )
        )

    accepted = academic.verify_record(
        batch_id=bundle.batch_id,
        leaf=parse_bytes32(bundle.leaf),
        proof=[parse_bytes32(p) for p in bundle.proof],
    )
    checks.append(
        Check("verify_record", True, "the contract's verifyRecord view accepts the leaf and proof")
        if accepted
        else Check(
            "verify_record",
            False,
            "the contract's verifyRecord view rejects the leaf and proof: they do not lead to the "
            "root anchored for this batch (or the batch is not anchored)",
        )
    )
    return checks


def _contract_code_check(academic: AcademicLedgerView) -> Check:
    from contracts import load_artifact
    from ledger.chain.backends import translating_errors

    artifact = load_artifact("AcademicLedger")
    expected = bytes.fromhex(artifact.deployed_bytecode.removeprefix("0x"))
    with translating_errors(f"code at {academic.address}"):
        code = bytes(academic.chain.w3.eth.get_code(academic.address))
    if code == expected:
        return Check(
            "contract_code",
            True,
            f"the code at {academic.address} is AcademicLedger's, as compiled with solc "
            f"{artifact.compiler_version}",
        )
    what = "no code" if not code else f"{len(code)} bytes of other code"
    return Check(
        "contract_code",
        False,
        f"{academic.address} holds {what}, not AcademicLedger's runtime bytecode "
        f"({len(expected)} bytes, solc {artifact.compiler_version})",
    )


def _anchor_tx_checks(
    bundle: ProofBundle, academic: AcademicLedgerView, root: bytes
) -> list[Check]:
    if bundle.tx_hash is None:
        return [Check("anchor_tx", False, "the bundle names no anchoring transaction")]
    receipt = academic.chain.receipt(bundle.tx_hash)
    if receipt is None:
        return [Check("anchor_tx", False, f"transaction {bundle.tx_hash} is not on this chain")]
    if int(receipt["status"]) != 1:
        return [Check("anchor_tx", False, f"transaction {bundle.tx_hash} failed (status 0)")]
    batch_key = id_key(bundle.batch_id)
    events = [
        log
        for log in _logs(receipt)
        if str(log["address"]).lower() == academic.address.lower()
        and len(log["topics"]) == 4
        and bytes(log["topics"][0]) == BATCH_ANCHORED_TOPIC
        and bytes(log["topics"][1]) == batch_key
    ]
    if not events:
        return [
            Check(
                "anchor_tx",
                False,
                f"transaction {bundle.tx_hash} emitted no BatchAnchored event from "
                f"{academic.address} for batch {bundle.batch_id} (key {to_hex(batch_key)})",
            )
        ]
    event = events[0]
    event_root = bytes(event["topics"][2])
    block = int(receipt["blockNumber"])
    checks: list[Check] = []
    if event_root != root:
        checks.append(
            Check(
                "anchor_tx",
                False,
                f"transaction {bundle.tx_hash} anchored root {abbrev(event_root)} for the batch, "
                f"not the bundle's root {abbrev(root)}",
            )
        )
    elif bundle.block_number is not None and bundle.block_number != block:
        checks.append(
            Check(
                "anchor_tx",
                False,
                f"transaction {bundle.tx_hash} is in block {block}, the bundle says "
                f"{bundle.block_number}",
            )
        )
    else:
        checks.append(
            Check(
                "anchor_tx",
                True,
                f"transaction {abbrev(bundle.tx_hash)} in block {block} emitted BatchAnchored "
                f"for the batch with the bundle's root",
            )
        )
    if bundle.metadata_hash is not None:
        event_metadata = bytes(event["data"])[:32]
        claimed = parse_bytes32(bundle.metadata_hash)
        checks.append(
            Check("metadata_hash", True, "the anchored metadata hash is the bundle's")
            if event_metadata == claimed
            else Check(
                "metadata_hash",
                False,
                f"the anchored metadata hash is {abbrev(event_metadata)}, the bundle says "
                f"{abbrev(claimed)}",
            )
        )
    return checks


def _logs(receipt: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    logs = receipt.get("logs")
    return logs if isinstance(logs, list | tuple) else []
