"""Precision and recall of detections against the labeled set.

Matching rule. A predicted span and a gold span *match* when they have the same type and their
character ranges overlap (``pred.start < gold.end and gold.start < pred.end``). Matching is
one-to-one within a case: each gold span is paired with at most one prediction, greedily in order of
largest overlap. Then, per type, TP = matched predictions, FP = unmatched predictions, FN =
unmatched gold spans. The same counts are also reported under the *exact* rule (same type and
identical offsets), which shows how often the boundaries are right as well.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ingest.governance.pii.model import STRUCTURED_TYPES, PiiMatch, PiiType


@dataclass(slots=True)
class Tally:
    """True positives, false positives and false negatives of one type (or overall)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def add(self, other: Tally) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn

    def as_dict(self) -> dict[str, float | int]:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
        }


def _overlap(a: PiiMatch, b: PiiMatch) -> int:
    return min(a.end, b.end) - max(a.start, b.start)


def match_case(
    gold: Sequence[PiiMatch], predicted: Sequence[PiiMatch], *, exact: bool = False
) -> dict[PiiType, Tally]:
    """Per-type tallies for one case under the overlap rule (or the exact rule)."""
    pairs = [
        (_overlap(g, p), gi, pi)
        for gi, g in enumerate(gold)
        for pi, p in enumerate(predicted)
        if g.type is p.type
        and (g.start == p.start and g.end == p.end if exact else _overlap(g, p) > 0)
    ]
    used_gold: set[int] = set()
    used_pred: set[int] = set()
    for _, gi, pi in sorted(pairs, reverse=True):
        if gi not in used_gold and pi not in used_pred:
            used_gold.add(gi)
            used_pred.add(pi)
    tallies: dict[PiiType, Tally] = {}
    for pi, p in enumerate(predicted):
        tally = tallies.setdefault(p.type, Tally())
        if pi in used_pred:
            tally.tp += 1
        else:
            tally.fp += 1
    for gi, g in enumerate(gold):
        if gi not in used_gold:
            tallies.setdefault(g.type, Tally()).fn += 1
    return tallies


@dataclass(slots=True)
class Score:
    """Tallies over a whole set, per type, plus the structured-type and all-type totals."""

    per_type: dict[PiiType, Tally] = field(default_factory=dict)

    def add_case(self, tallies: dict[PiiType, Tally]) -> None:
        for pii_type, tally in tallies.items():
            self.per_type.setdefault(pii_type, Tally()).add(tally)

    def total(self, types: Iterable[PiiType]) -> Tally:
        out = Tally()
        for pii_type in types:
            out.add(self.per_type.get(pii_type, Tally()))
        return out

    @property
    def structured(self) -> Tally:
        return self.total(STRUCTURED_TYPES)

    def as_dict(self) -> dict[str, object]:
        return {
            "per_type": {
                t.value: self.per_type[t].as_dict() for t in PiiType if t in self.per_type
            },
            "structured": self.structured.as_dict(),
            "all": self.total(PiiType).as_dict(),
        }


def score(
    gold: Sequence[Sequence[PiiMatch]],
    predicted: Sequence[Sequence[PiiMatch]],
    *,
    exact: bool = False,
) -> Score:
    """Score predictions case by case (``gold[i]`` against ``predicted[i]``)."""
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted must have one entry per case")
    result = Score()
    for g, p in zip(gold, predicted, strict=True):
        result.add_case(match_case(g, p, exact=exact))
    return result
