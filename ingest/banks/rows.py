"""One question-bank row as an Alpaca-style item: choices rendered, answer key checked.

A *choice question* is a row with options. Its instruction is the question followed by one option
per line (``A. …``); its output starts with the answer key (``答案：B`` for a Chinese row,
``Answer: B`` for an English one), then the output column if one is mapped, then the explanation
(``解析：…`` / ``Explanation: …``). A row without options keeps its answer as the output, followed
by the explanation. The row's language is its ``language`` cell when mapped and recognisable,
else the language detected on the question (:func:`ingest.language.detect_language`).

Options come from one column (``A. TCP B. UDP``, ``A、…；B、…``, one per line, or a JSON list) or
from several (``A``..``F``, ``option_a``..``option_f``; an empty cell is an absent option). An
answer key is letters (``B``, ``A,C``, ``AC``, ``a c``); a key naming an option the question does
not have, or a choice question without a key, is an error of that row. A ``题型`` cell naming a
question type teachers use (单选题, 简答题, …) becomes the matching task type.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ingest.language import detect_language
from ingest.mapping import ResolvedColumns, header_key
from ingest.records import IssueCode, Language, TaskType

_LABELS = "ABCDEFGH"
_INLINE_OPTION = re.compile(r"(?:^|(?<=[\s;；,，|]))([A-Ha-h])\s*[.．、:：)）]\s*")
_KEY_SEPARATORS = re.compile(r"[\s,，、;；/|+]+")
_LABEL_TEXT = {
    Language.ZH: ("答案：", "解析："),
    Language.EN: ("Answer: ", "Explanation: "),
}
_LANGUAGE_NAMES = {
    **{key: Language.ZH for key in ("zh", "zh-cn", "zhcn", "chinese", "中文", "汉语", "cn")},
    **{key: Language.EN for key in ("en", "en-us", "enus", "english", "英文", "英语")},
}
QUESTION_TYPES: dict[str, TaskType] = {
    header_key(name): task
    for task, names in {
        TaskType.KNOWLEDGE_QA: (
            "单选题", "多选题", "单项选择题", "多项选择题", "选择题", "判断题", "填空题", "简答题",
            "名词解释", "single choice", "multiple choice", "true false", "fill in the blank",
            "short answer",
        ),
        TaskType.PROBLEM_SOLVING: ("计算题", "综合题", "应用题", "分析题", "calculation"),
        TaskType.CONCEPT_EXPLANATION: ("论述题", "问答题", "essay"),
        TaskType.FORMULA_DERIVATION: ("证明题", "推导题", "proof"),
        TaskType.CODE_EXPLANATION: ("编程题", "程序题", "programming"),
    }.items()
    for name in names
}  # fmt: skip
"""Question types as teachers name them -> task type (compared with ``header_key``)."""
_PASSED_THROUGH = ("input", "discipline", "license")


@dataclass(frozen=True, slots=True)
class RowProblem:
    """A problem of one row found while converting it: the field and column it is in."""

    field: str
    code: IssueCode
    detail: str


@dataclass(frozen=True, slots=True)
class ConvertedRow:
    """An item built from one row, the header each field came from, and the row's problems."""

    value: dict[str, Any]
    columns: Mapping[str, str]
    problems: list[RowProblem] = field(default_factory=list)


def cell_text(value: Any) -> str:
    """A cell as text: ``None``/NaN empty, integral floats without ``.0``, lists as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, int):
        return str(value)
    listed = _as_list(value)
    if listed is not None:
        return json.dumps([cell_text(v) for v in listed], ensure_ascii=False)
    return str(value)


def _as_list(value: Any) -> list[Any] | None:
    if isinstance(value, list | tuple):
        return list(value)
    tolist = getattr(value, "tolist", None)  # numpy arrays, as pyarrow gives Parquet lists
    if callable(tolist):
        listed = tolist()
        return listed if isinstance(listed, list) else None
    return None


def is_empty_row(cells: tuple[Any, ...], columns: ResolvedColumns) -> bool:
    """Whether every mapped cell of the row is empty (the row is skipped)."""
    return not any(
        cell_text(cells[i]).strip() for found in columns.positions.values() for i in found
    )


def _options(cells: tuple[Any, ...], columns: ResolvedColumns) -> list[tuple[str, str]]:
    positions = columns.positions.get("options", ())
    if len(positions) > 1:
        return [
            (_LABELS[n], text)
            for n, i in enumerate(positions[: len(_LABELS)])
            if (text := cell_text(cells[i]).strip())
        ]
    if not positions:
        return []
    raw = cells[positions[0]]
    listed = _as_list(raw)
    text = cell_text(raw).strip()
    if listed is None and text.startswith("["):
        try:
            decoded = json.loads(text)
        except ValueError:
            decoded = None
        listed = decoded if isinstance(decoded, list) else None
    if listed is not None:
        texts = [cell_text(v).strip() for v in listed][: len(_LABELS)]
        return [(_LABELS[n], t) for n, t in enumerate(texts) if t]
    marks = list(_INLINE_OPTION.finditer(text))
    if marks:
        found = []
        for n, mark in enumerate(marks):
            end = marks[n + 1].start() if n + 1 < len(marks) else len(text)
            option = text[mark.end() : end].strip().rstrip(";；,，|").strip()
            if option:
                found.append((mark.group(1).upper(), option))
        return found
    lines = [line.strip() for line in text.splitlines() if line.strip()][: len(_LABELS)]
    return [(_LABELS[n], line) for n, line in enumerate(lines)]


def _answer_key(text: str) -> list[str] | None:
    """The letters of an answer key, or ``None`` when ``text`` is not one."""
    compact = _KEY_SEPARATORS.sub("", text.strip().upper())
    if not compact or not all(c in _LABELS for c in compact):
        return None
    return sorted(set(compact), key=_LABELS.index)


def _language(cells: tuple[Any, ...], columns: ResolvedColumns, *texts: str) -> Language:
    positions = columns.positions.get("language")
    if positions:
        named = _LANGUAGE_NAMES.get(header_key(cell_text(cells[positions[0]])))
        if named is not None:
            return named
    return Language.EN if detect_language(*texts) is Language.EN else Language.ZH


def convert_row(cells: tuple[Any, ...], columns: ResolvedColumns) -> ConvertedRow:
    """The Alpaca-style item of one (non-empty) row; see the module docstring."""

    def text(name: str) -> str | None:
        positions = columns.positions.get(name)
        return cell_text(cells[positions[0]]).strip() if positions else None

    origin: dict[str, str] = {}

    def came_from(name: str, source: str) -> None:
        header = columns.header_of(source)
        if header is not None:
            origin[name] = header

    problems: list[RowProblem] = []
    question = text("instruction") or ""
    options = _options(cells, columns)
    answer = text("answer") or ""
    written = text("output") or ""
    explanation = text("explanation") or ""
    language = _language(cells, columns, question, *(o for _, o in options))
    answer_label, explanation_label = _LABEL_TEXT[language]

    came_from("instruction", "instruction")
    instruction = question
    if options and question:
        instruction = question + "\n" + "\n".join(f"{label}. {o}" for label, o in options)

    parts: list[str] = []
    if options:
        came_from("output", "answer" if "answer" in columns.positions else "output")
        if answer:
            key = _answer_key(answer)
            labels = [label for label, _ in options]
            if key is None:
                problems.append(
                    RowProblem(
                        "answer",
                        IssueCode.WRONG_TYPE,
                        "not an answer key: expected option letters such as B or A,C",
                    )
                )
            elif any(letter not in labels for letter in key):
                problems.append(
                    RowProblem(
                        "answer",
                        IssueCode.WRONG_TYPE,
                        "the answer key names an option this question does not have "
                        f"(its options are {', '.join(labels)})",
                    )
                )
            else:
                parts.append(answer_label + ",".join(key))
        elif "answer" in columns.positions:
            problems.append(
                RowProblem(
                    "answer", IssueCode.EMPTY_FIELD, "a choice question needs its answer key"
                )
            )
    elif answer:
        came_from("output", "answer")
        parts.append(answer)
    if written:
        came_from("output", "output")
        parts.append(written)
    if explanation:
        parts.append(explanation_label + explanation)
    if "output" not in origin:
        came_from("output", "output" if "output" in columns.positions else "answer")

    value: dict[str, Any] = {"instruction": instruction, "output": "\n".join(parts)}
    for name in _PASSED_THROUGH:
        cell = text(name)
        if cell:
            value[name] = cell
            came_from(name, name)
    task = text("task_type")
    if task:
        came_from("task_type", "task_type")
        known = QUESTION_TYPES.get(header_key(task))
        value["task_type"] = known.value if known is not None else task
    return ConvertedRow(value=value, columns=origin, problems=problems)
