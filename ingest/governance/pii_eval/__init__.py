"""The labeled PII evaluation set and how detections are scored against it.

``cases.jsonl`` holds one case per line: ``id``, ``language`` (``zh``/``en``/``mixed``), ``text``,
``hard_negative`` (no PII although the text looks like it has some), ``spans``, a list of
``{"type", "start", "end"}`` with ``text[start:end]`` the value, and for the cases whose values are
disguised, ``obfuscation``: the form of the disguise (``invisible``, ``chinese_numerals``,
``spelled_email``...). The file is produced by the
development tool ``python -m scripts.pii_cases.generate`` and checked in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ingest.governance.pii.model import PiiMatch, PiiType

CASES_PATH = Path(__file__).with_name("cases.jsonl")


@dataclass(frozen=True, slots=True)
class EvalCase:
    """One labeled text."""

    id: str
    language: str
    text: str
    spans: tuple[PiiMatch, ...]
    hard_negative: bool
    obfuscation: str | None = None

    def to_json(self) -> str:
        data: dict[str, object] = {
            "id": self.id,
            "language": self.language,
            "hard_negative": self.hard_negative,
            "text": self.text,
            "spans": [{"type": s.type.value, "start": s.start, "end": s.end} for s in self.spans],
        }
        if self.obfuscation is not None:
            data["obfuscation"] = self.obfuscation
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> EvalCase:
        data = json.loads(line)
        return cls(
            id=data["id"],
            language=data["language"],
            text=data["text"],
            spans=tuple(PiiMatch(s["start"], s["end"], PiiType(s["type"])) for s in data["spans"]),
            hard_negative=bool(data["hard_negative"]),
            obfuscation=data.get("obfuscation"),
        )


def load_cases(path: Path = CASES_PATH) -> list[EvalCase]:
    """All cases of the labeled set, in file order."""
    with path.open(encoding="utf-8") as fh:
        return [EvalCase.from_json(line) for line in fh if line.strip()]
