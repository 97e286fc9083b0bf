"""The intake data model: issues, canonical fields and submitted records.

Everything here is pure data and rules (no I/O). A *canonical record* has exactly the fields listed
in :data:`CANONICAL_FIELD_NAMES`, all strings; its hash is computed elsewhere
(``ledger/canonical.py``) from :meth:`CanonicalFields.as_dict`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Protocol

# The vocabularies live below intake (the trainer's evaluation shares them); intake re-exports them.
from ledger.vocabulary import DEFAULT_TASK_TYPE as DEFAULT_TASK_TYPE
from ledger.vocabulary import Discipline as Discipline
from ledger.vocabulary import Language as Language
from ledger.vocabulary import TaskType as TaskType

DEFAULT_LICENSE = "CC-BY-4.0"

CANONICAL_FIELD_NAMES: tuple[str, ...] = (
    "instruction",
    "input",
    "output",
    "discipline",
    "task_type",
    "language",
    "license",
    "institution_id",
)


# ---------------------------------------------------------------------------------------------
# Intake issues
# ---------------------------------------------------------------------------------------------


class Severity(StrEnum):
    """An ``error`` keeps the item out of the batch; a ``warning`` is only reported."""

    ERROR = "error"
    WARNING = "warning"


class IssueCode(StrEnum):
    """Stable machine codes of intake problems. Clients may match on these; never rename one."""

    NOT_UTF8 = "not_utf8"
    INVALID_JSON = "invalid_json"
    NOT_AN_ARRAY = "not_an_array"
    NOT_AN_OBJECT = "not_an_object"
    EMPTY_BATCH = "empty_batch"
    BATCH_TOO_LARGE = "batch_too_large"
    TOO_MANY_RECORDS = "too_many_records"
    DUPLICATE_KEY = "duplicate_key"
    MISSING_FIELD = "missing_field"
    EMPTY_FIELD = "empty_field"
    WRONG_TYPE = "wrong_type"
    UNKNOWN_FIELD = "unknown_field"
    TOO_LONG = "too_long"
    UNKNOWN_DISCIPLINE = "unknown_discipline"
    UNKNOWN_TASK_TYPE = "unknown_task_type"
    INVALID_LICENSE = "invalid_license"
    DUPLICATE_IN_BATCH = "duplicate_in_batch"
    NUL_CHARACTER = "nul_character"


WARNING_CODES: frozenset[IssueCode] = frozenset({IssueCode.UNKNOWN_FIELD})
"""Codes reported as warnings: an unknown field is dropped and the record is kept, because
Alpaca-style exports commonly carry extra keys (``id``, ``history``, ``system``) that say nothing
about validity."""


@dataclass(frozen=True, slots=True)
class IntakeIssue:
    """One problem found in a batch, with where it is.

    ``line`` is the 1-based line where the item starts (or where the problem is, for syntax errors);
    ``index`` is the 0-based position of the item in the batch (the array index for a JSON array,
    the count of non-blank lines before it for JSONL); ``field`` names the offending field. Each is
    ``None`` when it does not apply. ``message`` is complete on its own, e.g.
    ``sample.jsonl:14: field 'output': expected a string, got number``. Neither ``message`` nor
    ``field`` ever holds submitted text (see :mod:`ingest.validation`): issues are stored in the
    event log and served by the API.

    For a tabular file (CSV, TSV, XLSX, Parquet; see :mod:`ingest.banks`) ``line`` is the row as
    a spreadsheet shows it (the header is row 1), ``sheet`` the workbook sheet (XLSX only) and
    ``column`` the header of the column the problem is in; both are ``None`` for JSON batches.
    """

    source: str
    line: int | None
    index: int | None
    field: str | None
    code: IssueCode
    message: str
    severity: Severity = Severity.ERROR
    sheet: str | None = None
    column: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the shape stored in ``CorpusBatchSubmitted.rejected_at_intake``)."""
        return {
            "source": self.source,
            "line": self.line,
            "index": self.index,
            "field": self.field,
            "code": self.code.value,
            "severity": self.severity.value,
            "message": self.message,
        } | {
            # Only tabular issues carry these, so JSON batches keep their stored shape.
            name: value
            for name, value in (("sheet", self.sheet), ("column", self.column))
            if value is not None
        }


# ---------------------------------------------------------------------------------------------
# Canonical fields and submitted records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CanonicalFields:
    """Exactly the canonical record fields, all strings (``input`` may be empty)."""

    instruction: str
    input: str
    output: str
    discipline: Discipline
    task_type: TaskType
    language: Language
    license: str
    institution_id: str

    def as_dict(self) -> dict[str, str]:
        """The canonical record: exactly the keys of :data:`CANONICAL_FIELD_NAMES`, all strings."""
        return {
            "instruction": self.instruction,
            "input": self.input,
            "output": self.output,
            "discipline": self.discipline.value,
            "task_type": self.task_type.value,
            "language": self.language.value,
            "license": self.license,
            "institution_id": self.institution_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> CanonicalFields:
        """Rebuild from :meth:`as_dict` output; raises ``ValueError`` unless the keys are exactly
        the canonical ones and the vocabularies are known."""
        keys = set(data)
        if keys != set(CANONICAL_FIELD_NAMES):
            missing = sorted(set(CANONICAL_FIELD_NAMES) - keys)
            extra = sorted(keys - set(CANONICAL_FIELD_NAMES))
            raise ValueError(f"not a canonical record: missing {missing}, unexpected {extra}")
        return cls(
            instruction=data["instruction"],
            input=data["input"],
            output=data["output"],
            discipline=Discipline(data["discipline"]),
            task_type=TaskType(data["task_type"]),
            language=Language(data["language"]),
            license=data["license"],
            institution_id=data["institution_id"],
        )


@dataclass(frozen=True, slots=True)
class SubmittedRecord:
    """A record that passed intake: desensitized canonical fields plus where it came from.

    ``redactions`` maps a PII type (e.g. ``PHONE``) to the number of replacements made in this
    record; it never holds the replaced values.
    """

    fields: CanonicalFields
    source: str
    line: int
    index: int
    redactions: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def canonical(self) -> dict[str, str]:
        """The canonical record dict (see :meth:`CanonicalFields.as_dict`)."""
        return self.fields.as_dict()

    @property
    def redaction_total(self) -> int:
        return sum(self.redactions.values())


# ---------------------------------------------------------------------------------------------
# Desensitization contract
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Redaction:
    """Result of desensitizing one text: the text with typed placeholders (``[PHONE]``, ``[EMAIL]``)
    in place of personal data, and how many replacements of each type were made."""

    text: str
    counts: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))


class Desensitizer(Protocol):
    """Removes personal data from a text. ``language`` is ``"zh"``, ``"en"`` or ``"mixed"``."""

    def redact(self, text: str, *, language: str) -> Redaction: ...
