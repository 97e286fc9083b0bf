"""The flag vocabulary every governance signal speaks: codes, severities and the flag record.

A flag says *what* is wrong with a record and *where*: ``text[start:end]`` of one field, offsets in
Python string indices (code points), ``start`` inclusive, ``end`` exclusive. A field is
``instruction``, ``input`` or ``output``, and in a multi-turn record also ``system`` or one turn of
the history, ``history[i][0]`` (the user) or ``history[i][1]`` (the assistant) of exchange ``i``
(:func:`ledger.canonical.field_text` reads the text a field names). Text checks
(:mod:`ingest.governance.quality`), term coverage, coherence, near duplicates and intake PII
redaction all report flags; whether one rejects the record is the decision policy's business
(:mod:`ingest.governance.policy`), which also sets the flag's severity.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

_MAIN_FIELDS = {"system": 0, "instruction": 2, "input": 3, "output": 4}
_HISTORY_FIELD = re.compile(r"^history\[(\d+)\]\[([01])\]$")


def field_rank(field: str) -> tuple[int, int, int]:
    """Where a field comes in a record, for ordering flags: the system prompt, the history's turns
    in order, then instruction, input and output (unknown fields last)."""
    match = _HISTORY_FIELD.match(field)
    if match is not None:
        return 1, int(match.group(1)), int(match.group(2))
    return _MAIN_FIELDS.get(field, 5), 0, 0


class FlagCode(StrEnum):
    """Stable machine codes of governance flags; each is also the rejection reason it can cause."""

    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    REPETITIVE = "repetitive"
    GARBLED = "garbled"
    UNBALANCED_MARKUP = "unbalanced_markup"
    TRUNCATED = "truncated"
    LOGIC_BREAK = "logic_break"
    OFF_TOPIC = "off_topic"
    INCOHERENT = "incoherent"
    LOW_TERM_COVERAGE = "low_term_coverage"
    EXACT_DUPLICATE = "exact_duplicate"
    NEAR_DUPLICATE = "near_duplicate"
    PII_REDACTED = "pii_redacted"


class FlagSeverity(StrEnum):
    """``error`` flags reject the record under the policy in force; ``warning`` flags are only
    reported."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class QualityFlag:
    """One finding: ``text[start:end]`` of ``field`` is the highlighted span."""

    code: FlagCode
    field: str
    start: int
    end: int
    message: str
    severity: FlagSeverity = FlagSeverity.WARNING

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the shape stored in ``BatchGoverned.decisions[*].flags``)."""
        data = asdict(self)
        data["code"] = self.code.value
        data["severity"] = self.severity.value
        return data


def code_counts(flags: list[QualityFlag]) -> Counter[FlagCode]:
    """How many flags of each code (handy for reports and tests)."""
    return Counter(f.code for f in flags)
