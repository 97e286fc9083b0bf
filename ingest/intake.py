"""The intake use case: read one submitted batch into validated, desensitized records and issues.

:func:`read_batch` reads the file once and writes nothing; :func:`read_batch_bytes` does the same
for bytes received over HTTP. Both are pure apart from that one read: the same bytes and arguments
always give the same result (the desensitizer is expected to be deterministic too).

For each valid item, in order: the language is detected on the submitted text and passed to the
desensitizer; every text is desensitized (instruction, input and output, and for a multi-turn
record the system prompt and each earlier user and assistant turn); the canonical fields are built
from the desensitized texts, with ``language`` detected again on all of them (placeholders
ignored) so that it can be recomputed from the stored record alone.

CSV, TSV, XLSX and Parquet question banks (chosen by the file name's extension) go through
:func:`ingest.banks.convert_bank` instead of the JSON reader: each row becomes an item checked by
the same field rules, then desensitized like any other; ``conversion`` says which column holds which
field and which sheet to read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from ingest.errors import BatchUnreadable, InvalidIntakeArgument
from ingest.formats import BatchFormat, detect_format, make_issue, parse_batch, source_label
from ingest.language import detect_language
from ingest.records import (
    CanonicalFields,
    Desensitizer,
    Discipline,
    IntakeIssue,
    IssueCode,
    Redaction,
    SubmittedRecord,
)
from ingest.validation import (
    DEFAULT_LIMITS,
    IntakeLimits,
    ValidItem,
    normalize_text,
    validate_batch,
)
from ledger.ids import INSTITUTION_ID_RULE, is_valid_institution_id

if TYPE_CHECKING:
    from ingest.banks import ConversionOptions

__all__ = [
    "Desensitizer",
    "IntakeLimits",
    "IntakeResult",
    "Redaction",
    "read_batch",
    "read_batch_bytes",
    "read_batch_file",
]


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """What intake made of one batch.

    ``records`` are the accepted records in file order; ``issues`` every problem ordered by line. An
    item becomes a record when none of its issues is an error (a warning such as ``unknown_field``
    keeps it).
    """

    source: str
    format: BatchFormat | None
    """``None`` when the batch was refused before its format mattered (too large)."""
    institution_id: str
    records: tuple[SubmittedRecord, ...]
    issues: tuple[IntakeIssue, ...]
    items_seen: int

    @property
    def ok(self) -> bool:
        """True when no issue is an error."""
        return not any(issue.is_error for issue in self.issues)

    @property
    def errors(self) -> tuple[IntakeIssue, ...]:
        return tuple(issue for issue in self.issues if issue.is_error)

    @property
    def warnings(self) -> tuple[IntakeIssue, ...]:
        return tuple(issue for issue in self.issues if not issue.is_error)

    def rejected_lines(self) -> list[int]:
        """Lines of items that did not become records, ascending."""
        return sorted({i.line for i in self.errors if i.line is not None and i.index is not None})

    def issue_counts(self) -> dict[str, int]:
        """Issue code -> number of issues, sorted by code."""
        return dict(sorted(Counter(issue.code.value for issue in self.issues).items()))

    def redaction_totals(self) -> dict[str, int]:
        """PII type -> replacements made across all records, sorted by type."""
        totals: Counter[str] = Counter()
        for record in self.records:
            totals.update(record.redactions)
        return dict(sorted(totals.items()))

    def discipline_counts(self) -> dict[str, int]:
        """Discipline -> number of accepted records, in :class:`Discipline` order."""
        counts = Counter(record.fields.discipline for record in self.records)
        return {d.value: counts[d] for d in Discipline if counts[d]}

    def summary(self) -> str:
        """One human-readable line: items read, records accepted, rejections by code, warnings and
        PII replacements."""
        rejected = self.items_seen - len(self.records)
        accepted = len(self.records)
        parts = [
            f"{self.source}: {self.items_seen} item{'s' if self.items_seen != 1 else ''}, "
            f"{accepted} record{'s' if accepted != 1 else ''} accepted"
        ]
        error_codes = Counter(issue.code.value for issue in self.errors)
        if rejected or error_codes:
            detail = ", ".join(f"{code} {n}" for code, n in sorted(error_codes.items()))
            parts.append(f"{rejected} rejected (errors: {detail})")
        if self.warnings:
            n = len(self.warnings)
            parts.append(f"{n} warning{'s' if n != 1 else ''}")
        totals = self.redaction_totals()
        if totals:
            detail = ", ".join(f"{kind} {n}" for kind, n in totals.items())
            parts.append(f"{sum(totals.values())} PII replacements ({detail})")
        return ", ".join(parts)


def read_batch(
    path: Path,
    *,
    institution_id: str,
    default_discipline: Discipline | str | None = None,
    limits: IntakeLimits = DEFAULT_LIMITS,
    desensitizer: Desensitizer | None = None,
    fmt: BatchFormat | None = None,
    conversion: ConversionOptions | None = None,
) -> IntakeResult:
    """Read the batch file at ``path`` (format from its name and content unless ``fmt`` is given;
    ``conversion`` for a tabular question bank: column mapping and sheet).

    Raises :class:`~ingest.errors.BatchUnreadable` when the file cannot be read and
    :class:`~ingest.errors.InvalidIntakeArgument` for a bad institution id or default discipline
    (naming the rule, not the value); every problem inside the file is an issue of the result
    instead, located but never quoting the submitted text (see :mod:`ingest.validation`).
    """
    _check_arguments(institution_id=institution_id, default_discipline=default_discipline)
    return read_batch_bytes(
        read_batch_file(path, limits=limits),
        source_name=Path(path).name,
        institution_id=institution_id,
        default_discipline=default_discipline,
        limits=limits,
        desensitizer=desensitizer,
        fmt=fmt,
        conversion=conversion,
    )


def read_batch_file(path: Path, *, limits: IntakeLimits = DEFAULT_LIMITS) -> bytes:
    """The bytes of the batch file at ``path``, at most one byte past the batch size limit (enough
    for intake to report the batch as too large); raises :class:`~ingest.errors.BatchUnreadable`
    when the file cannot be read."""
    try:
        with Path(path).open("rb") as handle:
            return handle.read(limits.max_batch_bytes + 1)
    except OSError as e:
        raise BatchUnreadable(f"cannot read batch {path}: {e.strerror or e}") from e


def read_batch_bytes(
    data: bytes,
    *,
    source_name: str,
    institution_id: str,
    default_discipline: Discipline | str | None = None,
    limits: IntakeLimits = DEFAULT_LIMITS,
    desensitizer: Desensitizer | None = None,
    fmt: BatchFormat | None = None,
    conversion: ConversionOptions | None = None,
) -> IntakeResult:
    """Like :func:`read_batch` for a batch already in memory; ``source_name`` is the submitted file
    name (only its last component is kept) and decides the format together with the content.

    A tabular file that cannot be read as its extension says (a corrupt workbook, a CSV named
    ``.xlsx``, a workbook too large once unzipped) or whose columns cannot be mapped raises an
    :class:`~ingest.errors.IntakeError` (``BankUnreadable``, ``InvalidMapping``)."""
    discipline = _check_arguments(
        institution_id=institution_id, default_discipline=default_discipline
    )
    source = source_label(source_name)
    if len(data) > limits.max_batch_bytes:
        issue = make_issue(
            source=source,
            fmt=BatchFormat.JSONL,
            line=None,
            index=None,
            code=IssueCode.BATCH_TOO_LARGE,
            detail=f"the batch is larger than the limit of {limits.max_batch_bytes} bytes",
        )
        return IntakeResult(
            source=source,
            format=None,
            institution_id=institution_id,
            records=(),
            issues=(issue,),
            items_seen=0,
        )
    fmt = fmt or detect_format(data, source_name=source)
    if fmt.is_tabular:
        from ingest.banks import convert_bank

        bank = convert_bank(
            data,
            source=source,
            fmt=fmt,
            options=conversion,
            limits=limits,
            default_discipline=discipline,
        )
        validated, items_seen = bank.validated, bank.items_seen
    else:
        if conversion is not None and (conversion.mapping or conversion.sheet):
            raise InvalidIntakeArgument(
                "a column mapping or a sheet applies to CSV, TSV, XLSX and Parquet files only"
            )
        parsed = parse_batch(data, source_name=source, fmt=fmt, max_items=limits.max_records)
        validated = validate_batch(parsed, limits=limits, default_discipline=discipline)
        items_seen = parsed.items_seen
    records = tuple(
        _submitted(item, source=source, institution_id=institution_id, desensitizer=desensitizer)
        for item in validated.items
    )
    return IntakeResult(
        source=source,
        format=fmt,
        institution_id=institution_id,
        records=records,
        issues=validated.issues,
        items_seen=items_seen,
    )


def _check_arguments(
    *, institution_id: str, default_discipline: Discipline | str | None
) -> Discipline | None:
    # The messages name the rule, never the value: an argument may come straight from a request
    # (see ingest.validation), and these errors are logged and returned to clients.
    if not is_valid_institution_id(institution_id):
        raise InvalidIntakeArgument(f"invalid institution id: expected {INSTITUTION_ID_RULE}")
    if default_discipline is None or isinstance(default_discipline, Discipline):
        return default_discipline
    discipline = Discipline.lookup(default_discipline)
    if discipline is None:
        accepted = ", ".join(d.value for d in Discipline)
        raise InvalidIntakeArgument(
            f"unknown default discipline; expected one of {accepted} "
            "(or their English or Chinese names)"
        )
    return discipline


def _submitted(
    item: ValidItem, *, source: str, institution_id: str, desensitizer: Desensitizer | None
) -> SubmittedRecord:
    texts = item.texts()
    counts: Counter[str] = Counter()
    if desensitizer is not None:
        language = detect_language(*texts)
        redacted: list[str] = []
        for text in texts:
            if not text:
                redacted.append(text)
                continue
            redaction = desensitizer.redact(text, language=language.value)
            redacted.append(normalize_text(redaction.text))
            counts.update({kind: n for kind, n in redaction.counts.items() if n > 0})
        texts = tuple(redacted)
    # texts() is (system, *earlier turns, instruction, input, output).
    system, *earlier, instruction, input_text, output = texts
    fields = CanonicalFields(
        instruction=instruction,
        input=input_text,
        output=output,
        discipline=item.discipline,
        task_type=item.task_type,
        language=detect_language(*texts),
        license=item.license,
        institution_id=institution_id,
        system=system,
        history=tuple(zip(earlier[::2], earlier[1::2], strict=True)),
    )
    return SubmittedRecord(
        fields=fields,
        source=source,
        line=item.line,
        index=item.index,
        redactions=MappingProxyType(dict(sorted(counts.items()))),
    )
