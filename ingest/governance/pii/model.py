"""Value types of PII detection and redaction: the PII types, matches and redaction results.

A :class:`PiiMatch` holds offsets into the *original* text and is meant to stay in memory
(evaluation, tests). A :class:`PiiRedaction` holds only the redacted text, per-type counts and the
offsets of the placeholders in the redacted text: never a replaced value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ingest.records import Redaction


class PiiType(StrEnum):
    """The kinds of personal data the redactor replaces; the value is the placeholder's name."""

    EMAIL = "EMAIL"
    PHONE = "PHONE"
    ID_CARD = "ID_CARD"
    BANK_CARD = "BANK_CARD"
    PASSPORT = "PASSPORT"
    STUDENT_ID = "STUDENT_ID"
    IP_ADDRESS = "IP_ADDRESS"
    URL_CREDENTIALS = "URL_CREDENTIALS"
    PERSON = "PERSON"

    @property
    def placeholder(self) -> str:
        """The text put in place of a value of this type, e.g. ``[PHONE]``."""
        return f"[{self.value}]"


STRUCTURED_TYPES: tuple[PiiType, ...] = tuple(t for t in PiiType if t is not PiiType.PERSON)
"""Types found by patterns plus validators (as opposed to names, which rely on cues or a model)."""

PRIORITY: tuple[PiiType, ...] = (
    PiiType.URL_CREDENTIALS,
    PiiType.EMAIL,
    PiiType.ID_CARD,
    PiiType.BANK_CARD,
    PiiType.PASSPORT,
    PiiType.STUDENT_ID,
    PiiType.PHONE,
    PiiType.IP_ADDRESS,
    PiiType.PERSON,
)
"""When two matches overlap, the one whose type comes first here wins (a URL with credentials
contains something that looks like an e-mail address; an ID number is more specific than a bank
card)."""

_RANK: dict[PiiType, int] = {t: i for i, t in enumerate(PRIORITY)}


@dataclass(frozen=True, slots=True, order=True)
class PiiMatch:
    """One piece of personal data found in a text: ``text[start:end]`` is the value."""

    start: int
    end: int
    type: PiiType

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError("a PII match needs 0 <= start < end")

    def overlaps(self, other: PiiMatch) -> bool:
        return self.start < other.end and other.start < self.end

    def __repr__(self) -> str:
        # Offsets and type only; a match never carries its value.
        return f"PiiMatch({self.type.value}, {self.start}, {self.end})"


@dataclass(frozen=True, slots=True)
class RedactionSpan:
    """Where a placeholder of ``type`` sits in the *redacted* text: ``redacted[start:end]``."""

    type: PiiType
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class PiiRedaction(Redaction):
    """A :class:`ingest.records.Redaction` plus the placeholder offsets in the redacted text."""

    spans: tuple[RedactionSpan, ...] = field(default_factory=tuple)


def resolve_overlaps(matches: list[PiiMatch]) -> list[PiiMatch]:
    """Keep a set of non-overlapping matches, preferring the type ranked first in :data:`PRIORITY`,
    then the longer match, then the earlier one; returned sorted by position."""
    ordered = sorted(matches, key=lambda m: (_RANK[m.type], -(m.end - m.start), m.start))
    kept: list[PiiMatch] = []
    for match in ordered:
        if not any(match.overlaps(k) for k in kept):
            kept.append(match)
    return sorted(kept)
