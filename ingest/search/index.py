"""The search index: BM25 and embedding rankings over the accepted corpus, fused by rank.

It follows the ledger the way governance's near-duplicate index does: the ``corpus-index``
stream (records governance accepted, in the order it accepted them) adds records, the erasures
the ledger applied remove them, and both positions are stored with the rows
(:mod:`ingest.search.store`), so a restart resumes where the last process stopped. Governed-
accepted rather than anchored: a record is searchable as soon as governance accepted it, which is
when it starts to count as corpus for near-duplicate checks; whether its batch is anchored yet is
the caller's business (the text rule of the feed, :mod:`api.services.search`).

Lexical: BM25 (``bm25s``: sparse matrices, every document scored per query in well under a
millisecond per 10k documents) over the record's instruction, input and output, with the terms of
:mod:`ingest.search.tokenize`, in both languages whatever the query's language.

Embedding: the cosine between the query and the record's *question* (instruction, then input),
embedded by the model of the record's language. The question is the text governance's coherence
step already embeds for every record it scores, so indexing reads its vector from governance's
embedding cache (tagged with the record, so an erasure purges it there too) instead of running
the model again. The query is embedded by the model of its detected language
(:func:`ingest.language.detect_language`), and compared only with records embedded by that
model: a Chinese query ranks Chinese (and mixed) records, an English one English records.

Hybrid: the two rankings' first :attr:`SearchIndex.candidates` documents fused by a weighted
score (normalized BM25 and calibrated cosine), or by reciprocal rank; see
:mod:`ingest.search.fusion` for the rule, the constants and the measurements behind them.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import numpy as np

from ingest.governance.decisions import question_text as governed_question
from ingest.language import detect_language
from ingest.search.errors import InvalidQuery
from ingest.search.fusion import (
    LEXICAL_WEIGHT,
    RRF_K,
    reciprocal_rank_fusion,
    weighted_score_fusion,
)
from ingest.search.store import SearchDocument, SearchStore
from ingest.search.tokenize import term_list
from ledger.canonical import record_history

MAX_QUERY_CHARS = 500
MAX_LIMIT = 100


class SearchMode(StrEnum):
    HYBRID = "hybrid"
    LEXICAL = "lexical"
    EMBEDDING = "embedding"


class Fusion(StrEnum):
    """How hybrid mode fuses the two rankings (:mod:`ingest.search.fusion`)."""

    WEIGHTED = "weighted"
    RRF = "rrf"


class _ModelSpec(Protocol):
    @property
    def name(self) -> str: ...


class Encoder(Protocol):
    """What the index needs of :class:`ingest.governance.embeddings.Embedder`."""

    def model_for(self, language: str) -> _ModelSpec: ...

    def encode(
        self, texts: Sequence[str], *, language: str, owners: Sequence[str] | None = None
    ) -> np.ndarray: ...

    def encode_raw(self, texts: Sequence[str], *, language: str) -> np.ndarray: ...

    def calibrate(self, cosines: np.ndarray | float, *, language: str) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Which records a query may return; ``None`` means any."""

    discipline: str | None = None
    task_type: str | None = None
    institution_id: str | None = None
    language: str | None = None
    min_quality: float | None = None
    max_quality: float | None = None

    def __post_init__(self) -> None:
        for name in ("min_quality", "max_quality"):
            value = getattr(self, name)
            if value is not None and not (0.0 <= value <= 1.0 and math.isfinite(value)):
                raise InvalidQuery(name, "must be a number from 0 to 1")
        if (
            self.min_quality is not None
            and self.max_quality is not None
            and self.min_quality > self.max_quality
        ):
            raise InvalidQuery("min_quality", "must not be greater than max_quality")


@dataclass(frozen=True, slots=True)
class IndexedRecord:
    """A record to index: its ids, its canonical fields and its quality score."""

    record_id: str
    batch_id: str
    institution_id: str
    record: Mapping[str, Any]
    quality: float | None


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One result: the record's ids and filter columns, its scores and ranks (1 is the best;
    ``None`` where the record is not among that ranking's candidates)."""

    record_id: str
    batch_id: str
    institution_id: str
    discipline: str
    task_type: str
    language: str
    quality: float | None
    lexical_score: float | None
    embedding_score: float | None
    fused_score: float
    lexical_rank: int | None
    embedding_rank: int | None
    rank: int

    def scores(self) -> dict[str, Any]:
        return {
            "lexical": self.lexical_score,
            "embedding": self.embedding_score,
            "fused": self.fused_score,
        }

    def ranks(self) -> dict[str, Any]:
        return {"lexical": self.lexical_rank, "embedding": self.embedding_rank, "fused": self.rank}


def question_text(record: Mapping[str, Any]) -> str:
    """The text a record is embedded as: what governance embeds as its question (the
    instruction, followed by the input when there is one, then a multi-turn record's earlier
    user turns; see :func:`ingest.governance.decisions.question_text`)."""
    return governed_question(
        instruction=record.get("instruction", ""),
        input=record.get("input", ""),
        history=record_history(record),
    )


def query_terms(query: str) -> list[str]:
    """The distinct terms of a query, in order."""
    return list(dict.fromkeys(term_list(query)))


def check_query(query: str, *, mode: SearchMode, limit: int) -> str:
    """``query`` stripped, or :class:`InvalidQuery` naming the bad field."""
    stripped = query.strip()
    if not stripped:
        raise InvalidQuery("q", "must not be empty")
    if len(stripped) > MAX_QUERY_CHARS:
        raise InvalidQuery("q", f"must be at most {MAX_QUERY_CHARS} characters")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidQuery("limit", f"must be from 1 to {MAX_LIMIT}")
    if mode is SearchMode.LEXICAL and not query_terms(stripped):
        raise InvalidQuery("q", "holds no searchable word")
    return stripped


@dataclass
class _Arrays:
    """The documents as columns, rebuilt after a change."""

    ids: list[str]
    docs: list[SearchDocument]
    columns: dict[str, np.ndarray]
    quality: np.ndarray
    bm25: Any | None
    vocabulary: dict[str, int]
    models: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    """Model name -> (document positions, their vectors as rows)."""


class SearchIndex:
    """Documents by record id, with the rankings built over them on demand.

    ``store`` keeps the documents and positions on disk (``None``: memory only, for tests and
    benchmarks). Safe to share between threads (calls are serialized).
    """

    def __init__(
        self,
        *,
        encoder: Encoder,
        store: SearchStore | None = None,
        candidates: int = 100,
        fusion: Fusion = Fusion.WEIGHTED,
        lexical_weight: float = LEXICAL_WEIGHT,
        rrf_k: int = RRF_K,
    ) -> None:
        self._encoder = encoder
        self._store = store
        self.candidates = candidates
        self.fusion = fusion
        self.lexical_weight = lexical_weight
        self.rrf_k = rrf_k
        self._lock = threading.RLock()
        self._docs: dict[str, SearchDocument] = {}
        self._arrays: _Arrays | None = None
        self.position = 0
        self.erasures_applied = 0
        if store is not None:
            self.position, self.erasures_applied = store.positions()
            for doc in store.load():
                self._docs[doc.record_id] = doc

    def __len__(self) -> int:
        return len(self._docs)

    def __contains__(self, record_id: object) -> bool:
        return record_id in self._docs

    @property
    def encoder(self) -> Encoder:
        return self._encoder

    def indexed(self) -> list[SearchDocument]:
        """Every document held, in the order added."""
        with self._lock:
            return list(self._docs.values())

    def _hash(self, term: str) -> str:
        return self._store.term_hash(term) if self._store is not None else term

    # -- changes -----------------------------------------------------------------------------------

    def documents(self, records: Sequence[IndexedRecord]) -> list[SearchDocument]:
        """The documents of ``records``: terms of all three fields, and the question's vector
        from the embedding cache (computed there on a miss), one encode call per language."""
        vectors: dict[int, np.ndarray] = {}
        by_language: dict[str, list[int]] = {}
        for i, item in enumerate(records):
            by_language.setdefault(item.record.get("language", "en"), []).append(i)
        for language, indices in by_language.items():
            encoded = self._encoder.encode(
                [question_text(records[i].record) for i in indices],
                language=language,
                owners=[records[i].record_id for i in indices],
            )
            vectors.update(zip(indices, encoded, strict=True))
        out = []
        for i, item in enumerate(records):
            r = item.record
            # Every turn of a multi-turn record is searchable; spans stay on the last exchange.
            earlier = [text for pair in record_history(r) for text in pair]
            text = "\n".join(
                [*earlier, *(r.get(name, "") for name in ("instruction", "input", "output"))]
            )
            language = r.get("language", "en")
            out.append(
                SearchDocument(
                    record_id=item.record_id,
                    batch_id=item.batch_id,
                    institution_id=item.institution_id,
                    discipline=r.get("discipline", ""),
                    task_type=r.get("task_type", ""),
                    language=language,
                    quality=item.quality,
                    model=self._encoder.model_for(language).name,
                    terms=tuple(self._hash(t) for t in term_list(text)),
                    vector=vectors[i],
                )
            )
        return out

    def add(self, documents: Iterable[SearchDocument], *, position: int | None = None) -> None:
        """Add (or replace) documents; ``position`` is the ``corpus-index`` version they bring
        the index to (stored with them)."""
        documents = list(documents)
        with self._lock:
            if self._store is not None and position is not None:
                self._store.put(documents, position=position)
            for doc in documents:
                self._docs[doc.record_id] = doc
            if position is not None:
                self.position = position
            self._arrays = None

    def remove(self, record_ids: Sequence[str], *, erasures: int | None = None) -> int:
        """Forget ``record_ids`` (in memory and on disk); ``erasures`` is the erasure sequence
        this brings the index to. How many were indexed."""
        with self._lock:
            removed = [rid for rid in record_ids if rid in self._docs]
            if self._store is not None:
                self._store.delete(list(record_ids), erasures=erasures or self.erasures_applied)
            for rid in removed:
                del self._docs[rid]
            if erasures is not None:
                self.erasures_applied = erasures
            if removed:
                self._arrays = None
            return len(removed)

    # -- queries -----------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        filters: SearchFilters | None = None,
        mode: SearchMode = SearchMode.HYBRID,
        limit: int = 10,
    ) -> list[SearchHit]:
        """The best ``limit`` records for ``query`` under ``filters``; raises
        :class:`InvalidQuery` for an empty or too long query or a bad limit."""
        query = check_query(query, mode=mode, limit=limit)
        filters = filters or SearchFilters()
        terms = [self._hash(t) for t in query_terms(query)]
        language = detect_language(query)
        query_vector = None
        if mode is not SearchMode.LEXICAL:
            query_vector = self._encoder.encode_raw([query], language=language)[0]
        model = self._encoder.model_for(language).name
        with self._lock:
            arrays = self._build()
            if not arrays.ids:
                return []
            mask = self._mask(arrays, filters)
            lexical: list[int] = []
            lexical_scores: dict[int, float] = {}
            if mode is not SearchMode.EMBEDDING:
                lexical, lexical_scores = self._lexical(arrays, terms, mask)
            semantic: list[int] = []
            semantic_scores: dict[int, float] = {}
            if query_vector is not None:
                semantic, semantic_scores = self._semantic(arrays, model, query_vector, mask)
            fused = self._fuse(
                mode, lexical, lexical_scores, semantic, semantic_scores, language=language
            )[:limit]
            lex_rank = {d: r for r, d in enumerate(lexical, start=1)}
            sem_rank = {d: r for r, d in enumerate(semantic, start=1)}
            hits = []
            for rank, (pos, score) in enumerate(fused, start=1):
                doc = arrays.docs[pos]
                hits.append(
                    SearchHit(
                        record_id=doc.record_id,
                        batch_id=doc.batch_id,
                        institution_id=doc.institution_id,
                        discipline=doc.discipline,
                        task_type=doc.task_type,
                        language=doc.language,
                        quality=doc.quality,
                        lexical_score=_rounded(lexical_scores.get(pos)),
                        embedding_score=_rounded(semantic_scores.get(pos)),
                        fused_score=round(score, 6),
                        lexical_rank=lex_rank.get(pos),
                        embedding_rank=sem_rank.get(pos),
                        rank=rank,
                    )
                )
            return hits

    def _fuse(
        self,
        mode: SearchMode,
        lexical: list[int],
        lexical_scores: dict[int, float],
        semantic: list[int],
        semantic_scores: dict[int, float],
        *,
        language: str,
    ) -> list[tuple[int, float]]:
        """The fused ranking of ``mode``: one ranking's own scores, or both fused."""
        if mode is SearchMode.LEXICAL:
            return [(d, lexical_scores[d]) for d in lexical]
        if mode is SearchMode.EMBEDDING:
            return [(d, semantic_scores[d]) for d in semantic]
        if self.fusion is Fusion.RRF:
            return reciprocal_rank_fusion({"lexical": lexical, "embedding": semantic}, k=self.rrf_k)
        calibrated = self._encoder.calibrate(
            np.array([semantic_scores[d] for d in semantic], dtype=np.float64), language=language
        )
        return weighted_score_fusion(
            lexical_scores,
            {d: float(c) for d, c in zip(semantic, calibrated, strict=True)},
            lexical_weight=self.lexical_weight,
        )

    def _lexical(
        self, arrays: _Arrays, terms: list[str], mask: np.ndarray
    ) -> tuple[list[int], dict[int, float]]:
        known = [t for t in terms if t in arrays.vocabulary]
        if not known or arrays.bm25 is None:
            return [], {}
        scores = np.asarray(arrays.bm25.get_scores(known), dtype=np.float64)
        scores[~mask] = 0.0
        return _top(scores, self.candidates, positive_only=True)

    def _semantic(
        self, arrays: _Arrays, model: str, vector: np.ndarray, mask: np.ndarray
    ) -> tuple[list[int], dict[int, float]]:
        if model not in arrays.models:
            return [], {}
        positions, matrix = arrays.models[model]
        keep = mask[positions]
        if not keep.any():
            return [], {}
        # Every row is scored and the filtered ones dropped after: copying the rows that pass
        # costs more than the product itself.
        cosines = matrix @ np.asarray(vector, dtype=np.float32)
        if not keep.all():
            positions, cosines = positions[keep], cosines[keep]
        order, scores = _top(cosines.astype(np.float64), self.candidates, positive_only=False)
        return (
            [int(positions[i]) for i in order],
            {int(positions[i]): s for i, s in scores.items()},
        )

    @staticmethod
    def _mask(arrays: _Arrays, filters: SearchFilters) -> np.ndarray:
        mask = np.ones(len(arrays.ids), dtype=bool)
        for name in ("discipline", "task_type", "institution_id", "language"):
            value = getattr(filters, name)
            if value is not None:
                mask &= arrays.columns[name] == value
        quality = arrays.quality
        if filters.min_quality is not None:
            mask &= ~np.isnan(quality) & (quality >= filters.min_quality)
        if filters.max_quality is not None:
            mask &= ~np.isnan(quality) & (quality <= filters.max_quality)
        return mask

    def _build(self) -> _Arrays:
        if self._arrays is not None:
            return self._arrays
        docs = list(self._docs.values())
        columns = {
            name: np.array([getattr(d, name) for d in docs], dtype=object)
            for name in ("discipline", "task_type", "institution_id", "language")
        }
        quality = np.array(
            [np.nan if d.quality is None else d.quality for d in docs], dtype=np.float64
        )
        bm25 = None
        vocabulary: dict[str, int] = {}
        if docs:
            import bm25s

            # bm25s sets its own logger to DEBUG at import; its progress notes are not ours to show.
            logging.getLogger("bm25s").setLevel(logging.WARNING)

            bm25 = bm25s.BM25()
            # bm25s cannot index an empty document list; a record without terms gets a marker
            bm25.index([list(d.terms) or ["\x00"] for d in docs], show_progress=False)
            vocabulary = dict(bm25.vocab_dict)
        models: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        by_model: dict[str, list[int]] = {}
        for i, d in enumerate(docs):
            by_model.setdefault(d.model, []).append(i)
        for name, positions in by_model.items():
            matrix = np.stack([docs[i].vector for i in positions]).astype(np.float32)
            models[name] = (np.array(positions, dtype=np.int64), matrix)
        self._arrays = _Arrays(
            ids=[d.record_id for d in docs],
            docs=docs,
            columns=columns,
            quality=quality,
            bm25=bm25,
            vocabulary=vocabulary,
            models=models,
        )
        return self._arrays


def _top(scores: np.ndarray, n: int, *, positive_only: bool) -> tuple[list[int], dict[int, float]]:
    """Positions of the ``n`` best scores, best first (ties by position), and their scores."""
    candidates = np.flatnonzero(scores > 0) if positive_only else np.arange(len(scores))
    if positive_only:
        candidates = candidates[np.isfinite(scores[candidates])]
    if len(candidates) > n:
        part = np.argpartition(-scores[candidates], n - 1)[:n]
        candidates = candidates[part]
    order = candidates[np.lexsort((candidates, -scores[candidates]))]
    return [int(i) for i in order], {int(i): float(scores[i]) for i in order}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
