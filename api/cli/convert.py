"""``byr convert``: a question bank (CSV, TSV, XLSX, Parquet) written as Alpaca or ShareGPT."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli.common import EXIT_BAD_INPUT, EXIT_PARTIAL, JsonOpt, app, emit, err, exit_on_error, out
from api.cli.intake import MapOpt, MappingOpt, SheetOpt, conversion_options, print_issues
from ingest.banks.export import ExportFormat

_SUFFIXES = {ExportFormat.ALPACA: ".alpaca.json", ExportFormat.SHAREGPT: ".sharegpt.jsonl"}


def default_output(file: Path, to: ExportFormat) -> Path:
    """``bank.csv`` -> ``bank.alpaca.json`` (or ``bank.sharegpt.jsonl``) next to the input."""
    return file.with_name(file.stem + _SUFFIXES[to])


@app.command()
def convert(
    file: Annotated[Path, typer.Argument(help="A CSV, TSV, XLSX or Parquet question bank.")],
    to: Annotated[
        ExportFormat,
        typer.Option(
            "--to",
            help="alpaca: a JSON array of {instruction, input, output, discipline, task_type, "
            "language, license}; sharegpt: JSONL of {conversations (human, then gpt), "
            "discipline, ...}.",
        ),
    ] = ExportFormat.ALPACA,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Where to write (default: next to FILE, e.g. bank.alpaca.json)."
        ),
    ] = None,
    map_text: MapOpt = None,
    mapping_file: MappingOpt = None,
    sheet: SheetOpt = None,
    discipline: Annotated[
        str | None, typer.Option(help="Discipline for rows that name none.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Convert a question bank without submitting it: the same conversion and field rules as
    ``byr submit`` (options rendered into the question, the answer key and explanation into the
    output), every refused row reported by sheet, row and column. Nothing is desensitized: the
    file shows the institution its own rows, mapped; personal data is redacted at submit time.
    Exit 3 when some rows were refused, 2 when the file or the mapping cannot be used."""
    from ingest.banks import ConversionOptions, convert_bank, export
    from ingest.errors import InvalidIntakeArgument
    from ingest.formats import detect_format, source_label
    from ingest.intake import read_batch_file
    from ingest.records import Discipline
    from ingest.validation import DEFAULT_LIMITS

    with exit_on_error(as_json):
        fmt = detect_format(b"", source_name=file.name)
        if not fmt.is_tabular:
            raise InvalidIntakeArgument(
                "byr convert reads question banks named .csv, .tsv, .xlsx or .parquet "
                "(JSON and JSONL batches are submitted as they are)"
            )
        default_discipline = None
        if discipline is not None:
            default_discipline = Discipline.lookup(discipline)
            if default_discipline is None:
                accepted = ", ".join(d.value for d in Discipline)
                raise InvalidIntakeArgument(f"--discipline: expected one of {accepted}")
        options = (
            conversion_options(map_text=map_text, mapping_file=mapping_file, sheet=sheet)
            or ConversionOptions()
        )
        data = read_batch_file(file, limits=DEFAULT_LIMITS)
        if len(data) > DEFAULT_LIMITS.max_batch_bytes:
            raise InvalidIntakeArgument(
                f"{source_label(file.name)}: larger than the batch limit of "
                f"{DEFAULT_LIMITS.max_batch_bytes} bytes"
            )
        bank = convert_bank(
            data,
            source=source_label(file.name),
            fmt=fmt,
            options=options,
            limits=DEFAULT_LIMITS,
            default_discipline=default_discipline,
        )
    target = output if output is not None else default_output(file, to)
    try:
        target.write_bytes(export(bank.items, to))
    except OSError as e:
        err.print(f"[red]error:[/red] cannot write {target}: {e.strerror or e}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from e
    refused = bank.items_seen - len(bank.items)
    data_out: dict[str, Any] = {
        "source": bank.source,
        "format": bank.format.value,
        "to": to.value,
        "output": str(target),
        "sheets": list(bank.sheets),
        "rows": bank.items_seen,
        "converted": len(bank.items),
        "refused": refused,
        "issues": [issue.to_dict() for issue in bank.issues],
    }

    def human() -> None:
        print_issues(bank.issues)
        out.print(
            f"{bank.source}: {bank.items_seen} row{'s' if bank.items_seen != 1 else ''}, "
            f"{len(bank.items)} converted, {refused} refused -> {target} ({to.value})",
            highlight=False,
        )

    emit(data_out, as_json=as_json, human=human)
    if refused or any(issue.is_error for issue in bank.issues):
        raise typer.Exit(EXIT_PARTIAL)
