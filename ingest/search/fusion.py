"""How the lexical and embedding rankings become one.

Two rules, both over the first candidates of each ranking (a record missing from a ranking counts
zero there):

- :func:`weighted_score_fusion` (the default, :data:`LEXICAL_WEIGHT`): ``w * bm25 / max_bm25 +
  (1 - w) * calibrated cosine``. BM25 is divided by the best BM25 of the query, so it reads 1 for
  the best lexical match whatever the query's length; the cosine is calibrated per model
  (:meth:`ingest.governance.embeddings.Embedder.calibrate`: 0 a typical unrelated pair, 1
  identical), since m3e-small's raw cosines sit far above MiniLM's.
- :func:`reciprocal_rank_fusion` (Cormack, Clarke and Büttcher, SIGIR 2009): the sum of
  ``1 / (k + rank)`` over the rankings, :data:`RRF_K` = 60 as in the paper.

Why the weighted score: on the labeled queries of ``bench/search_queries.jsonl``
(``bench/search.py --sweep``, figures in bench/results/search.json), RRF at every ``k`` from 5 to
100 and lexical weight from 1 to 3 raised recall@10 above both rankings but left MRR below
BM25's (0.95-0.97 against 0.981): where BM25 has the right record first and the embedding ranks
it low, ranks cannot tell a clear lexical winner from a narrow one. The weighted score keeps that
margin. ``w`` was chosen on that same set (there is no held-out set): 0.75-0.8 is where hybrid
matches or beats the better ranking on both figures; equal weights (0.5) gave recall@10 0.99 and
MRR 0.977.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

RRF_K = 60
"""The constant ``k`` of :func:`reciprocal_rank_fusion`."""

LEXICAL_WEIGHT = 0.8
"""The weight ``w`` of BM25 in :func:`weighted_score_fusion` (see the module docstring)."""


def weighted_score_fusion(
    lexical: Mapping[int, float],
    embedding: Mapping[int, float],
    *,
    lexical_weight: float = LEXICAL_WEIGHT,
) -> list[tuple[int, float]]:
    """Fuse BM25 scores and calibrated cosines (document -> score) into ``(document, score)``
    pairs, best first; ties by document."""
    if not 0.0 <= lexical_weight <= 1.0:
        raise ValueError("lexical_weight must be from 0 to 1")
    best = max(lexical.values(), default=0.0)
    fused: dict[int, float] = {}
    for doc, value in lexical.items():
        fused[doc] = lexical_weight * (value / best if best > 0 else 0.0)
    for doc, value in embedding.items():
        fused[doc] = fused.get(doc, 0.0) + (1.0 - lexical_weight) * value
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def reciprocal_rank_fusion(
    rankings: Mapping[str, Sequence[int]],
    *,
    k: int = RRF_K,
    weights: Mapping[str, float] | None = None,
) -> list[tuple[int, float]]:
    """Fuse ``rankings`` (name -> document positions, best first) into ``(document, score)``
    pairs, best first; ties keep the order of first appearance."""
    if k < 1:
        raise ValueError("k must be at least 1")
    fused: dict[int, float] = {}
    for name, ranking in rankings.items():
        weight = 1.0 if weights is None else weights.get(name, 1.0)
        for rank, doc in enumerate(ranking, start=1):
            fused[doc] = fused.get(doc, 0.0) + weight / (k + rank)
    return sorted(fused.items(), key=lambda item: -item[1])
