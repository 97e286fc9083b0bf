"""Search over the accepted corpus (``byr search``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import PrincipalDep, StateDep, require
from api.errors import error_responses
from api.services.keys import Role
from api.services.search import SearchRequest
from ingest.search.index import MAX_LIMIT, MAX_QUERY_CHARS
from ledger.canonical import RecordValue
from ledger.ids import INSTITUTION_ID_RE
from ledger.vocabulary import Discipline, TaskType

router = APIRouter(prefix="/search", tags=["search"])


class SearchSpan(BaseModel):
    field: str
    start: int
    end: int


class SearchHitPublic(BaseModel):
    """One hit: ids, filter columns, scores and ranks (``null`` outside that ranking), the
    matching spans, governance's reasons and flags, and the record's fields for those allowed to
    read them (``null`` otherwise)."""

    record_id: str
    batch_id: str
    institution_id: str
    discipline: str
    task_type: str
    language: str
    quality: float | None
    anchored: bool
    scores: dict[str, float | None]
    ranks: dict[str, int | None]
    spans: list[SearchSpan]
    reasons: list[str]
    flags: list[dict[str, Any]]
    record: dict[str, RecordValue] | None


class SearchResultPublic(BaseModel):
    query: str
    query_language: str
    mode: str
    limit: int
    filters: dict[str, Any]
    indexed_records: int
    index_position: int
    hits: list[SearchHitPublic]


@router.get(
    "",
    dependencies=[require(Role.ADMIN, Role.TRAINER, Role.CONTRIBUTOR)],
    responses=error_responses(401, 403, 422),
)
def search(
    state: StateDep,
    who: PrincipalDep,
    q: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="The query.")],
    mode: Literal["hybrid", "lexical", "embedding"] = "hybrid",
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 10,
    discipline: Discipline | None = None,
    task_type: TaskType | None = None,
    institution_id: Annotated[str | None, Query(pattern=INSTITUTION_ID_RE.pattern)] = None,
    language: Literal["zh", "en", "mixed"] | None = None,
    min_quality: Annotated[float | None, Query(ge=0, le=1)] = None,
    max_quality: Annotated[float | None, Query(ge=0, le=1)] = None,
) -> SearchResultPublic:
    """Hybrid search (BM25 + embeddings, rank-fused) over accepted, not erased records. A
    contributor searches its own institution's records only; texts are shown to the owning
    contributor, and to the trainer once the batch is anchored."""
    request = SearchRequest.parse(
        q=q,
        mode=mode,
        limit=limit,
        discipline=discipline.value if discipline is not None else None,
        task_type=task_type.value if task_type is not None else None,
        institution_id=institution_id,
        language=language,
        min_quality=min_quality,
        max_quality=max_quality,
    )
    return SearchResultPublic(**state.parts.search.search(request, who=who))
