"""Search the accepted corpus (``byr search``, ``GET /v1/search``).

The service parses a request (every field checked here, for both doors, and named in the error,
never quoted), brings its index up to the ledger (:func:`ingest.search.follow.sync_index`), asks
the index, and dresses the hits: matching spans in the record's fields, governance's flags and
reasons, and the text for those allowed to read it.

Who sees what (docs/API.md): trainers and admins search the whole accepted corpus, a contributor
only its own institution's records (the institution filter is forced), auditors not at all. A
hit's text follows the rule of the accepted feed: the owning contributor always, the trainer once
the batch is anchored; everyone else gets the hit without text (its spans are offsets only).
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api.services.keys import NotAuthorized, Principal, Role
from api.visibility import check_institution
from ingest.language import detect_language
from ingest.records import Discipline, Language, TaskType
from ingest.search.errors import InvalidQuery
from ingest.search.index import MAX_LIMIT, SearchFilters, SearchHit, SearchIndex, SearchMode
from ingest.search.tokenize import matching_spans, term_list
from ledger.application import CorpusLedger
from ledger.canonical import record_texts
from ledger.errors import NotFound
from ledger.ids import is_valid_institution_id

if TYPE_CHECKING:
    from ingest.governance.embeddings import Embedder
    from ingest.search.store import SearchStore

_FEED_STATUSES = frozenset({"anchored", "rewarded"})


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """A parsed search: the query, the mode, the limit and the filters."""

    q: str
    mode: SearchMode = SearchMode.HYBRID
    limit: int = 10
    filters: SearchFilters = field(default_factory=SearchFilters)

    @classmethod
    def parse(
        cls,
        *,
        q: str,
        mode: str = "hybrid",
        limit: int = 10,
        discipline: str | None = None,
        task_type: str | None = None,
        institution_id: str | None = None,
        language: str | None = None,
        min_quality: float | None = None,
        max_quality: float | None = None,
    ) -> SearchRequest:
        """The request of these raw values; raises :class:`InvalidQuery` naming a bad field."""
        try:
            parsed_mode = SearchMode(mode)
        except ValueError:
            raise InvalidQuery("mode", _one_of(SearchMode)) from None
        if not 1 <= limit <= MAX_LIMIT:
            raise InvalidQuery("limit", f"must be from 1 to {MAX_LIMIT}")
        for name, value, vocabulary in (
            ("discipline", discipline, Discipline),
            ("task_type", task_type, TaskType),
            ("language", language, Language),
        ):
            if value is not None and value not in {m.value for m in vocabulary}:
                raise InvalidQuery(name, _one_of(vocabulary))
        if institution_id is not None and not is_valid_institution_id(institution_id):
            raise InvalidQuery("institution_id", "is not a well-formed institution id")
        stripped = q.strip()
        if not stripped:
            raise InvalidQuery("q", "must not be empty")
        return cls(
            q=stripped,
            mode=parsed_mode,
            limit=limit,
            filters=SearchFilters(
                discipline=discipline,
                task_type=task_type,
                institution_id=institution_id,
                language=language,
                min_quality=min_quality,
                max_quality=max_quality,
            ),
        )


def _one_of(vocabulary: Any) -> str:
    return "must be one of " + ", ".join(m.value for m in vocabulary)


class SearchService:
    """Hybrid search over one ledger's accepted corpus; the index lives in ``directory``
    (``BYR_HOME/search``) and reads vectors from governance's embedding cache in
    ``governance_dir``."""

    def __init__(
        self,
        *,
        ledger: CorpusLedger,
        directory: Path,
        governance_dir: Path,
        index: SearchIndex | None = None,
    ) -> None:
        self.ledger = ledger
        self.directory = directory
        self.governance_dir = governance_dir
        self._index = index
        self._embedder: Embedder | None = None
        self._store: SearchStore | None = None
        self._lock = threading.Lock()

    @property
    def index(self) -> SearchIndex:
        """The index, opened on first use (with its embedder and file)."""
        if self._index is None:
            from ingest.governance.embeddings import Embedder
            from ingest.governance.storage import EMBEDDINGS_FILE, load_cache_key
            from ingest.search.store import SearchStore
            from ledger.files import private_dir

            private_dir(self.directory)
            self._embedder = Embedder(
                cache_path=self.governance_dir / EMBEDDINGS_FILE,
                key=load_cache_key(self.governance_dir),
            )
            self._store = SearchStore(self.directory)
            self._index = SearchIndex(encoder=self._embedder, store=self._store)
        return self._index

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        if self._embedder is not None:
            self._embedder.close()

    def warm(self) -> None:
        """Open the index, bring it up to the ledger and load the query encoders of both
        languages, so that the first search does not pay for them (seconds on a small machine)."""
        self.sync()
        with self._lock:
            for language in (Language.EN.value, Language.ZH.value):
                self.index.encoder.encode_raw(["warm"], language=language)

    def sync(self) -> dict[str, int]:
        """Bring the index up to the ledger as projected now; what changed."""
        from ingest.search.follow import sync_index

        with self._lock:
            return asdict(sync_index(self.index, self.ledger))

    def search(self, request: SearchRequest, *, who: Principal) -> dict[str, Any]:
        """The hits of ``request`` as ``who`` may see them (JSON-ready)."""
        if not who.has(Role.ADMIN, Role.TRAINER, Role.CONTRIBUTOR):
            raise NotAuthorized("search is for the roles admin, trainer, contributor")
        filters = request.filters
        if who.role is Role.CONTRIBUTOR and not who.local:
            if filters.institution_id is not None:
                check_institution(who, filters.institution_id)
            filters = SearchFilters(**{**asdict(filters), "institution_id": who.institution_id})
        synced = self.sync()
        with self._lock:
            hits = self.index.search(
                request.q, filters=filters, mode=request.mode, limit=request.limit
            )
            indexed = len(self.index)
        wanted = frozenset(term_list(request.q))
        out = [h for hit in hits if (h := self._dress(hit, wanted, who)) is not None]
        return {
            "query": request.q,
            "query_language": detect_language(request.q).value,
            "mode": request.mode.value,
            "limit": request.limit,
            "filters": asdict(filters),
            "indexed_records": indexed,
            "index_position": synced["position"],
            "hits": out,
        }

    def _dress(
        self, hit: SearchHit, wanted: frozenset[str], who: Principal
    ) -> dict[str, Any] | None:
        try:
            view = self.ledger.record(hit.record_id)
            batch = self.ledger.batch(hit.batch_id)
        except NotFound:
            return None
        if view.record is None:  # erased since the index last synced
            return None
        decision = view.decision or {}
        shows_text = who.owns(batch.institution_id) or (
            who.role is Role.TRAINER and batch.status in _FEED_STATUSES
        )
        # Spans in every turn the index reads (a multi-turn record's history too), named as
        # governance flags name fields: instruction, input, output, history[i][0|1].
        spans = [
            {"field": name, "start": start, "end": end}
            for name, text in record_texts(view.record)
            if name != "system"
            for start, end in matching_spans(text, wanted)
        ]
        return {
            "record_id": hit.record_id,
            "batch_id": hit.batch_id,
            "institution_id": hit.institution_id,
            "discipline": hit.discipline,
            "task_type": hit.task_type,
            "language": hit.language,
            "quality": hit.quality,
            "anchored": batch.status in _FEED_STATUSES,
            "scores": hit.scores(),
            "ranks": hit.ranks(),
            "spans": spans,
            "reasons": list(decision.get("reasons", view.reasons)),
            "flags": list(decision.get("flags", [])),
            "record": dict(view.record) if shows_text else None,
        }
