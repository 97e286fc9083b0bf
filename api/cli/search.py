"""``byr search``: hybrid search over the accepted corpus of the home."""

from __future__ import annotations

from typing import Annotated

import typer

from api.cli.common import JsonOpt, app, emit, exit_on_error, open_parts, out


@app.command()
def search(
    query: Annotated[str, typer.Argument(metavar="QUERY", help="What to look for (zh or en).")],
    mode: Annotated[str, typer.Option(help="hybrid, lexical or embedding.")] = "hybrid",
    limit: Annotated[int, typer.Option(help="Hits to return (1-100).")] = 10,
    discipline: Annotated[str | None, typer.Option(help="Only this discipline.")] = None,
    task_type: Annotated[str | None, typer.Option(help="Only this task type.")] = None,
    institution: Annotated[str | None, typer.Option(help="Only this institution.")] = None,
    language: Annotated[str | None, typer.Option(help="Only records in zh, en or mixed.")] = None,
    min_quality: Annotated[
        float | None, typer.Option(help="Lowest governance quality score (0-1).")
    ] = None,
    max_quality: Annotated[
        float | None, typer.Option(help="Highest governance quality score (0-1).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Search accepted records: BM25 over words and embedding similarity, rank-fused. Run on the
    server's home, as its operator (texts included); exit 2 on a malformed query."""
    from api.services.keys import Principal
    from api.services.search import SearchRequest

    with exit_on_error(as_json), open_parts() as parts:
        parts.require_initialized()
        request = SearchRequest.parse(
            q=query,
            mode=mode,
            limit=limit,
            discipline=discipline,
            task_type=task_type,
            institution_id=institution,
            language=language,
            min_quality=min_quality,
            max_quality=max_quality,
        )
        result = parts.search.search(request, who=Principal.insecure_local())

    def human() -> None:
        hits = result["hits"]
        out.print(
            f"{len(hits)} hit(s) of {result['indexed_records']} indexed records"
            f" ({result['mode']}, query in {result['query_language']})",
            highlight=False,
        )
        for hit in hits:
            scores = hit["scores"]
            instruction = (hit["record"] or {}).get("instruction", "")
            out.print(
                f"{hit['ranks']['fused']:>3}. {hit['record_id']}  {hit['discipline']}"
                f"  {hit['language']}  fused={scores['fused']:.4f}"
                f"  quality={hit['quality']}",
                highlight=False,
            )
            if instruction:
                out.print(f"     {instruction[:100]}", highlight=False, markup=False)

    emit(result, as_json=as_json, human=human)


__all__ = ["search"]
