"""Glossary probes: how likely a model finds the terms of each discipline, before and after a
fine-tune (the knowledge-injection view of the evaluation report).

The glossaries are the governance term lists (``ingest/governance/glossaries/<discipline>.yaml``:
``discipline`` and ``terms``, each term with ``en``, ``zh`` and optional aliases). The trainer
does not import :mod:`ingest` (layering), so this module reads the files directly by path, and
only the two fields it needs. A probe is a short plain-text prompt naming the discipline, whose
continuation is the term; its score is the reference log-likelihood of the term.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from ledger.vocabulary import Discipline
from trainer.eval.errors import EvaluationError

GLOSSARY_DIR = Path(__file__).resolve().parents[2] / "ingest" / "governance" / "glossaries"
"""Where the governance glossaries live (next to this package in a checkout or an install)."""
DEFAULT_TERMS_PER_DISCIPLINE = 16
PROBE_VERSION = 1
"""Bumped when the probe texts change, so cached probe scores are not reused."""


@dataclass(frozen=True)
class GlossaryTerm:
    discipline: str
    en: str
    zh: str


@dataclass(frozen=True)
class GlossaryProbe:
    """One term in one language, with the prompt that leads to it."""

    discipline: str
    language: str
    term: str
    prompt: str

    @property
    def reference(self) -> str:
        return self.term if self.language == "zh" else f" {self.term}"


def load_glossary_terms(
    directory: Path | None = None, *, per_discipline: int = DEFAULT_TERMS_PER_DISCIPLINE
) -> dict[str, tuple[GlossaryTerm, ...]]:
    """Up to ``per_discipline`` terms of each discipline's glossary, spread evenly over the file
    (the same terms every time). Raises :class:`EvaluationError` for a missing or malformed
    glossary."""
    folder = directory or GLOSSARY_DIR
    found: dict[str, tuple[GlossaryTerm, ...]] = {}
    if per_discipline <= 0:
        return found
    for discipline in Discipline:
        path = folder / f"{discipline.value}.yaml"
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise EvaluationError(f"cannot read the glossary {path}: {exc}") from exc
        terms = data.get("terms") if isinstance(data, dict) else None
        if not isinstance(terms, list):
            raise EvaluationError(f"{path}: expected a mapping with a 'terms' list")
        entries = [
            GlossaryTerm(discipline=discipline.value, en=t["en"], zh=t["zh"])
            for t in terms
            if isinstance(t, dict) and isinstance(t.get("en"), str) and isinstance(t.get("zh"), str)
        ]
        if not entries:
            raise EvaluationError(f"{path}: no term has both an 'en' and a 'zh' form")
        count = min(per_discipline, len(entries))
        found[discipline.value] = tuple(entries[i * len(entries) // count] for i in range(count))
    return found


def probes(
    terms: Mapping[str, tuple[GlossaryTerm, ...]], languages: Sequence[str] = ("en", "zh")
) -> list[GlossaryProbe]:
    """A probe per term and language: the English term after an English prompt, the Chinese
    term after a Chinese one."""
    found: list[GlossaryProbe] = []
    for discipline, entries in terms.items():
        named = Discipline(discipline)
        en_prompt = f"A key term of {named.name_en}:"
        zh_prompt = f"{named.name_zh}的一个重要术语："
        for term in entries:
            if "en" in languages:
                found.append(GlossaryProbe(discipline, "en", term.en, en_prompt))
            if "zh" in languages:
                found.append(GlossaryProbe(discipline, "zh", term.zh, zh_prompt))
    return found
