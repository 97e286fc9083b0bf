"""``byr export``: the accepted corpus as a folder other trainers read."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.cli.common import JsonOpt, app, emit, exit_on_error, open_parts, out


@app.command()
def export(
    format_: Annotated[
        str,
        typer.Option("--format", help="alpaca, sharegpt, llamafactory or hf."),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write (new or empty).")],
    discipline: Annotated[
        list[str] | None, typer.Option(help="Records of this discipline only (repeatable).")
    ] = None,
    task_type: Annotated[
        list[str] | None, typer.Option(help="Records of this task type only (repeatable).")
    ] = None,
    language: Annotated[
        list[str] | None, typer.Option(help="zh, en or mixed (repeatable).")
    ] = None,
    institution: Annotated[
        list[str] | None, typer.Option(help="Records of this institution only (repeatable).")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many records.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a snapshot of the accepted corpus (accepted, not erased records of anchored
    batches) with its dataset Merkle root and manifest; the same snapshot gives the same bytes."""
    from api.services.export import ExportRequest, ExportService, parse_format

    with exit_on_error(as_json):
        fmt = parse_format(format_)
        request = ExportRequest(
            format=fmt,
            disciplines=discipline or [],
            task_types=task_type or [],
            languages=language or [],
            institutions=institution or [],
            limit=limit,
        )
        with open_parts() as parts:
            parts.require_initialized()
            summary = ExportService(ledger=parts.ledger).write(request, output)

    def human() -> None:
        out.print(f"exported  {summary['record_count']} records as {summary['format']}")
        out.print(f"folder    {summary['directory']}")
        out.print(f"dataset   {summary['dataset_root']}")
        for name in summary["files"]:
            out.print(f"          {name}")

    emit(summary, as_json=as_json, human=human)
