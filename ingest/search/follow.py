"""Bring a :class:`~ingest.search.index.SearchIndex` up to the ledger as projected now.

Erasures first, then additions: the ``corpus-index`` stream as the ledger projects it already
leaves erased records out, so a record erased before it was indexed is never added, and one
erased after is removed by the next call. Reads only; the ledger's projections are caught up by
whoever owns them (the server before it answers, ``byr`` when it opens the home).
"""

from __future__ import annotations

from dataclasses import dataclass

from ingest.search.index import IndexedRecord, SearchIndex
from ledger.application import CorpusLedger

_STATUS_ACCEPTED = "accepted"


@dataclass(frozen=True, slots=True)
class SyncReport:
    added: int
    removed: int
    position: int
    erasures_applied: int


def sync_index(
    index: SearchIndex, ledger: CorpusLedger, *, entries_per_step: int = 50
) -> SyncReport:
    """Apply the erasures and the accepted records the index has not seen yet."""
    removed = 0
    while erasures := ledger.erasures_since(index.erasures_applied, limit=500):
        removed += index.remove([rid for _, rid in erasures], erasures=erasures[-1][0])
    added = 0
    while entries := ledger.corpus_index_since(index.position, limit=entries_per_step):
        records: list[IndexedRecord] = []
        for _, batch_records in entries:
            if not batch_records:
                continue
            wanted = {rid for rid, _ in batch_records}
            first = ledger.record(batch_records[0][0])
            batch = ledger.batch(first.batch_id)
            for view in ledger.records(first.batch_id, status=_STATUS_ACCEPTED):
                if view.record_id not in wanted or view.record is None:
                    continue
                quality = (view.decision or {}).get("scores", {}).get("quality")
                records.append(
                    IndexedRecord(
                        record_id=view.record_id,
                        batch_id=view.batch_id,
                        institution_id=batch.institution_id,
                        record=view.record,
                        quality=None if quality is None else float(quality),
                    )
                )
        index.add(index.documents(records), position=entries[-1][0])
        added += len(records)
    return SyncReport(
        added=added,
        removed=removed,
        position=index.position,
        erasures_applied=index.erasures_applied,
    )
