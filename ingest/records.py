"""The intake data model: issues, canonical fields and submitted records.

Everything here is pure data and rules (no I/O). A *canonical record* has the fields listed in
:data:`CANONICAL_FIELD_NAMES`, all strings, and, for a multi-turn record, those of
:data:`OPTIONAL_FIELD_NAMES` that are not empty (``system``, a string; ``history``, the earlier
``[user, assistant]`` turns); its hash is computed elsewhere (``ledger/canonical.py``) from
:meth:`CanonicalFields.as_dict`.
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
OPTIONAL_FIELD_NAMES: tuple[str, ...] = ("system", "history")
"""Present in a canonical record only when not empty, so a single-turn record keeps the exact
fields (and hash) it always had."""


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
    CONFLICTING_FIELDS = "conflicting_fields"
    """The item mixes record shapes (``conversations`` with ``messages`` or with Alpaca fields),
    or gives its system prompt twice."""
    UNKNOWN_ROLE = "unknown_role"
    """A turn's role tag is not one of the accepted ones."""
    TURN_ORDER = "turn_order"
    """Turns do not alternate user, assistant (after an optional leading system turn)."""
    LAST_TURN_NOT_ASSISTANT = "last_turn_not_assistant"
    """The conversation does not end with the assistant's answer."""
    TOO_MANY_TURNS = "too_many_turns"
    """More user and assistant turns than :attr:`ingest.validation.IntakeLimits.max_turns`."""


WARNING_CODES: frozenset[IssueCode] = frozenset({IssueCode.UNKNOWN_FIELD})
"""Codes reported as warnings: an unknown field is dropped and the record is kept, because
exports commonly carry extra keys (``id``, ``category``, ``tags``) that say nothing
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
    """The canonical record fields (``input`` may be empty). ``system`` and ``history`` are empty
    for a single-turn record; ``history`` holds the ``(user, assistant)`` turns before the last
    one, oldest first, whose user turn is ``instruction`` (and ``input``) and answer ``output``."""

    instruction: str
    input: str
    output: str
    discipline: Discipline
    task_type: TaskType
    language: Language
    license: str
    institution_id: str
    system: str = ""
    history: tuple[tuple[str, str], ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The canonical record: the keys of :data:`CANONICAL_FIELD_NAMES`, all strings, then
        ``system`` and ``history`` (a list of ``[user, assistant]`` lists) when not empty."""
        record: dict[str, Any] = {
            "instruction": self.instruction,
            "input": self.input,
            "output": self.output,
            "discipline": self.discipline.value,
            "task_type": self.task_type.value,
            "language": self.language.value,
            "license": self.license,
            "institution_id": self.institution_id,
        }
        if self.system:
            record["system"] = self.system
        if self.history:
            record["history"] = [[user, assistant] for user, assistant in self.history]
        return record

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CanonicalFields:
        """Rebuild from :meth:`as_dict` output; raises ``ValueError`` unless the keys are the
        canonical ones (the optional ones allowed), the vocabularies are known and ``system`` and
        ``history`` have their types."""
        keys = set(data)
        optional = keys & set(OPTIONAL_FIELD_NAMES)
        if keys - optional != set(CANONICAL_FIELD_NAMES):
            missing = sorted(set(CANONICAL_FIELD_NAMES) - keys)
            extra = sorted(keys - set(CANONICAL_FIELD_NAMES) - optional)
            raise ValueError(f"not a canonical record: missing {missing}, unexpected {extra}")
        system = data.get("system", "")
        if not isinstance(system, str):
            raise ValueError("not a canonical record: system must be a string")
        history: list[tuple[str, str]] = []
        for pair in data.get("history") or ():
            if not (
                isinstance(pair, list | tuple)
                and len(pair) == 2
                and all(isinstance(text, str) for text in pair)
            ):
                raise ValueError("not a canonical record: history holds [user, assistant] pairs")
            history.append((pair[0], pair[1]))
        return cls(
            instruction=data["instruction"],
            input=data["input"],
            output=data["output"],
            discipline=Discipline(data["discipline"]),
            task_type=TaskType(data["task_type"]),
            language=Language(data["language"]),
            license=data["license"],
            institution_id=data["institution_id"],
            system=system,
            history=tuple(history),
        )

    def texts(self) -> tuple[str, ...]:
        """Every text of the record in dialogue order: system (when given), each earlier user and
        assistant turn, instruction, input, output."""
        earlier = tuple(text for pair in self.history for text in pair)
        system = (self.system,) if self.system else ()
        return (*system, *earlier, self.instruction, self.input, self.output)


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

    def canonical(self) -> dict[str, Any]:
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
