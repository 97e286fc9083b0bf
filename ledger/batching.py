"""Turning validated, desensitized records into a salted Merkle batch and its submission event.

Pure: no I/O apart from drawing salts from the operating system's CSPRNG (injectable for tests).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger.canonical import batch_manifest, canonical_record, metadata_hash, new_salt, record_hash
from ledger.errors import LedgerError
from ledger.events import CorpusBatchSubmitted, RecordEntry
from ledger.ids import BatchId, record_id_for_leaf
from ledger.merkle import StandardMerkleTree, to_hex
from ledger.recordstore import RecordBody


class NoValidRecords(LedgerError):
    """A batch was built with no valid record, so there is nothing to hash or anchor.

    Raised before anything reaches a chain; the contract's own revert for an empty batch is
    :class:`ledger.chain.errors.EmptyBatch`.
    """


@dataclass(frozen=True, slots=True)
class RecordInput:
    """One record ready to enter a batch: canonical fields (already desensitized) and provenance."""

    canonical: Mapping[str, str]
    source_line: int | None = None
    redactions: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BuiltBatch:
    """A batch's submission event, the bodies of its records (for the record store, never the
    log) and the Merkle tree behind its root."""

    event: CorpusBatchSubmitted
    bodies: list[RecordBody]
    tree: StandardMerkleTree


def build_batch(
    *,
    batch_id: BatchId,
    institution_id: str,
    source_name: str,
    records: Sequence[RecordInput],
    rejected_at_intake: Sequence[Mapping[str, Any]],
    policy_version: str,
    submitted_at: datetime,
    salt: Callable[[], bytes] = new_salt,
    submitted_by: str | None = None,
) -> BuiltBatch:
    """Salt every record, build the OpenZeppelin-standard tree over ``(record_hash, salt)``, and
    describe the batch in a :class:`CorpusBatchSubmitted` event.

    Record ``index`` is the input order; record ids derive from the (salted, hence unique) leaves.
    Raises :class:`NoValidRecords` when ``records`` is empty.
    """
    if not records:
        raise NoValidRecords(f"batch {source_name!r} has no valid record")
    canon = [canonical_record(r.canonical) for r in records]
    hashes = [record_hash(c) for c in canon]
    salts = [salt() for _ in records]
    tree = StandardMerkleTree.of(list(zip(hashes, salts, strict=True)))
    entries = []
    bodies = []
    for index, (record, c, h, s) in enumerate(zip(records, canon, hashes, salts, strict=True)):
        leaf = tree.leaf(index)
        record_id = record_id_for_leaf(leaf)
        entries.append(
            RecordEntry(
                record_id=record_id,
                index=index,
                source_line=record.source_line,
                leaf=to_hex(leaf),
                discipline=c["discipline"],
                language=c["language"],
                task_type=c["task_type"],
                redactions=dict(sorted(record.redactions.items())),
            )
        )
        bodies.append(
            RecordBody(
                record_id=record_id,
                batch_id=batch_id,
                record=c,
                salt=to_hex(s),
                record_hash=to_hex(h),
            )
        )
    rejected_items = {
        (item.get("line"), item.get("index"))
        for item in rejected_at_intake
        if item.get("severity", "error") == "error"
    }
    manifest = batch_manifest(
        institution_id=institution_id,
        discipline_counts=dict(Counter(c["discipline"] for c in canon)),
        record_count=len(canon),
        rejected_count=len(rejected_items),
        submitted_at=submitted_at,
        policy_version=policy_version,
        source_name=source_name,
    )
    event = CorpusBatchSubmitted(
        batch_id=batch_id,
        institution_id=institution_id,
        source_name=source_name,
        merkle_root=to_hex(tree.root),
        metadata_hash=to_hex(metadata_hash(manifest)),
        manifest=manifest,
        records=entries,
        rejected_at_intake=[dict(item) for item in rejected_at_intake],
        submitted_by=submitted_by,
    )
    return BuiltBatch(event=event, bodies=bodies, tree=tree)


def tree_of(entries: Sequence[RecordEntry]) -> StandardMerkleTree:
    """Rebuild a batch's tree from its stored record entries: their leaves are enough (the same
    root, layout and proofs as the tree over their values), so erased records still count."""
    ordered = sorted(entries, key=lambda e: e.index)
    return StandardMerkleTree.from_leaves([e.leaf for e in ordered])
