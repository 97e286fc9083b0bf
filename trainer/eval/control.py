"""The general control set: everyday instructions and plain text from outside the six disciplines.

A fine-tune that teaches a discipline should not make the model worse at everything else. The
control set is scored before (the base) and after (each adapter) with the reference
log-likelihood and the text metrics; a drop is the forgetting signal of the evaluation report
(:mod:`trainer.eval.analysis`). Its folder has the layout of a benchmark (``manifest.json`` plus
JSONL files), but its items have no discipline, task type, key terms or checker: only ``id``,
``language`` (``zh`` or ``en``), ``kind`` (``instruction``: a request and a good answer;
``text``: the beginning of a passage, to be continued) and ``prompt`` and ``reference``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from trainer.eval.benchmark import (
    MANIFEST_NAME,
    MAX_LINE_CHARS,
    Manifest,
    _Issues,
    _item_id,
    _language,
    _read_manifest,
    _text,
    _too_deep,
)
from trainer.eval.errors import BenchmarkError
from trainer.eval.metrics import bleu, rouge_l
from trainer.eval.vocabulary import EvalLanguage

CONTROL_FIELDS = frozenset({"id", "language", "kind", "prompt", "reference"})


class ControlKind(StrEnum):
    INSTRUCTION = "instruction"
    """A general request (cooking, travel, letters, geography, ...) and a good answer to it."""
    TEXT = "text"
    """The beginning of a plain passage; the reference is its continuation."""


@dataclass(frozen=True)
class ControlItem:
    """One control prompt and its reference answer or continuation."""

    id: str
    language: EvalLanguage
    kind: ControlKind
    prompt: str
    reference: str

    def question(self) -> str:
        """The text the model is asked (the prompt as it is)."""
        return self.prompt


@dataclass(frozen=True)
class ControlSet:
    manifest: Manifest
    items: tuple[ControlItem, ...]

    def __iter__(self) -> Iterator[ControlItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class ControlScore:
    """ROUGE-L F1 and BLEU/100 of an answer; ``overall`` is their mean (the benchmark's
    teaching dimension: there are no key terms or checkers to score knowledge with)."""

    item_id: str
    language: str
    metrics: dict[str, float | None]
    overall: float


def score_control(item: ControlItem, prediction: str) -> ControlScore:
    """The text metrics of ``prediction`` against the item's reference."""
    rouge = rouge_l(prediction, item.reference, language=item.language)
    bleu_score = bleu(prediction, item.reference, language=item.language)
    return ControlScore(
        item_id=item.id,
        language=item.language.value,
        metrics={"rouge_l": rouge, "bleu": bleu_score},
        overall=(rouge + bleu_score) / 2,
    )


def _kind(value: Any) -> ControlKind:
    try:
        return ControlKind(_text(value))
    except ValueError:
        raise ValueError(f"must be one of: {', '.join(k.value for k in ControlKind)}") from None


def _parse(raw: Mapping[str, Any], *, file: str, line: int, issues: _Issues) -> ControlItem | None:
    before = len(issues.found)
    for name in sorted(set(raw) - CONTROL_FIELDS):
        issues.add(file, line, name, "unknown field")
    values: dict[str, Any] = {}
    parsers = {
        "id": _item_id,
        "language": _language,
        "kind": _kind,
        "prompt": _text,
        "reference": _text,
    }
    for name, parse in parsers.items():
        if raw.get(name) is None:
            issues.add(file, line, name, "is required")
            continue
        try:
            values[name] = parse(raw[name])
        except ValueError as e:
            issues.add(file, line, name, str(e))
    if len(issues.found) > before:
        return None
    return ControlItem(**values)


def _read_lines(folder: Path, name: str, issues: _Issues) -> Iterator[tuple[int, ControlItem]]:
    try:
        text = (folder / name).read_bytes().decode("utf-8")
    except FileNotFoundError:
        issues.add(name, 0, None, "listed in the manifest but missing")
        return
    except UnicodeDecodeError:
        issues.add(name, 0, None, "not valid UTF-8")
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE_CHARS or _too_deep(line):
            issues.add(name, number, None, "line too long or nested too deep")
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError:
            issues.add(name, number, None, "not valid JSON")
            continue
        if not isinstance(raw, dict):
            issues.add(name, number, None, "must be a JSON object")
            continue
        item = _parse(raw, file=name, line=number, issues=issues)
        if item is not None:
            yield number, item


def load_control_set(folder: Path | str) -> ControlSet:
    """Load and validate the control set in ``folder``; raises :class:`BenchmarkError` listing
    every located problem (the messages never quote a value)."""
    root = Path(folder)
    issues = _Issues()
    manifest = _read_manifest(root, issues)
    items: list[ControlItem] = []
    if manifest is not None:
        seen: set[str] = set()
        for name in manifest.files:
            for number, item in _read_lines(root, name, issues):
                if item.id in seen:
                    issues.add(name, number, "id", "duplicate id")
                    continue
                seen.add(item.id)
                items.append(item)
        if not items and not issues.found:
            issues.add(MANIFEST_NAME, 0, "files", "the listed files hold no items")
    if issues.found:
        raise BenchmarkError(issues.found)
    assert manifest is not None
    return ControlSet(manifest=manifest, items=tuple(items))


def control_set_path() -> Path:
    """The folder of the control set shipped with the package."""
    return Path(str(resources.files("trainer.eval") / "benchmarks" / "control"))


def load_default_control_set() -> ControlSet:
    """The bundled control set: 30 items, Chinese and English, instructions and plain text."""
    return load_control_set(control_set_path())
