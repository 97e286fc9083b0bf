"""Search over the accepted corpus: BM25 over words, embedding similarity, rank fusion.

- :mod:`ingest.search.tokenize`: the terms of a text (jieba words for Chinese, lowercased words for
  Latin script) with their character offsets, for BM25 and for the matching spans of a hit;
- :mod:`ingest.search.fusion`: how the lexical and embedding rankings are fused;
- :mod:`ingest.search.store`: the index's file (documents keyed by record id, keyed term hashes,
  vectors), so an erasure deletes everything derived from a record;
- :mod:`ingest.search.index`: the in-memory index that follows the ledger's ``corpus-index``
  stream and its erasures, and answers queries.
"""

from ingest.search.errors import InvalidQuery, SearchError
from ingest.search.fusion import (
    LEXICAL_WEIGHT,
    RRF_K,
    reciprocal_rank_fusion,
    weighted_score_fusion,
)
from ingest.search.index import Fusion, SearchFilters, SearchHit, SearchIndex, SearchMode

__all__ = [
    "LEXICAL_WEIGHT",
    "RRF_K",
    "Fusion",
    "InvalidQuery",
    "SearchError",
    "SearchFilters",
    "SearchHit",
    "SearchIndex",
    "SearchMode",
    "reciprocal_rank_fusion",
    "weighted_score_fusion",
]
