"""A persistent near-duplicate index over the accepted corpus.

Three stages, cheapest first; each later stage only sees what the earlier ones let through:

1. **exact**: a keyed hash (HMAC-SHA256 under the folder's secret, see
   :mod:`ingest.governance.storage`) of the normalized text (NFKC, lowercase, punctuation and
   whitespace collapsed, spaces next to CJK characters dropped);
2. **minhash**: MinHash LSH over token-bigram shingles (a token is one CJK character or one word)
   finds candidates; a candidate whose estimated Jaccard similarity reaches
   ``DedupConfig.minhash_threshold`` is a duplicate. Shingle sets ignore sentence order, so
   reordered sentences stay near-identical;
3. **embedding**: the remaining LSH candidates that still share enough shingles
   (``embedding_min_jaccard``) are compared by sentence-embedding cosine (calibrated, see
   :meth:`ingest.governance.embeddings.Embedder.calibrate`), which catches rewording. Only these
   candidates are ever embedded, so the index costs no model time for records without a
   near neighbour.

Languages: stages 1 and 2 are language independent. Stage 3 compares two records only when the
same model embeds both (``en`` with ``en``; ``zh`` and ``mixed`` with each other). Cross-language
duplicates (a translation of an accepted record) are out of scope: they share no shingles and
their vectors live in different spaces.

Storage: one SQLite file holds every accepted record's id, language, exact key, signature and
text (the text is needed to embed it when it becomes a candidate). :meth:`DedupIndex.remove`
and :func:`ingest.governance.erasure.purge_records` delete a record's row with its text and
zero it on disk, and drop the embeddings its texts left in the cache. The LSH buckets are
rebuilt in memory from the stored signatures when the index opens (about 4 s per 100k records
on 2 busy cores). Several instances may open the same file: each one reloads when another has
committed a change (a generation counter in the file), so a write or an erasure made by one
process is seen by the next call of the others. Checking and adding are two calls: the index
alone does not stop two processes governing at the same moment from each accepting one copy of
a duplicate. The governance service closes that gap with the event log
(:mod:`ingest.governance.service`): the index is a projection of the log's ``corpus-index``
stream, and :attr:`DedupIndex.position` is the stream version it reflects.
"""

from ingest.governance.dedup.config import (
    DedupConfig,
    DedupError,
    DedupItem,
    DuplicateMatch,
    DuplicateMethod,
    InvalidDedupConfig,
)
from ingest.governance.dedup.index import DedupIndex

__all__ = [
    "DedupConfig",
    "DedupError",
    "DedupIndex",
    "DedupItem",
    "DuplicateMatch",
    "DuplicateMethod",
    "InvalidDedupConfig",
]
