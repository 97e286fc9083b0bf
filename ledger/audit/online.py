"""Online verification: what only the academic chain can confirm about a proof bundle, or
about the anchor the ledger recorded for a batch.

Both start from an :class:`AnchorClaim` (where the anchor is said to be and what it anchored), so a
bundle and the ledger are held to the very same checks; a bundle adds its record's proof.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eth_hash.auto import keccak

from ledger.audit.bundle import ProofBundle
from ledger.audit.offline import offline_checks
from ledger.audit.verification import Check, VerificationReport, abbrev
from ledger.errors import Conflict
from ledger.ids import id_key
from ledger.merkle import parse_bytes32, to_hex
from ledger.views import BatchView

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


class BatchNotAnchored(Conflict):
    """The ledger holds no anchor for the batch yet: there is nothing to check on the chain."""


@dataclass(frozen=True, slots=True)
class AnchorClaim:
    """Where a batch's anchor is said to be and what it anchored: a proof bundle's claim, or the
    ledger's record of the anchor. ``source`` names who claims it in check reasons."""

    batch_id: str
    root: str
    chain_id: int | None
    contract_address: str | None
    tx_hash: str | None
    block_number: int | None
    metadata_hash: str | None = None
    source: str = "the bundle"

    @classmethod
    def of_bundle(cls, bundle: ProofBundle) -> AnchorClaim:
        return cls(
            batch_id=bundle.batch_id,
            root=bundle.root,
            chain_id=bundle.chain_id,
            contract_address=bundle.contract_address,
            tx_hash=bundle.tx_hash,
            block_number=bundle.block_number,
            metadata_hash=bundle.metadata_hash,
        )

    @classmethod
    def of_batch(cls, batch: BatchView) -> AnchorClaim:
        """The anchor the ledger recorded for ``batch``; raises :class:`BatchNotAnchored` when it
        recorded none."""
        if batch.tx_hash is None or batch.chain_id is None or batch.contract_address is None:
            raise BatchNotAnchored(
                f"batch {batch.batch_id} is not anchored yet (status {batch.status}): the ledger "
                "records no anchoring transaction to check"
            )
        return cls(
            batch_id=batch.batch_id,
            root=batch.merkle_root,
            chain_id=batch.chain_id,
            contract_address=batch.contract_address,
            tx_hash=batch.tx_hash,
            block_number=batch.block_number,
            metadata_hash=batch.metadata_hash,
            source="the ledger",
        )


def verify_online(bundle: ProofBundle, *, academic: AcademicLedgerView) -> VerificationReport:
    """The offline checks, then what the academic chain confirms.

    Online checks: ``chain_id`` (the node serves the bundle's chain), ``contract_address`` (the
    client's AcademicLedger is the bundle's), then the anchor checks of
    :func:`verify_batch_anchor` (``contract_code``, ``anchor_tx``, ``metadata_hash``,
    ``anchored_root``) and ``verify_record`` (the contract's ``verifyRecord`` view accepts the
    leaf and proof). Errors reaching the chain propagate as the chain layer's errors; they are
    not a verdict.
    """
    checks = offline_checks(bundle)
    checks += _online_checks(bundle, academic)
    return VerificationReport(
        batch_id=bundle.batch_id,
        record_id=bundle.record_id,
        root=bundle.root,
        checks=tuple(checks),
    )


def verify_batch_anchor(claim: AnchorClaim, *, academic: AcademicLedgerView) -> list[Check]:
    """Check ``claim`` against the chain, step by step, with ``academic`` the AcademicLedger at
    the claimed address.

    Checks: ``chain_id`` (the node serves the claimed chain), ``contract_code`` (the address runs
    AcademicLedger's committed bytecode; otherwise it is not asked anything), ``anchor_tx`` (the
    transaction is mined, succeeded and emitted ``BatchAnchored`` from that contract for
    ``id_key(batch_id)`` with the claimed root, in the claimed block when given),
    ``metadata_hash`` (when claimed: the event's) and ``anchored_root`` (the contract's stored
    root for the batch is the claimed root). Errors reaching the chain propagate as the chain
    layer's errors; they are not a verdict.
    """
    return [_chain_id_check(claim, academic), *_anchor_checks(claim, academic)]


def _online_checks(bundle: ProofBundle, academic: AcademicLedgerView) -> list[Check]:
    claim = AnchorClaim.of_bundle(bundle)
    checks = [_chain_id_check(claim, academic), _contract_address_check(claim, academic)]
    anchor_checks = _anchor_checks(claim, academic)
    checks += anchor_checks
    if not anchor_checks[0].ok:  # contract_code
        not_asked = f"not asked: the contract at {academic.address} is not AcademicLedger"
        checks.append(Check("verify_record", False, not_asked))
        return checks
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


def _chain_id_check(claim: AnchorClaim, academic: AcademicLedgerView) -> Check:
    node_chain_id = academic.chain.chain_id
    if claim.chain_id is None:
        return Check("chain_id", False, f"{claim.source} names no chain (not anchored)")
    if claim.chain_id == node_chain_id:
        return Check("chain_id", True, f"the node serves chain {node_chain_id}")
    return Check(
        "chain_id",
        False,
        f"{claim.source} says the batch was anchored on chain {claim.chain_id}, the node serves "
        f"chain {node_chain_id}",
    )


def _contract_address_check(claim: AnchorClaim, academic: AcademicLedgerView) -> Check:
    if claim.contract_address is None:
        return Check("contract_address", False, f"{claim.source} names no contract")
    if claim.contract_address.lower() == academic.address.lower():
        return Check(
            "contract_address",
            True,
            f"{claim.source} names the AcademicLedger at {academic.address}",
        )
    return Check(
        "contract_address",
        False,
        f"{claim.source} names contract {claim.contract_address}, the ledger consulted is at "
        f"{academic.address}",
    )


def _anchor_checks(claim: AnchorClaim, academic: AcademicLedgerView) -> list[Check]:
    """``contract_code``, ``anchor_tx`` (and ``metadata_hash``), ``anchored_root``."""
    root = parse_bytes32(claim.root)
    code_check = _contract_code_check(academic)
    checks = [code_check, *_anchor_tx_checks(claim, academic, root)]
    if not code_check.ok:
        # A contract that is not AcademicLedger can answer anything: do not ask it.
        not_asked = f"not asked: the contract at {academic.address} is not AcademicLedger"
        checks.append(Check("anchored_root", False, not_asked))
        return checks
    anchor = academic.find_batch_anchor(claim.batch_id)
    if anchor is None:
        checks.append(
            Check(
                "anchored_root",
                False,
                f"batch {claim.batch_id} is not anchored on AcademicLedger at {academic.address}",
            )
        )
        return checks
    anchored = parse_bytes32(anchor.merkle_root, what="anchored root")
    checks.append(
        Check("anchored_root", True, f"the contract holds root {abbrev(root)} for the batch")
        if anchored == root
        else Check(
            "anchored_root",
            False,
            f"the root anchored for batch {claim.batch_id} is {abbrev(anchored)}, "
            f"{claim.source}'s root is {abbrev(root)}: {claim.source}'s root was altered or "
            "belongs to another batch",
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


def _anchor_tx_checks(claim: AnchorClaim, academic: AcademicLedgerView, root: bytes) -> list[Check]:
    if claim.tx_hash is None:
        return [Check("anchor_tx", False, f"{claim.source} names no anchoring transaction")]
    receipt = academic.chain.receipt(claim.tx_hash)
    if receipt is None:
        return [Check("anchor_tx", False, f"transaction {claim.tx_hash} is not on this chain")]
    if int(receipt["status"]) != 1:
        return [Check("anchor_tx", False, f"transaction {claim.tx_hash} failed (status 0)")]
    batch_key = id_key(claim.batch_id)
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
                f"transaction {claim.tx_hash} emitted no BatchAnchored event from "
                f"{academic.address} for batch {claim.batch_id} (key {to_hex(batch_key)})",
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
                f"transaction {claim.tx_hash} anchored root {abbrev(event_root)} for the batch, "
                f"not {claim.source}'s root {abbrev(root)}",
            )
        )
    elif claim.block_number is not None and claim.block_number != block:
        checks.append(
            Check(
                "anchor_tx",
                False,
                f"transaction {claim.tx_hash} is in block {block}, {claim.source} says "
                f"{claim.block_number}",
            )
        )
    else:
        checks.append(
            Check(
                "anchor_tx",
                True,
                f"transaction {abbrev(claim.tx_hash)} in block {block} emitted BatchAnchored "
                f"for the batch with {claim.source}'s root",
            )
        )
    if claim.metadata_hash is not None:
        event_metadata = bytes(event["data"])[:32]
        claimed = parse_bytes32(claim.metadata_hash)
        checks.append(
            Check("metadata_hash", True, f"the anchored metadata hash is {claim.source}'s")
            if event_metadata == claimed
            else Check(
                "metadata_hash",
                False,
                f"the anchored metadata hash is {abbrev(event_metadata)}, {claim.source} says "
                f"{abbrev(claimed)}",
            )
        )
    return checks


def _logs(receipt: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    logs = receipt.get("logs")
    return logs if isinstance(logs, list | tuple) else []
