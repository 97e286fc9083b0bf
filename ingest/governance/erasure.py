"""Erasure of records from a governance folder: every cached derivative of their texts goes.

A record's text leaves derivatives in two files of the folder (see
:mod:`ingest.governance.storage`): its row in the near-duplicate index (text, exact key, MinHash
signature) and the embedding cache's vectors of its texts (the whole record, its question, the
sentences of its output), each entry tagged with the records that own it. :func:`purge_records`
deletes both, with the rows overwritten by zeros and flushed out of the write-ahead logs.

It opens only those SQLite files, never a model or spaCy, so it is cheap enough to run wherever
an erasure is applied, in a process that governs or in one that does not. Processes with the
index open notice the change (the index's generation counter) and reload on their next call;
embedders with the cache open simply miss the erased entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from ingest.governance.dedup.store import erase_records
from ingest.governance.embeddings import EmbeddingCache
from ingest.governance.storage import DEDUP_FILE, EMBEDDINGS_FILE, load_cache_key


@dataclass(frozen=True)
class PurgeReport:
    """What one :func:`purge_records` call deleted."""

    index_entries: int
    """Records deleted from the near-duplicate index."""
    embeddings: int
    """Cached embeddings deleted: those the records owned (with any other record that shared
    them) and those of their index texts under any model."""

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def purge_records(directory: Path, record_ids: Sequence[str]) -> PurgeReport:
    """Delete every cached derivative of the texts of ``record_ids`` from the governance folder
    ``directory``: their near-duplicate index rows and the embeddings they own, zeroed on disk.

    Idempotent: records already purged, or never seen, count zero. A missing folder or file is
    nothing to purge. A cache file written under the unkeyed scheme of earlier versions is
    emptied whole on open (see :class:`EmbeddingCache`). Raises
    :class:`~ingest.governance.storage.ErasureIncomplete` when another connection kept the rows
    in a write-ahead log; calling again finishes the erasure.
    """
    ids = list(dict.fromkeys(record_ids))
    if not ids or not directory.is_dir():
        return PurgeReport(index_entries=0, embeddings=0)
    erased = erase_records(directory / DEDUP_FILE, ids)
    embeddings = 0
    cache_path = directory / EMBEDDINGS_FILE
    if cache_path.exists():
        cache = EmbeddingCache(cache_path, key=load_cache_key(directory))
        try:
            embeddings = cache.forget_records(ids)
            # Entries of the index texts that were cached without an owner.
            embeddings += cache.delete_texts([text for _, text in erased])
        finally:
            cache.close()
    return PurgeReport(index_entries=len(erased), embeddings=embeddings)
