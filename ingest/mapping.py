"""Which column of a question bank holds which field: column mappings and well-known headers.

A mapping names, for each field, the header of the column that holds it. Mappable fields are the
record fields ``instruction``, ``input``, ``output``, ``discipline``, ``task_type``, ``language``
and ``license``, and the question-bank fields ``options`` (one column holding ``A. … B. …`` or a
JSON list, or several columns, one option each), ``answer`` (an answer key such as ``B`` or
``A,C`` for a choice question; the answer itself otherwise) and ``explanation``.

A mapping is written on the command line (``instruction=题目,output=答案,options=A|B|C|D``),
in a YAML or JSON file (a mapping of field to header, optionally under a ``columns`` key, see
``examples/question_bank_mapping.yaml``), or sent over HTTP as a JSON object. Fields a mapping
leaves out are looked for among well-known headers (:data:`KNOWN_HEADERS`, English and Chinese),
so a bank whose headers are already ``题目``/``答案``/``解析`` needs no mapping at all.

Headers are named in messages (they are the institution's own column titles, needed to say where
a problem is) but shortened, and replaced by the column's position when they hold control
characters; cell values never are.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ingest.errors import IntakeError

MAPPABLE_FIELDS: tuple[str, ...] = (
    "instruction",
    "input",
    "output",
    "discipline",
    "task_type",
    "language",
    "license",
    "options",
    "answer",
    "explanation",
)
_MAPPABLE_LIST = ", ".join(MAPPABLE_FIELDS)
_MAX_HEADER_SHOWN = 40
_MAX_HEADERS_LISTED = 30
_MAX_MAPPING_FILE_BYTES = 64 * 1024


class InvalidMapping(IntakeError):
    """A column mapping that cannot be used: malformed, naming an unknown field or a column the
    file does not have, or missing a required field."""


def header_key(header: str) -> str:
    """A header folded for comparison: NFKC, case folded, spaces, ``_`` and ``-`` removed."""
    folded = unicodedata.normalize("NFKC", header).strip().casefold()
    return re.sub(r"[\s_\-:：]+", "", folded)


KNOWN_HEADERS: dict[str, tuple[str, ...]] = {
    "instruction": (
        "instruction", "question", "prompt", "stem", "题目", "问题", "题干", "试题", "题目内容",
    ),
    "input": ("input", "context", "输入", "材料", "补充材料"),
    "output": ("output", "response", "reference answer", "参考答案", "回答", "输出"),
    "answer": ("answer", "answer key", "key", "correct answer", "答案", "正确答案", "标准答案"),
    "explanation": ("explanation", "analysis", "rationale", "解析", "答案解析", "解释", "讲解"),
    "options": ("options", "choices", "选项", "备选项"),
    "discipline": ("discipline", "subject", "course", "科目", "学科", "课程"),
    "task_type": ("task type", "question type", "type", "题型", "题目类型", "任务类型"),
    "language": ("language", "lang", "语言", "语种"),
    "license": ("license", "licence", "许可", "许可证", "授权"),
}  # fmt: skip
"""Headers recognised without a mapping, per field (compared with :func:`header_key`)."""

_KNOWN_BY_KEY: dict[str, str] = {
    header_key(header): name for name, headers in KNOWN_HEADERS.items() for header in headers
}
_OPTION_COLUMN = re.compile(r"^(?:option|opt|choice|选项)?([a-h])$")
"""An option column: ``A``…``H``, ``option_a``, ``选项A`` (after :func:`header_key`)."""


def shown_header(header: str, position: int) -> str:
    """How a header is named in messages: quoted and shortened, or its 1-based position when it
    holds control characters or nothing printable."""
    if not header.strip() or any(unicodedata.category(c) in ("Cc", "Cs") for c in header):
        return f"column {position}"
    if len(header) > _MAX_HEADER_SHOWN:
        header = header[: _MAX_HEADER_SHOWN - 1] + "…"
    return f"'{header}'"


def headers_seen(headers: Sequence[str]) -> str:
    """The headers of a sheet for a message, shortened."""
    shown = [shown_header(h, i + 1) for i, h in enumerate(headers[:_MAX_HEADERS_LISTED])]
    if len(headers) > _MAX_HEADERS_LISTED:
        shown.append(f"and {len(headers) - _MAX_HEADERS_LISTED} more")
    return ", ".join(shown) if shown else "none"


@dataclass(frozen=True, slots=True)
class ColumnMapping:
    """Field -> the headers of the columns holding it (one header, except for ``options``)."""

    columns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, headers in self.columns.items():
            if name not in MAPPABLE_FIELDS:
                raise InvalidMapping(
                    f"unknown field in the mapping; mappable fields: {_MAPPABLE_LIST}"
                )
            if not headers or any(not isinstance(h, str) or not h.strip() for h in headers):
                raise InvalidMapping(f"field '{name}' in the mapping needs a column header")
            if len(headers) > 1 and name != "options":
                raise InvalidMapping(
                    f"field '{name}' in the mapping names several columns; only 'options' may"
                )

    @classmethod
    def from_document(cls, document: Any, *, where: str = "the mapping") -> ColumnMapping:
        """A mapping from a decoded YAML/JSON document: ``{field: header}`` (``options`` may be
        a list of headers), optionally under a ``columns`` key."""
        if isinstance(document, Mapping) and set(document) == {"columns"}:
            document = document["columns"]
        if not isinstance(document, Mapping):
            raise InvalidMapping(f"{where}: expected a mapping of field to column header")
        columns: dict[str, tuple[str, ...]] = {}
        for name, value in document.items():
            if not isinstance(name, str) or name.strip() not in MAPPABLE_FIELDS:
                raise InvalidMapping(
                    f"{where}: unknown field in the mapping; mappable fields: {_MAPPABLE_LIST}"
                )
            headers = list(value) if isinstance(value, list | tuple) else [value]
            if any(not isinstance(h, str | int) or isinstance(h, bool) for h in headers):
                raise InvalidMapping(
                    f"{where}: field '{name.strip()}' must name a column header (or, for "
                    "options, a list of headers)"
                )
            columns[name.strip()] = tuple(str(h).strip() for h in headers)
        try:
            return cls(columns=columns)
        except InvalidMapping as e:
            raise InvalidMapping(f"{where}: {e}") from None

    @classmethod
    def from_option(cls, text: str) -> ColumnMapping:
        """A mapping written as ``field=header,field=header`` (``options=A|B|C|D`` for several
        option columns), as ``--map`` takes it."""
        columns: dict[str, tuple[str, ...]] = {}
        for part in (p for p in text.split(",") if p.strip()):
            name, sep, header = part.partition("=")
            if not sep:
                raise InvalidMapping(
                    "--map: expected field=header pairs separated by commas, e.g. "
                    "instruction=题目,output=答案"
                )
            columns[name.strip()] = tuple(h.strip() for h in header.split("|"))
        return cls.from_document(columns, where="--map")

    @classmethod
    def load(cls, path: Path) -> ColumnMapping:
        """A mapping file: JSON when named ``.json``, YAML otherwise."""
        import yaml

        try:
            with Path(path).open("rb") as handle:
                raw = handle.read(_MAX_MAPPING_FILE_BYTES + 1)
        except OSError as e:
            raise InvalidMapping(f"cannot read mapping file {path}: {e.strerror or e}") from e
        name = Path(path).name
        if len(raw) > _MAX_MAPPING_FILE_BYTES:
            raise InvalidMapping(
                f"{name}: a mapping file is at most {_MAX_MAPPING_FILE_BYTES} bytes"
            )
        try:
            text = raw.decode("utf-8-sig")
            is_json = name.lower().endswith(".json")
            document = json.loads(text) if is_json else yaml.safe_load(text)
        except UnicodeDecodeError as e:
            raise InvalidMapping(f"{name}: not UTF-8 text") from e
        except json.JSONDecodeError as e:
            raise InvalidMapping(f"{name}:{e.lineno}: invalid JSON") from e
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{name}:{mark.line + 1}" if mark is not None else name
            raise InvalidMapping(f"{where}: invalid YAML") from e
        return cls.from_document(document, where=name)

    def merged(self, other: ColumnMapping) -> ColumnMapping:
        """This mapping with the fields of ``other`` taking precedence."""
        return ColumnMapping(columns={**self.columns, **other.columns})

    def to_document(self) -> dict[str, str | list[str]]:
        """The JSON/YAML shape :meth:`from_document` reads."""
        return {
            name: list(headers) if name == "options" else headers[0]
            for name, headers in self.columns.items()
        }


@dataclass(frozen=True, slots=True)
class ResolvedColumns:
    """For one sheet: field -> positions of its columns in the header row (0-based)."""

    headers: tuple[str, ...]
    positions: Mapping[str, tuple[int, ...]]

    def header_of(self, name: str) -> str | None:
        """The header of the (first) column holding field ``name``, or ``None``."""
        positions = self.positions.get(name)
        return self.headers[positions[0]] if positions else None


def resolve_columns(
    headers: Sequence[str], mapping: ColumnMapping | None, *, where: str
) -> ResolvedColumns:
    """Where each field is in a sheet with ``headers``: the explicit ``mapping`` first, then the
    well-known headers. Raises :class:`InvalidMapping` naming the field and the headers seen when
    the mapping names a missing column, or when no column holds ``instruction``, or neither
    ``output`` nor ``answer`` has one."""
    headers = tuple(headers)
    by_header: dict[str, int] = {}
    by_key: dict[str, int] = {}
    for i, header in enumerate(headers):
        by_header.setdefault(header.strip(), i)
        by_key.setdefault(header_key(header), i)
    positions: dict[str, tuple[int, ...]] = {}
    for name, wanted in (mapping.columns if mapping else {}).items():
        found: list[int] = []
        for header in wanted:
            at = by_header.get(header, by_key.get(header_key(header)))
            if at is None:
                raise InvalidMapping(
                    f"{where}: the mapping puts field '{name}' in a column "
                    f"{shown_header(header, 0)} that is not there; headers seen: "
                    f"{headers_seen(headers)}"
                )
            found.append(at)
        positions[name] = tuple(found)
    taken = {i for found in positions.values() for i in found}
    for i, header in enumerate(headers):
        known = _KNOWN_BY_KEY.get(header_key(header))
        if known is not None and known not in positions and i not in taken:
            positions[known] = (i,)
            taken.add(i)
    if "options" not in positions:
        lettered = sorted(
            (match.group(1), i)
            for i, header in enumerate(headers)
            if i not in taken and (match := _OPTION_COLUMN.match(header_key(header)))
        )
        if lettered:
            positions["options"] = tuple(i for _, i in lettered)
    missing = "instruction" if "instruction" not in positions else None
    if missing is None and "output" not in positions and "answer" not in positions:
        missing = "output' or 'answer"
    if missing is not None:
        raise InvalidMapping(
            f"{where}: no column for field '{missing}'; headers seen: {headers_seen(headers)}. "
            "Name it with --map (e.g. instruction=题目,output=答案) or a mapping file"
        )
    return ResolvedColumns(headers=headers, positions=positions)
