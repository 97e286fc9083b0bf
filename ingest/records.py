"""The intake data model: vocabularies, issues, canonical fields and submitted records.

Everything here is pure data and rules (no I/O). A *canonical record* has exactly the fields listed
in :data:`CANONICAL_FIELD_NAMES`, all strings; its hash is computed elsewhere
(``ledger/canonical.py``) from :meth:`CanonicalFields.as_dict`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Protocol, Self

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

_SEPARATORS = re.compile(r"[\s_\-]+")


def _name_key(value: str) -> str:
    """Fold a human-written name so that "Network Security", "network-security" and
    "NETWORK_SECURITY" compare equal."""
    folded = unicodedata.normalize("NFKC", value).strip().casefold()
    return _SEPARATORS.sub("_", folded)


@lru_cache(maxsize=4096)
def _lookup_value(vocabulary: type[_NamedVocabulary], name: str) -> str | None:
    # Cached: every record names its discipline, nearly always in one of a few spellings.
    key = _name_key(name)
    if key in vocabulary._value2member_map_:
        return key
    return vocabulary._aliases().get(key)


class _NamedVocabulary(StrEnum):
    """A StrEnum whose members can also be looked up by human names (English or Chinese)."""

    @classmethod
    def _aliases(cls) -> Mapping[str, str]:
        return {}

    @classmethod
    def lookup(cls, name: str) -> Self | None:
        """The member named ``name`` (its value, an English or Chinese name, any case or separator),
        or ``None`` when nothing matches."""
        value = _lookup_value(cls, name)
        return cls(value) if value is not None else None

    @classmethod
    def parse(cls, name: str) -> Self:
        """Like :meth:`lookup`, but raises ``ValueError`` naming the accepted values (never
        ``name``: it is submitter text, and error messages end up in logs)."""
        member = cls.lookup(name)
        if member is None:
            accepted = ", ".join(m.value for m in cls)
            raise ValueError(
                f"unknown {cls.__name__}; expected one of: {accepted} "
                "(or their English or Chinese names)"
            )
        return member


class Discipline(_NamedVocabulary):
    """The six course disciplines a record can belong to."""

    COMMUNICATION_PRINCIPLES = "communication_principles"
    NETWORK_SECURITY = "network_security"
    INFORMATION_THEORY = "information_theory"
    SIGNAL_PROCESSING = "signal_processing"
    COMPUTER_NETWORKS = "computer_networks"
    DATA_SCIENCE = "data_science"

    @classmethod
    def _aliases(cls) -> Mapping[str, str]:
        return _DISCIPLINE_ALIASES

    @property
    def name_en(self) -> str:
        return _DISCIPLINE_NAMES[self][0]

    @property
    def name_zh(self) -> str:
        return _DISCIPLINE_NAMES[self][1]


_DISCIPLINE_NAMES: dict[Discipline, tuple[str, str]] = {
    Discipline.COMMUNICATION_PRINCIPLES: ("Communication Principles", "通信原理"),
    Discipline.NETWORK_SECURITY: ("Network Security", "网络安全"),
    Discipline.INFORMATION_THEORY: ("Information Theory", "信息论"),
    Discipline.SIGNAL_PROCESSING: ("Signal Processing", "信号处理"),
    Discipline.COMPUTER_NETWORKS: ("Computer Networks", "计算机网络"),
    Discipline.DATA_SCIENCE: ("Data Science", "数据科学"),
}

_DISCIPLINE_ALIASES: dict[str, str] = {
    _name_key(alias): discipline.value
    for discipline, aliases in {
        Discipline.COMMUNICATION_PRINCIPLES: (
            "Principles of Communication",
            "Communication Theory",
            "Communications",
            "通信原理",
        ),
        Discipline.NETWORK_SECURITY: ("Cybersecurity", "网络安全", "网络空间安全"),
        Discipline.INFORMATION_THEORY: ("信息论", "信息论基础"),
        Discipline.SIGNAL_PROCESSING: ("DSP", "信号处理", "数字信号处理"),
        Discipline.COMPUTER_NETWORKS: ("Computer Networking", "Networking", "计算机网络"),
        Discipline.DATA_SCIENCE: ("数据科学", "数据科学导论"),
    }.items()
    for alias in (*aliases, discipline.value.replace("_", " "))
}


class TaskType(_NamedVocabulary):
    """What kind of exercise a record is; ``knowledge_qa`` when the submitter does not say."""

    KNOWLEDGE_QA = "knowledge_qa"
    CONCEPT_EXPLANATION = "concept_explanation"
    FORMULA_DERIVATION = "formula_derivation"
    CODE_EXPLANATION = "code_explanation"
    PROBLEM_SOLVING = "problem_solving"
    TEACHING_DIALOGUE = "teaching_dialogue"
    SUMMARIZATION = "summarization"

    @classmethod
    def _aliases(cls) -> Mapping[str, str]:
        return _TASK_TYPE_ALIASES


DEFAULT_TASK_TYPE = TaskType.KNOWLEDGE_QA

_TASK_TYPE_ALIASES: dict[str, str] = {
    _name_key(alias): task.value
    for task, aliases in {
        TaskType.KNOWLEDGE_QA: ("QA", "Question Answering", "知识问答", "问答"),
        TaskType.CONCEPT_EXPLANATION: ("概念解释", "概念讲解"),
        TaskType.FORMULA_DERIVATION: ("Derivation", "公式推导", "推导"),
        TaskType.CODE_EXPLANATION: ("代码解释", "代码讲解"),
        TaskType.PROBLEM_SOLVING: ("习题解答", "问题求解", "解题"),
        TaskType.TEACHING_DIALOGUE: ("Dialogue", "教学对话"),
        TaskType.SUMMARIZATION: ("Summary", "摘要", "总结"),
    }.items()
    for alias in aliases
}


class Language(StrEnum):
    """Language of a record, detected at intake (see :mod:`ingest.language`)."""

    ZH = "zh"
    EN = "en"
    MIXED = "mixed"


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
    """

    source: str
    line: int | None
    index: int | None
    field: str | None
    code: IssueCode
    message: str
    severity: Severity = Severity.ERROR

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
