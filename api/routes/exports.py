"""Exports of the accepted corpus (``byr export``) as one ``.tar.gz`` archive of the folder."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import StringConstraints

from api.deps import PartsDep, PrincipalDep, require
from api.errors import error_responses
from api.services.export import (
    ARCHIVE_MEDIA_TYPE,
    ExportFormat,
    ExportRequest,
    ExportService,
)
from api.services.feed import READERS, feed_filter
from ledger.ids import INSTITUTION_ID_RE

router = APIRouter(
    prefix="/exports",
    tags=["feed"],
    dependencies=[require(*READERS)],
    responses=error_responses(401, 403, 404, 422),
)

FilterQuery = Annotated[list[Annotated[str, StringConstraints(max_length=64)]] | None, Query()]
InstitutionQuery = Annotated[
    list[Annotated[str, StringConstraints(pattern=INSTITUTION_ID_RE.pattern)]] | None,
    Query(description="Contributors: their own only."),
]


@router.get(
    "/{format}",
    response_class=Response,
    responses={200: {"content": {ARCHIVE_MEDIA_TYPE: {}}, "description": "A .tar.gz archive"}},
)
def export_corpus(
    format: ExportFormat,
    parts: PartsDep,
    who: PrincipalDep,
    discipline: FilterQuery = None,
    task_type: FilterQuery = None,
    language: FilterQuery = None,
    institution: InstitutionQuery = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """A snapshot of the accepted corpus at the log's head (the ``byr export`` folder, with its
    dataset root and manifest) as a ``.tar.gz`` archive holding one folder. The same snapshot
    gives the same bytes. Filters repeat (``?discipline=a&discipline=b``); a contributor exports
    its own institution's records only. 404 when the selection is empty."""
    institutions = list(institution or [])
    scoped = [feed_filter(who, institution=i).institution_id for i in institutions] or [
        feed_filter(who).institution_id
    ]
    export = ExportService(ledger=parts.ledger).build(
        ExportRequest(
            format=format,
            disciplines=list(discipline or []),
            task_types=list(task_type or []),
            languages=list(language or []),
            institutions=[i for i in scoped if i is not None],
            limit=limit,
        )
    )
    return Response(
        content=export.archive(),
        media_type=ARCHIVE_MEDIA_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{export.folder_name}.tar.gz"',
            "X-Dataset-Root": export.dataset_root,
            "X-Record-Count": str(export.record_count),
        },
    )
