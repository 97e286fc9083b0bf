"""What governance reads and writes: a record to govern, its decision, a batch's decision.

:class:`GovernanceInput` is built from a ledger record; :class:`RecordDecision` and
:class:`BatchGovernance` are what :class:`~ingest.governance.engine.GovernanceEngine` decides and
what ``BatchGoverned`` records; :class:`Assessment` carries the expensive per-record signals from
``assess`` to ``decide``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ingest.governance.flags import QualityFlag
from ledger.canonical import record_history, record_texts


def question_text(*, instruction: str, input: str, history: Sequence[tuple[str, str]] = ()) -> str:
    """What an output answers, as coherence, novelty and search embed it: the instruction,
    followed by the input when there is one; in a multi-turn record, followed by the earlier user
    turns, the most recent first. The final question leads because the embedding models read
    only a text's opening (about 256 tokens), and a follow-up ("and why?") is on topic only with
    the questions before it."""
    parts = [instruction, input, *(user for user, _ in reversed(history))]
    return "\n".join(part for part in parts if part)


@dataclass(frozen=True, slots=True)
class GovernanceInput:
    """One record to govern: its id, canonical text fields, and the intake redaction counts.
    ``system`` and ``history`` (earlier ``(user, assistant)`` turns, oldest first) are empty for a
    single-turn record."""

    record_id: str
    instruction: str
    input: str
    output: str
    discipline: str
    language: str
    redactions: Mapping[str, int] = field(default_factory=dict)
    system: str = ""
    history: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_record(
        cls, record_id: str, record: Mapping[str, Any], redactions: Mapping[str, int] | None = None
    ) -> GovernanceInput:
        """From a canonical record dict (``RecordEntry.record``) and its redaction counts."""
        return cls(
            record_id=record_id,
            instruction=record["instruction"],
            input=record.get("input", ""),
            output=record["output"],
            discipline=record["discipline"],
            language=record["language"],
            redactions=dict(redactions or {}),
            system=record.get("system") or "",
            history=tuple(record_history(record)),
        )

    @property
    def question(self) -> str:
        """What the output answers (:func:`question_text`)."""
        return question_text(instruction=self.instruction, input=self.input, history=self.history)

    def texts(self) -> list[tuple[str, str]]:
        """``(field, text)`` of every text, in dialogue order (see
        :func:`ledger.canonical.record_texts`)."""
        return record_texts(self.canonical_texts())

    def dialogue(self) -> str:
        """The conversation's turns, one per line, oldest first, the system prompt left out (it
        says how to answer, not what the record teaches): the text term coverage reads. A
        single-turn record's dialogue is its instruction, input and output."""
        return "\n".join(text for name, text in self.texts() if name != "system")

    def canonical_texts(self) -> dict[str, Any]:
        """The record's text fields in canonical form (``system`` and ``history`` only when not
        empty)."""
        texts: dict[str, Any] = {
            "instruction": self.instruction,
            "input": self.input,
            "output": self.output,
        }
        if self.system:
            texts["system"] = self.system
        if self.history:
            texts["history"] = [list(pair) for pair in self.history]
        return texts


@dataclass(frozen=True, slots=True)
class RecordDecision:
    """The decision on one record. ``reasons`` are stable codes (rejections first, then
    ``pii_redacted``); ``flags`` are JSON-ready :class:`QualityFlag` dicts with spans."""

    record_id: str
    accepted: bool
    reasons: list[str]
    scores: dict[str, float]
    flags: list[dict[str, Any]]
    duplicate_of: str | None = None
    redactions: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "record_id": self.record_id,
            "accepted": self.accepted,
            "reasons": list(self.reasons),
            "scores": dict(self.scores),
            "flags": [dict(f) for f in self.flags],
            "duplicate_of": self.duplicate_of,
            "redactions": dict(self.redactions),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecordDecision:
        return cls(
            record_id=data["record_id"],
            accepted=bool(data["accepted"]),
            reasons=list(data["reasons"]),
            scores=dict(data["scores"]),
            flags=[dict(f) for f in data["flags"]],
            duplicate_of=data.get("duplicate_of"),
            redactions=dict(data.get("redactions", {})),
        )


@dataclass(frozen=True, slots=True)
class BatchGovernance:
    """Decisions on a batch, in input order, with the batch's contribution score and reward."""

    policy_version: str
    policy_digest: str
    decisions: list[RecordDecision]
    contribution_score: float
    reward_wei: int

    @property
    def accepted_record_ids(self) -> list[str]:
        return [d.record_id for d in self.decisions if d.accepted]

    @property
    def rejected(self) -> dict[str, list[str]]:
        """Record id -> reasons, for rejected records."""
        return {d.record_id: list(d.reasons) for d in self.decisions if not d.accepted}

    def event_fields(self) -> dict[str, Any]:
        """The fields of ``ledger.events.BatchGoverned`` that governance decides (all but the
        batch and institution ids)."""
        return {
            "policy_version": self.policy_version,
            "accepted_record_ids": self.accepted_record_ids,
            "rejected": self.rejected,
            "decisions": [d.to_dict() for d in self.decisions],
            "contribution_score": self.contribution_score,
            "reward_wei": str(self.reward_wei),
        }


@dataclass(frozen=True, slots=True)
class Assessment:
    """What :meth:`GovernanceEngine.assess` found in a batch: per-record flags and scores so far
    (read-only for :meth:`GovernanceEngine.decide`, which works on copies)."""

    records: tuple[GovernanceInput, ...]
    flags: list[list[QualityFlag]]
    scores: list[dict[str, float]]
