"""Benchmark items and the loader of benchmark folders (``manifest.json`` + JSONL item files).

The format is documented for teachers in docs/EVALUATION.md. The loader checks every line and
reports all problems at once, each located by file, line and field; messages never quote a
value, because benchmark files are edited by hand and may be shared.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ledger.vocabulary import Discipline, TaskType
from trainer.eval.errors import BenchmarkError, BenchmarkIssue
from trainer.eval.vocabulary import (
    DEFAULT_WEIGHTS,
    EVAL_TASK_TYPES,
    Dimension,
    EvalLanguage,
    Weights,
)

MANIFEST_NAME = "manifest.json"
ITEM_ID = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,127}$")
CHOICE_LETTERS = string.ascii_uppercase[:10]
MAX_LINE_CHARS = 200_000
MAX_JSON_DEPTH = 32
# Outside strings: a bracket, or a whole string (skipped). Used to bound nesting before parsing:
# web3 raises the recursion limit at import, and deeply nested JSON then crashes the parser.
_JSON_TOKEN = re.compile(r'[\[\]{}]|"(?:[^"\\]|\\.)*"?', re.DOTALL)

ITEM_FIELDS = frozenset(
    {
        "id",
        "discipline",
        "task_type",
        "language",
        "prompt",
        "reference",
        "key_terms",
        "choices",
        "answer_key",
        "checker",
        "weights",
    }
)
MANIFEST_FIELDS = frozenset({"name", "version", "description", "license", "files"})


@dataclass(frozen=True)
class ExpressionChecker:
    """The answer's final expression must be symbolically equal to ``expected`` (LaTeX or
    plain math, e.g. ``B\\log_2(1+S/N)``)."""

    expected: str
    kind: str = field(default="expression", init=False)


@dataclass(frozen=True)
class CodeChecker:
    """The answer's code must pass ``tests`` (Python statements, typically ``assert``s, run after
    the answer's code in the same namespace, in the sandbox)."""

    tests: str
    language: str = "python"
    kind: str = field(default="code", init=False)


Checker = ExpressionChecker | CodeChecker


@dataclass(frozen=True)
class BenchmarkItem:
    """One benchmark question with its reference answer and scoring hints."""

    id: str
    discipline: Discipline
    task_type: TaskType
    language: EvalLanguage
    prompt: str
    reference: str
    key_terms: tuple[str, ...]
    weights: Weights
    choices: tuple[str, ...] = ()
    answer_key: frozenset[str] = frozenset()
    checker: Checker | None = None

    @property
    def is_choice(self) -> bool:
        return bool(self.choices)

    @property
    def cell(self) -> tuple[Discipline, TaskType]:
        return (self.discipline, self.task_type)

    def question(self) -> str:
        """The text the model is asked: the prompt, then the lettered choices of a choice item
        (``A. …`` one per line)."""
        if not self.choices:
            return self.prompt
        lines = [f"{CHOICE_LETTERS[i]}. {choice}" for i, choice in enumerate(self.choices)]
        return self.prompt + "\n\n" + "\n".join(lines)


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    files: tuple[str, ...]
    description: str = ""
    license: str = ""


@dataclass(frozen=True)
class Benchmark:
    """A loaded, validated benchmark."""

    manifest: Manifest
    items: tuple[BenchmarkItem, ...]

    def __iter__(self) -> Iterator[BenchmarkItem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def cells(self) -> dict[tuple[Discipline, TaskType], list[BenchmarkItem]]:
        """Items grouped by (discipline, task type)."""
        grouped: dict[tuple[Discipline, TaskType], list[BenchmarkItem]] = {}
        for item in self.items:
            grouped.setdefault(item.cell, []).append(item)
        return grouped


class _Issues:
    def __init__(self) -> None:
        self.found: list[BenchmarkIssue] = []

    def add(self, file: str, line: int, name: str | None, message: str) -> None:
        self.found.append(BenchmarkIssue(file=file, line=line, field=name, message=message))


# ---------------------------------------------------------------------------------------------
# Field parsers: each returns the parsed value or raises ValueError with a value-free message.
# ---------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _item_id(value: Any) -> str:
    text = _text(value)
    if not ITEM_ID.match(text):
        raise ValueError(
            "must be 1-128 characters of lowercase letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return text


def _discipline(value: Any) -> Discipline:
    return Discipline.parse(_text(value))


def _task_type(value: Any) -> TaskType:
    task = TaskType.parse(_text(value))
    if task not in EVAL_TASK_TYPES:
        accepted = ", ".join(t.value for t in EVAL_TASK_TYPES)
        raise ValueError(f"not an evaluation task type; expected one of: {accepted}")
    return task


def _language(value: Any) -> EvalLanguage:
    text = _text(value)
    try:
        return EvalLanguage(text)
    except ValueError:
        raise ValueError("must be 'zh' or 'en'") from None


def _string_list(value: Any, *, minimum: int) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError("must be a list of strings")
    if len(value) < minimum:
        raise ValueError(f"must hold at least {minimum} entries")
    for index, entry in enumerate(value):
        if not isinstance(entry, str) or not entry.strip():
            raise ValueError(f"entry {index} must be a non-empty string")
    return tuple(value)


def _answer_key(value: Any) -> frozenset[str]:
    if isinstance(value, list):
        letters = value
    elif isinstance(value, str):
        letters = [c for c in value if not c.isspace() and c not in ",、"]
    else:
        raise ValueError("must be a string of choice letters (e.g. 'B' or 'AC') or a list")
    if not letters or not all(isinstance(c, str) and len(c) == 1 for c in letters):
        raise ValueError("must name one or more choice letters")
    key = frozenset(c.upper() for c in letters)
    if not key <= set(CHOICE_LETTERS):
        raise ValueError(f"letters must be within {CHOICE_LETTERS[0]}-{CHOICE_LETTERS[-1]}")
    return key


def _expression_checker(spec: Mapping[str, Any]) -> Checker:
    _only(spec, {"kind", "expected"})
    return ExpressionChecker(expected=_text(spec.get("expected")))


def _code_checker(spec: Mapping[str, Any]) -> Checker:
    _only(spec, {"kind", "language", "tests"})
    if spec.get("language", "python") != "python":
        raise ValueError("code checkers support language 'python' only")
    return CodeChecker(tests=_text(spec.get("tests")))


CHECKER_KINDS: Mapping[str, Callable[[Mapping[str, Any]], Checker]] = {
    "expression": _expression_checker,
    "code": _code_checker,
}


def _only(spec: Mapping[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(spec) - allowed)
    if extra:
        raise ValueError(f"unknown keys {', '.join(extra)}; allowed: {', '.join(sorted(allowed))}")


def _checker(value: Any) -> Checker:
    if not isinstance(value, dict):
        raise ValueError("must be an object with a 'kind'")
    kind = value.get("kind")
    parse = CHECKER_KINDS.get(kind) if isinstance(kind, str) else None
    if parse is None:
        raise ValueError(f"'kind' must be one of: {', '.join(CHECKER_KINDS)}")
    return parse(value)


def _weights(value: Any) -> Weights:
    names = {d.value for d in Dimension}
    if not isinstance(value, dict) or set(value) != names:
        raise ValueError(f"must be an object with exactly the keys {', '.join(sorted(names))}")
    numbers = {}
    for name in sorted(names):
        number = value[name]
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise ValueError(f"'{name}' must be a number")
        numbers[name] = float(number)
    return Weights(**numbers)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def parse_item(
    raw: Mapping[str, Any], *, file: str, line: int, issues: _Issues
) -> BenchmarkItem | None:
    """Validate one decoded JSON object; problems go to ``issues`` and give ``None``."""
    before = len(issues.found)
    for name in sorted(set(raw) - ITEM_FIELDS):
        issues.add(file, line, name, "unknown field")

    def get(name: str, parse: Callable[[Any], Any], *, required: bool = True) -> Any:
        if name not in raw or raw[name] is None:
            if required:
                issues.add(file, line, name, "is required")
            return None
        try:
            return parse(raw[name])
        except ValueError as e:
            issues.add(file, line, name, str(e))
            return None

    item_id = get("id", _item_id)
    discipline = get("discipline", _discipline)
    task_type = get("task_type", _task_type)
    language = get("language", _language)
    prompt = get("prompt", _text)
    reference = get("reference", _text)
    key_terms = get("key_terms", lambda v: _string_list(v, minimum=1))
    choices = get("choices", lambda v: _string_list(v, minimum=2), required=False)
    answer_key = get("answer_key", _answer_key, required=False)
    checker = get("checker", _checker, required=False)
    weights = get("weights", _weights, required=False)

    if choices is not None and len(choices) > len(CHOICE_LETTERS):
        issues.add(file, line, "choices", f"at most {len(CHOICE_LETTERS)} choices")
    if ("choices" in raw) != ("answer_key" in raw):
        issues.add(file, line, "answer_key", "choices and answer_key go together")
    if choices is not None and answer_key is not None:
        allowed = set(CHOICE_LETTERS[: len(choices)])
        if not answer_key <= allowed:
            issues.add(file, line, "answer_key", "names a letter beyond the listed choices")
    if len(issues.found) > before:
        return None
    return BenchmarkItem(
        id=item_id,
        discipline=discipline,
        task_type=task_type,
        language=language,
        prompt=prompt,
        reference=reference,
        key_terms=key_terms,
        weights=weights if weights is not None else DEFAULT_WEIGHTS[task_type],
        choices=choices or (),
        answer_key=answer_key or frozenset(),
        checker=checker,
    )


def _read_manifest(folder: Path, issues: _Issues) -> Manifest | None:
    path = folder / MANIFEST_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        issues.add(MANIFEST_NAME, 0, None, "missing")
        return None
    except (UnicodeDecodeError, json.JSONDecodeError):
        issues.add(MANIFEST_NAME, 0, None, "not valid UTF-8 JSON")
        return None
    if not isinstance(raw, dict):
        issues.add(MANIFEST_NAME, 0, None, "must be a JSON object")
        return None
    before = len(issues.found)
    for name in sorted(set(raw) - MANIFEST_FIELDS):
        issues.add(MANIFEST_NAME, 0, name, "unknown field")
    values: dict[str, Any] = {}
    for name, required in (("name", True), ("version", True), ("description", False)):
        value = raw.get(name)
        if value is None and not required:
            continue
        if not isinstance(value, str) or not value.strip():
            issues.add(MANIFEST_NAME, 0, name, "must be a non-empty string")
        else:
            values[name] = value
    if isinstance(raw.get("license"), str):
        values["license"] = raw["license"]
    files = raw.get("files")
    if not isinstance(files, list) or not files:
        issues.add(MANIFEST_NAME, 0, "files", "must be a non-empty list of JSONL file names")
    else:
        for index, name in enumerate(files):
            if (
                not isinstance(name, str)
                or not name.endswith(".jsonl")
                or Path(name).name != name
                or name.startswith(".")
            ):
                issues.add(
                    MANIFEST_NAME, 0, "files", f"entry {index} must be a .jsonl file in the folder"
                )
        values["files"] = tuple(f for f in files if isinstance(f, str))
    if len(issues.found) > before:
        return None
    return Manifest(**values)


def _too_deep(line: str) -> bool:
    depth = 0
    for match in _JSON_TOKEN.finditer(line):
        char = match.group()[0]
        if char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _read_items(folder: Path, name: str, issues: _Issues) -> Iterator[tuple[int, BenchmarkItem]]:
    path = folder / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        issues.add(name, 0, None, "listed in the manifest but missing")
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        issues.add(name, 0, None, "not valid UTF-8")
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE_CHARS:
            issues.add(name, number, None, f"line longer than {MAX_LINE_CHARS} characters")
            continue
        if _too_deep(line):
            issues.add(name, number, None, f"nested deeper than {MAX_JSON_DEPTH} levels")
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError:
            issues.add(name, number, None, "not valid JSON")
            continue
        if not isinstance(raw, dict):
            issues.add(name, number, None, "must be a JSON object")
            continue
        item = parse_item(raw, file=name, line=number, issues=issues)
        if item is not None:
            yield number, item


def load_benchmark(folder: Path | str) -> Benchmark:
    """Load and validate the benchmark in ``folder``; raises :class:`BenchmarkError` listing every
    located problem (bad fields, duplicate ids, unknown disciplines or task types)."""
    root = Path(folder)
    issues = _Issues()
    manifest = _read_manifest(root, issues)
    items: list[BenchmarkItem] = []
    if manifest is not None:
        seen: dict[str, tuple[str, int]] = {}
        for name in manifest.files:
            for number, item in _read_items(root, name, issues):
                first = seen.get(item.id)
                if first is not None:
                    issues.add(
                        name, number, "id", f"duplicate id (first used at {first[0]}:{first[1]})"
                    )
                    continue
                seen[item.id] = (name, number)
                items.append(item)
        if not items and not issues.found:
            issues.add(MANIFEST_NAME, 0, "files", "the listed files hold no items")
    if issues.found:
        raise BenchmarkError(issues.found)
    assert manifest is not None
    return Benchmark(manifest=manifest, items=tuple(items))


def seed_benchmark_path() -> Path:
    """The folder of the seed benchmark shipped with the package."""
    return Path(str(resources.files("trainer.eval") / "benchmarks" / "seed"))


def load_seed_benchmark() -> Benchmark:
    """The seed benchmark: every discipline x task cell, Chinese and English items."""
    return load_benchmark(seed_benchmark_path())


def item_from_dict(raw: Mapping[str, Any], *, source: str = "<item>") -> BenchmarkItem:
    """Validate one item given as a mapping (e.g. in tests or an HTTP body)."""
    issues = _Issues()
    item = parse_item(raw, file=source, line=1, issues=issues)
    if item is None:
        raise BenchmarkError(issues.found)
    return item


__all__: Sequence[str] = (
    "Benchmark",
    "BenchmarkItem",
    "Checker",
    "CodeChecker",
    "ExpressionChecker",
    "Manifest",
    "item_from_dict",
    "load_benchmark",
    "load_seed_benchmark",
    "seed_benchmark_path",
)
