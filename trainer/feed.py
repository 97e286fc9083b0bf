"""Dataset snapshots from the accepted-corpus feed, with a Merkle dataset root and a manifest.

A snapshot holds the accepted records of anchored batches (erased records never enter). Its
``dataset_root`` is the root of an OpenZeppelin StandardMerkleTree built from the records' own
leaves — the same leaves their batch trees anchor — so one proof shows a record was in the training
set and another that it was in an anchored batch. The manifest names every record, its batch, the
batch's anchor and the institution behind it, which is what lineage verification walks.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.application import CorpusLedger
from ledger.merkle import StandardMerkleTree
from trainer.errors import DatasetError

SNAPSHOT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class DatasetSnapshot:
    """Records to train on, their Merkle dataset root and the manifest describing them."""

    records: Sequence[Mapping[str, Any]]
    dataset_root: str
    manifest: Mapping[str, Any] = field(default_factory=dict)


def dataset_tree(leaves: Sequence[str]) -> StandardMerkleTree:
    """The dataset tree over record leaves (``0x`` hex); the order of ``leaves`` does not matter."""
    if not leaves:
        raise DatasetError("a dataset snapshot needs at least one record")
    return StandardMerkleTree.from_leaves([bytes.fromhex(leaf[2:]) for leaf in sorted(leaves)])


def snapshot_from_feed(
    ledger: CorpusLedger,
    *,
    disciplines: Sequence[str] | None = None,
    languages: Sequence[str] | None = None,
    institutions: Sequence[str] | None = None,
    task_types: Sequence[str] | None = None,
    limit: int | None = None,
) -> DatasetSnapshot:
    """A snapshot of the feed as it stands at the log's head now (optionally filtered), in feed
    order (batch submission, then batch index): the same state gives the same snapshot.

    Catches the ledger's projections up first: the manifest's ``feed_position`` names the head, so
    the records must be read at that head, not at wherever this process last synced.
    """
    ledger.sync()
    feed = ledger.accepted_feed(
        disciplines=disciplines,
        languages=languages,
        institutions=institutions,
        limit=None if task_types else limit,
    )
    if task_types:
        feed = [(r, b) for r, b in feed if r.task_type in task_types][:limit]
    if not feed:
        raise DatasetError(
            "the accepted-corpus feed is empty for this selection: submit batches and let them be "
            "governed and anchored first"
        )
    records: list[dict[str, Any]] = []
    batches: dict[str, dict[str, Any]] = {}
    for record, batch in feed:
        assert record.record is not None
        records.append(
            {
                "record_id": record.record_id,
                "batch_id": record.batch_id,
                "leaf": record.leaf,
                **record.record,
            }
        )
        batches.setdefault(
            batch.batch_id,
            {
                "merkle_root": batch.merkle_root,
                "institution_id": batch.institution_id,
                "chain_id": batch.chain_id,
                "contract_address": batch.contract_address,
                "tx_hash": batch.tx_hash,
            },
        )
    tree = dataset_tree([r["leaf"] for r in records])
    manifest = {
        "schema_version": SNAPSHOT_SCHEMA_VERSION,
        "dataset_root": tree.root_hex,
        "record_count": len(records),
        "records": [
            {"record_id": r["record_id"], "batch_id": r["batch_id"], "leaf": r["leaf"]}
            for r in records
        ],
        "batches": batches,
        "institutions": dict(
            sorted(Counter(b["institution_id"] for b in batches.values()).items())
        ),
        "disciplines": dict(sorted(Counter(r["discipline"] for r in records).items())),
        "filters": {
            "disciplines": list(disciplines or []),
            "languages": list(languages or []),
            "institutions": list(institutions or []),
            "task_types": list(task_types or []),
            "limit": limit,
        },
        "feed_position": ledger.log.head_position(),
    }
    return DatasetSnapshot(records=records, dataset_root=tree.root_hex, manifest=manifest)
