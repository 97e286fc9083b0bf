"""A question bank as a validated batch: the one conversion ``byr convert`` and intake share.

:func:`convert_bank` reads the file (:mod:`ingest.banks.reading`), finds each field's column
(:mod:`ingest.mapping`), turns each non-empty row into an Alpaca-style item
(:mod:`ingest.banks.rows`) and runs the items through the same field rules as a JSON batch
(:func:`ingest.validation.validate_batch`), so every rule of intake applies to tabular rows too.
Issues are then located the way a spreadsheet user looks for them: sheet, row (header = row 1) and
column header, never the cell's value.

What it returns is not desensitized: intake redacts personal data afterwards; ``byr convert``
shows the institution its own rows, mapped, as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ingest.banks.reading import BankUnreadable, Sheet, read_sheets
from ingest.banks.rows import convert_row, is_empty_row
from ingest.formats import BatchFormat, ParsedBatch, RawItem, describe_location
from ingest.mapping import ColumnMapping, InvalidMapping, resolve_columns, shown_header
from ingest.records import Discipline, IntakeIssue, IssueCode, Severity
from ingest.validation import (
    IntakeLimits,
    ValidatedBatch,
    ValidItem,
    duplicate_key,
    normalize_text,
    validate_batch,
)

__all__ = [
    "BankUnreadable",
    "ConversionOptions",
    "ConvertedBank",
    "InvalidMapping",
    "RowOrigin",
    "convert_bank",
]

_FIRST_COPY = re.compile(r"same instruction, input and output as line \d+(?: \(index \d+\))?$")


@dataclass(frozen=True, slots=True)
class ConversionOptions:
    """How to read a question bank: the column mapping (``None``: well-known headers only) and,
    for a workbook, the one sheet to read (``None``: every sheet)."""

    mapping: ColumnMapping | None = None
    sheet: str | None = None


@dataclass(frozen=True, slots=True)
class RowOrigin:
    """Where an item came from: sheet, row, and the header of the column of each field."""

    sheet: str | None
    row: int
    columns: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConvertedBank:
    """The rows of a bank as a validated batch: valid items in file order (sheet by sheet), every
    issue located by sheet, row and column, and where each item came from (by item index)."""

    source: str
    format: BatchFormat
    validated: ValidatedBatch
    origins: tuple[RowOrigin, ...]
    items_seen: int
    sheets: tuple[str, ...] = ()

    @property
    def items(self) -> tuple[ValidItem, ...]:
        return self.validated.items

    @property
    def issues(self) -> tuple[IntakeIssue, ...]:
        return self.validated.issues


def locate(source: str, sheet: str | None, row: int | None, column: str | None) -> str:
    """``bank.xlsx: sheet '单选', row 5, column '答案'`` (parts that do not apply left out)."""
    parts = [f"sheet '{sheet}'"] if sheet is not None else []
    if row is not None:
        parts.append(f"row {row}")
    if column is not None:
        parts.append(f"column {column}")
    return f"{source}: {', '.join(parts)}" if parts else source


def _issue(
    *,
    source: str,
    sheet: str | None,
    row: int | None,
    index: int | None,
    field_name: str | None,
    column: str | None,
    code: IssueCode,
    detail: str,
    severity: Severity = Severity.ERROR,
    column_shown: str | None = None,
) -> IntakeIssue:
    where = locate(source, sheet, row, column_shown)
    if field_name is not None:
        where += f" (field '{field_name}')"
    return IntakeIssue(
        source=source,
        line=row,
        index=index,
        field=field_name,
        code=code,
        message=f"{where}: {detail}",
        severity=severity,
        sheet=sheet,
        column=column,
    )


def convert_bank(
    data: bytes,
    *,
    source: str,
    fmt: BatchFormat,
    options: ConversionOptions | None = None,
    limits: IntakeLimits,
    default_discipline: Discipline | None = None,
) -> ConvertedBank:
    """Convert and validate the rows of a tabular file (see the module docstring).

    Raises :class:`BankUnreadable` for a file that is not what ``fmt`` says or is too large once
    expanded, and :class:`InvalidMapping` when a sheet's columns cannot be mapped (naming the
    missing field and the headers seen). Everything wrong inside a row is an issue instead."""
    options = options or ConversionOptions()
    sheets = read_sheets(
        data,
        source=source,
        fmt=fmt,
        max_bytes=limits.max_batch_bytes,
        max_rows=limits.max_records,
        sheet=options.sheet,
    )
    items: list[RawItem] = []
    origins: list[RowOrigin] = []
    issues: list[IntakeIssue] = []
    seen = 0
    cut = False
    for sheet in sheets:
        if not sheet.headers or not any(sheet.headers):
            continue  # an empty sheet (a workbook's unused "Sheet2")
        where = locate(source, sheet.name, None, None)
        columns = resolve_columns(sheet.headers, options.mapping, where=where)
        for row, cells in sheet.rows:
            if is_empty_row(cells, columns):
                continue
            if seen >= limits.max_records:
                issues.append(
                    _issue(
                        source=source, sheet=sheet.name, row=row, index=seen, field_name=None,
                        column=None, code=IssueCode.TOO_MANY_RECORDS,
                        detail=f"the batch has more than {limits.max_records} records; this row "
                        "and everything after it were not read",
                    )
                )  # fmt: skip
                cut = True
                break
            converted = convert_row(cells, columns)
            index = seen
            seen += 1
            origins.append(RowOrigin(sheet=sheet.name, row=row, columns=dict(converted.columns)))
            for problem in converted.problems:
                header = columns.header_of(problem.field)
                issues.append(
                    _issue(
                        source=source, sheet=sheet.name, row=row, index=index,
                        field_name=problem.field, column=header,
                        column_shown=_shown(header, sheet), code=problem.code,
                        detail=problem.detail,
                    )
                )  # fmt: skip
            if not converted.problems:
                items.append(RawItem(line=row, index=index, value=converted.value))
        if cut:
            break
    if seen == 0 and not issues:
        issues.append(
            _issue(
                source=source, sheet=None, row=None, index=None, field_name=None, column=None,
                code=IssueCode.EMPTY_BATCH, detail="no rows with questions",
            )
        )  # fmt: skip
    parsed = ParsedBatch(source=source, format=fmt, items=tuple(items), issues=(), items_seen=seen)
    validated = validate_batch(parsed, limits=limits, default_discipline=default_discipline)
    by_name = {sheet.name: sheet for sheet in sheets}
    located = [
        _relocated(issue, parsed=parsed, origins=origins, validated=validated, sheets=by_name)
        for issue in validated.issues
    ]
    order = {sheet.name: n for n, sheet in enumerate(sheets)}
    every = sorted(
        [*issues, *located],
        key=lambda i: (order.get(i.sheet, 0), i.line if i.line is not None else 0),
    )
    return ConvertedBank(
        source=source,
        format=fmt,
        validated=ValidatedBatch(items=validated.items, issues=tuple(every)),
        origins=tuple(origins),
        items_seen=seen,
        sheets=tuple(s.name for s in sheets if s.name is not None),
    )


def _shown(header: str | None, sheet: Sheet) -> str | None:
    if header is None:
        return None
    return shown_header(header, sheet.headers.index(header) + 1)


def _relocated(
    issue: IntakeIssue,
    *,
    parsed: ParsedBatch,
    origins: list[RowOrigin],
    validated: ValidatedBatch,
    sheets: dict[str | None, Sheet],
) -> IntakeIssue:
    """A validation issue restated with the sheet, row and column of the item it is about."""
    if issue.index is None or not 0 <= issue.index < len(origins):
        return issue
    origin = origins[issue.index]
    prefix = describe_location(
        source=issue.source, line=issue.line, index=issue.index, fmt=parsed.format
    )
    if issue.field is not None:
        prefix += f": field '{issue.field}'"
    detail = issue.message.removeprefix(prefix + ": ")
    if issue.code is IssueCode.DUPLICATE_IN_BATCH:
        first = _first_copy(issue.index, parsed=parsed, validated=validated, origins=origins)
        if first is not None:
            detail = _FIRST_COPY.sub(f"same instruction, input and output as {first}", detail)
    header = origin.columns.get(issue.field) if issue.field is not None else None
    sheet = sheets.get(origin.sheet)
    shown = _shown(header, sheet) if sheet is not None and header is not None else None
    return _issue(
        source=issue.source,
        sheet=origin.sheet,
        row=origin.row,
        index=issue.index,
        field_name=issue.field,
        column=header,
        column_shown=shown,
        code=issue.code,
        detail=detail,
        severity=issue.severity,
    )


def _first_copy(
    index: int, *, parsed: ParsedBatch, validated: ValidatedBatch, origins: list[RowOrigin]
) -> str | None:
    """Where the first copy of the duplicate item ``index`` is, as ``row N`` (with its sheet)."""
    item = next((i for i in parsed.items if i.index == index), None)
    if item is None:
        return None
    value: dict[str, Any] = item.value
    key = duplicate_key(
        normalize_text(str(value.get("instruction") or "")),
        normalize_text(str(value.get("input") or "")),
        normalize_text(str(value.get("output") or "")),
    )
    for valid in validated.items:
        if duplicate_key(valid.instruction, valid.input, valid.output) == key:
            origin = origins[valid.index]
            sheet = f"sheet '{origin.sheet}', " if origin.sheet is not None else ""
            return f"{sheet}row {origin.row}"
    return None
