"""Reading submitted batch files into located JSON values.

Two formats are accepted:

* **JSON** (Alpaca style): one top-level array of objects. Every element is located by its
  array index *and* the line its first character is on. After a syntax error inside an element,
  reading resumes at the next ``{`` that starts a line or follows a comma and decodes into a
  complete element followed by ``,`` or ``]``; indexes after that point count the broken element
  as one element.
* **JSONL**: one JSON value per line; blank lines are ignored. The index of an item is the number of
  non-blank lines before it.

Tabular question banks (``.csv``, ``.tsv``, ``.xlsx``, ``.parquet``) are named here too but read by
:mod:`ingest.banks`.

The format comes from the file name: ``.jsonl``/``.ndjson`` are JSONL; ``.json`` is a JSON array
unless its first non-blank character is ``{`` (JSONL saved under a ``.json`` name is common); any
other name is sniffed: ``[`` means a JSON array, anything else JSONL. A UTF-8 byte-order mark is
skipped.

Bytes that are not UTF-8 are reported with their line and byte offset (0-based, counted from the
start of the line and of the file) and only the line or element that holds them is dropped. Nothing
here raises on bad input: every problem becomes an :class:`~ingest.records.IntakeIssue`, whose
message says where and which rule, never what was there (see :mod:`ingest.validation`): a syntax
error names the JSON decoder's rule and what kind of token was found, not the token.
"""

from __future__ import annotations

import bisect
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

from ingest.records import IntakeIssue, IssueCode, Severity

MAX_NESTING = 256
"""Deepest nesting of arrays and objects accepted in one item. The C JSON decoder recurses once per
level and trusts ``sys.getrecursionlimit()``, which some libraries raise to 100,000 (web3 does): a
line of 100k ``[`` would then overflow the C stack and kill the process instead of being reported.
Items are checked before decoding when they hold enough brackets to be that deep."""

_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _nesting_exceeds(text: str, start: int = 0, *, limit: int, single_value: bool) -> bool:
    """Whether arrays/objects nest deeper than ``limit`` in ``text`` from ``start`` (strings
    skipped). With ``single_value`` the scan stops where the value starting at ``start`` closes."""
    depth = 0
    for match in _JSON_TOKENS.finditer(text, start):
        char = match.group()[0]
        if char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
            if single_value and depth <= 0:
                return False
    return False


def _may_nest_deeper(text: str, limit: int) -> bool:
    """Cheap test: too few brackets to nest deeper than ``limit``."""
    return text.count("[") + text.count("{") > limit


_BOM = b"\xef\xbb\xbf"
# Python refuses to convert integers longer than sys.get_int_max_str_digits() (4300 by default)
# and raises ValueError, not JSONDecodeError.
_TOO_MANY_DIGITS = "invalid JSON: a number has too many digits"
_JSON_WS = " \t\r\n"
_SURROGATE_ESCAPE = re.compile("[\udc80-\udcff]")
# Where reading may resume after a syntax error: a "{" starting a line or following a comma.
_RESYNC = re.compile(r"(?:^|,)[ \t\r]*(\{)", re.MULTILINE)

# The json module's syntax error messages. Messages are matched by prefix and cut to it: the pure
# Python decoder appends the offending character or escape ("Invalid \\escape: 'q'").
_DECODER_RULES = (
    "Expecting value",
    "Expecting ',' delimiter",
    "Expecting ':' delimiter",
    "Expecting property name enclosed in double quotes",
    "Unterminated string starting at",
    "Invalid control character",
    "Invalid \\uXXXX escape",
    "Invalid \\escape",
    "Extra data",
    "Illegal trailing comma before end of object",
    "Illegal trailing comma before end of array",
)
_STRUCTURAL = frozenset("[]{},:")


def _decoder_rule(message: str) -> str:
    """The decoder's rule in ``message`` with nothing of the document in it."""
    for rule in _DECODER_RULES:
        if message.startswith(rule):
            return rule
    return "syntax error"


def _token_kind(char: str) -> str:
    """What a token starting with ``char`` is, for messages; only JSON punctuation is shown."""
    if char in _STRUCTURAL:
        return repr(char)
    if char == '"':
        return "a string"
    if char == "-" or char.isdigit():
        return "a number"
    if char in "tfn":
        return "a literal such as true, false or null"
    return "a character that cannot start a JSON value"


class BatchFormat(StrEnum):
    JSON = "json"
    JSONL = "jsonl"
    CSV = "csv"
    TSV = "tsv"
    XLSX = "xlsx"
    PARQUET = "parquet"

    @property
    def is_tabular(self) -> bool:
        """Whether the format is a table of question-bank rows (read by :mod:`ingest.banks`)."""
        return self in TABULAR_FORMATS


TABULAR_FORMATS: frozenset[BatchFormat] = frozenset(
    {BatchFormat.CSV, BatchFormat.TSV, BatchFormat.XLSX, BatchFormat.PARQUET}
)
_TABULAR_SUFFIXES = {
    ".csv": BatchFormat.CSV,
    ".tsv": BatchFormat.TSV,
    ".tab": BatchFormat.TSV,
    ".xlsx": BatchFormat.XLSX,
    ".parquet": BatchFormat.PARQUET,
}


@dataclass(frozen=True, slots=True)
class RawItem:
    """One decoded top-level JSON value and where it starts.

    ``duplicate_keys`` lists keys that appeared more than once in a top-level object (JSON decoding
    would otherwise silently keep the last one).
    """

    line: int
    index: int
    value: Any
    duplicate_keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ParsedBatch:
    """The located values of a batch and the problems met while reading it."""

    source: str
    format: BatchFormat
    items: tuple[RawItem, ...]
    issues: tuple[IntakeIssue, ...]
    items_seen: int
    """Items found in the file, decodable or not (blank JSONL lines excluded)."""


def json_type_name(value: Any) -> str:
    """The JSON name of a decoded value's type (``string``, ``number``, ``object``...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def source_label(name: str) -> str:
    """The file name used in messages: the last path component, never a directory."""
    label = re.split(r"[\\/]", name.strip())[-1]
    return label or "batch"


def describe_location(*, source: str, line: int | None, index: int | None, fmt: BatchFormat) -> str:
    """``sample.jsonl:14`` for JSONL, ``batch.json:23 (index 4)`` for a JSON array element,
    ``bank.csv: row 5`` for a tabular file."""
    if fmt.is_tabular:
        return source if line is None else f"{source}: row {line}"
    where = source if line is None else f"{source}:{line}"
    if fmt is BatchFormat.JSON and index is not None:
        where += f" (index {index})"
    return where


def make_issue(
    *,
    source: str,
    fmt: BatchFormat,
    line: int | None,
    index: int | None,
    code: IssueCode,
    detail: str,
    field: str | None = None,
    severity: Severity = Severity.ERROR,
) -> IntakeIssue:
    """An issue whose message starts with its location (and field), then ``detail``."""
    prefix = describe_location(source=source, line=line, index=index, fmt=fmt)
    if field is not None:
        prefix += f": field '{field}'"
    return IntakeIssue(
        source=source,
        line=line,
        index=index,
        field=field,
        code=code,
        message=f"{prefix}: {detail}",
        severity=severity,
    )


def detect_format(data: bytes, *, source_name: str) -> BatchFormat:
    """The format of ``data`` from its file name and, where that is not decisive, its content."""
    suffix = PurePosixPath(source_label(source_name)).suffix.lower()
    if suffix in _TABULAR_SUFFIXES:
        return _TABULAR_SUFFIXES[suffix]
    first = data.removeprefix(_BOM).lstrip()[:1]
    if suffix in (".jsonl", ".ndjson"):
        return BatchFormat.JSONL
    if suffix == ".json":
        return BatchFormat.JSONL if first == b"{" else BatchFormat.JSON
    return BatchFormat.JSON if first == b"[" else BatchFormat.JSONL


def parse_batch(
    data: bytes,
    *,
    source_name: str,
    fmt: BatchFormat | None = None,
    max_items: int | None = None,
) -> ParsedBatch:
    """Decode every item of a batch. ``fmt`` overrides :func:`detect_format`; at most ``max_items``
    items are read (one ``too_many_records`` issue marks the cut). JSON and JSONL only: tabular
    files go through :func:`ingest.banks.convert_bank`."""
    source = source_label(source_name)
    fmt = fmt or detect_format(data, source_name=source_name)
    if fmt.is_tabular:
        raise ValueError("parse_batch reads JSON and JSONL; tabular files are read by ingest.banks")
    reader = _JsonlReader if fmt is BatchFormat.JSONL else _JsonArrayReader
    return reader(data, source=source, max_items=max_items).read()


class _JsonObject(dict[str, Any]):
    """A decoded JSON object that remembers which keys were repeated."""

    duplicate_keys: tuple[str, ...] = ()


def _object_pairs(pairs: list[tuple[str, Any]]) -> _JsonObject:
    obj = _JsonObject(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        repeated: set[str] = set()
        for key, _ in pairs:
            (repeated if key in seen else seen).add(key)
        obj.duplicate_keys = tuple(sorted(repeated))
    return obj


def _item(*, line: int, index: int, value: Any) -> RawItem:
    if isinstance(value, _JsonObject):
        return RawItem(
            line=line, index=index, value=dict(value), duplicate_keys=value.duplicate_keys
        )
    return RawItem(line=line, index=index, value=value)


class _Reader(ABC):
    """Shared bookkeeping of the two readers: items, issues, and the count of items seen."""

    fmt: BatchFormat

    def __init__(self, data: bytes, *, source: str, max_items: int | None) -> None:
        self.data = data
        self.source = source
        self.max_items = max_items
        self.items: list[RawItem] = []
        self.issues: list[IntakeIssue] = []
        self.seen = 0
        self.decoder = json.JSONDecoder(object_pairs_hook=_object_pairs)

    @abstractmethod
    def read(self) -> ParsedBatch:
        """Parse the whole batch."""

    def issue(self, *, line: int | None, index: int | None, code: IssueCode, detail: str) -> None:
        self.issues.append(
            make_issue(
                source=self.source, fmt=self.fmt, line=line, index=index, code=code, detail=detail
            )
        )

    def admit(self, *, line: int) -> int | None:
        """Count one more item; its index, or ``None`` once ``max_items`` is exceeded."""
        if self.max_items is not None and self.seen >= self.max_items:
            self.issue(
                line=line,
                index=self.seen,
                code=IssueCode.TOO_MANY_RECORDS,
                detail=f"the batch has more than {self.max_items} records; "
                "this one and everything after it were not read",
            )
            return None
        self.seen += 1
        return self.seen - 1

    def result(self) -> ParsedBatch:
        if self.seen == 0 and not self.issues:
            self.issue(line=None, index=None, code=IssueCode.EMPTY_BATCH, detail="no records")
        return ParsedBatch(
            source=self.source,
            format=self.fmt,
            items=tuple(self.items),
            issues=tuple(self.issues),
            items_seen=self.seen,
        )


class _JsonlReader(_Reader):
    fmt = BatchFormat.JSONL

    def read(self) -> ParsedBatch:
        for line_no, file_offset, raw in self._lines():
            if not raw.strip():
                continue
            index = self.admit(line=line_no)
            if index is None:
                break
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                self.issue(
                    line=line_no,
                    index=index,
                    code=IssueCode.NOT_UTF8,
                    detail=f"not valid UTF-8: byte 0x{raw[e.start]:02x} at byte offset {e.start} "
                    f"of the line (offset {file_offset + e.start} in the file)",
                )
                continue
            try:
                if _may_nest_deeper(text, MAX_NESTING) and _nesting_exceeds(
                    text, limit=MAX_NESTING, single_value=False
                ):
                    raise RecursionError
                value = self.decoder.decode(text)
            except json.JSONDecodeError as e:
                self.issue(
                    line=line_no,
                    index=index,
                    code=IssueCode.INVALID_JSON,
                    detail=f"invalid JSON at column {e.colno}: {_decoder_rule(e.msg)}",
                )
                continue
            except ValueError:
                self.issue(
                    line=line_no, index=index, code=IssueCode.INVALID_JSON, detail=_TOO_MANY_DIGITS
                )
                continue
            except RecursionError:
                self.issue(
                    line=line_no,
                    index=index,
                    code=IssueCode.INVALID_JSON,
                    detail="invalid JSON: nested too deeply",
                )
                continue
            self.items.append(_item(line=line_no, index=index, value=value))
        return self.result()

    def _lines(self) -> Iterator[tuple[int, int, bytes]]:
        """``(line number, byte offset of the line in the file, line bytes without EOL)``."""
        offset = 0
        data = self.data
        if data.startswith(_BOM):
            offset = len(_BOM)
        line_no = 0
        while offset < len(data):
            end = data.find(b"\n", offset)
            if end < 0:
                end = len(data)
            line_no += 1
            yield line_no, offset, data[offset:end].removesuffix(b"\r")
            offset = end + 1


class _JsonArrayReader(_Reader):
    fmt = BatchFormat.JSON

    def __init__(self, data: bytes, *, source: str, max_items: int | None) -> None:
        super().__init__(data, source=source, max_items=max_items)
        self.bom = len(_BOM) if data.startswith(_BOM) else 0
        # Undecodable bytes become lone surrogates so that the JSON scanner can still walk the text;
        # any element whose span holds one is reported and dropped.
        self.text = data[self.bom :].decode("utf-8", errors="surrogateescape")
        # The outer array adds one level; only a document that may nest too deep is checked
        # element by element.
        self._deep = _may_nest_deeper(self.text, MAX_NESTING + 1) and _nesting_exceeds(
            self.text, limit=MAX_NESTING + 1, single_value=False
        )
        self.newlines = [m.start() for m in re.finditer("\n", self.text)]

    def line_of(self, pos: int) -> int:
        return bisect.bisect_right(self.newlines, pos - 1) + 1

    def skip_ws(self, pos: int) -> int:
        text = self.text
        while pos < len(text) and text[pos] in _JSON_WS:
            pos += 1
        return pos

    def read(self) -> ParsedBatch:
        text = self.text
        pos = self.skip_ws(0)
        if pos >= len(text):
            return self.result()
        if text[pos] != "[":
            self.issue(
                line=self.line_of(pos),
                index=None,
                code=IssueCode.NOT_AN_ARRAY,
                detail=f"expected a JSON array of objects ('['), found {_token_kind(text[pos])}",
            )
            return self.result()
        pos += 1
        after_comma = False
        while True:
            pos = self.skip_ws(pos)
            if pos >= len(text):
                self._unclosed()
                break
            if text[pos] == "]":
                if after_comma:
                    self.issue(
                        line=self.line_of(pos),
                        index=None,
                        code=IssueCode.INVALID_JSON,
                        detail="invalid JSON: trailing comma before ']'",
                    )
                self._after_array(pos + 1)
                break
            step = self._element(pos)
            if step is None:
                break
            next_pos, resynced = step
            if resynced:
                # Reading resumed at the start of a later element after a syntax error.
                pos, after_comma = next_pos, False
                continue
            pos = self.skip_ws(next_pos)
            if pos >= len(text):
                self._unclosed()
                break
            after_comma = text[pos] == ","
            if after_comma:
                pos += 1
            elif text[pos] == "]":
                self._after_array(pos + 1)
                break
            else:
                self.issue(
                    line=self.line_of(pos),
                    index=None,
                    code=IssueCode.INVALID_JSON,
                    detail=f"invalid JSON: expected ',' or ']' after the element at index "
                    f"{self.seen - 1}, found {_token_kind(text[pos])}",
                )
                if text[pos] != "{":
                    resumed = self._resync(pos)
                    if resumed is None:
                        break
                    pos = resumed
        return self.result()

    def _element(self, pos: int) -> tuple[int, bool] | None:
        """Decode the element at ``pos``. Returns where to continue and whether that is the start of
        a later element (after a syntax error), or ``None`` when reading must stop."""
        line = self.line_of(pos)
        index = self.admit(line=line)
        if index is None:
            return None
        try:
            if self._deep and _nesting_exceeds(
                self.text, pos, limit=MAX_NESTING, single_value=True
            ):
                raise RecursionError
            value, end = self.decoder.raw_decode(self.text, pos)
        except json.JSONDecodeError as e:
            self.issue(
                line=line,
                index=index,
                code=IssueCode.INVALID_JSON,
                detail=f"invalid JSON at line {e.lineno}, column {e.colno}: {_decoder_rule(e.msg)}",
            )
            return self._resumed(max(e.pos, pos + 1))
        except ValueError:
            self.issue(line=line, index=index, code=IssueCode.INVALID_JSON, detail=_TOO_MANY_DIGITS)
            return self._resumed(pos + 1)
        except RecursionError:
            self.issue(
                line=line,
                index=index,
                code=IssueCode.INVALID_JSON,
                detail="invalid JSON: nested too deeply",
            )
            return self._resumed(pos + 1)
        bad = _SURROGATE_ESCAPE.search(self.text, pos, end)
        if bad is not None:
            byte = ord(bad.group()) - 0xDC00
            offset = self.bom + len(self.text[: bad.start()].encode("utf-8", "surrogateescape"))
            line_start = self.text.rfind("\n", 0, bad.start()) + 1
            in_line = len(self.text[line_start : bad.start()].encode("utf-8", "surrogateescape"))
            self.issue(
                line=line,
                index=index,
                code=IssueCode.NOT_UTF8,
                detail=f"not valid UTF-8: byte 0x{byte:02x} on line {self.line_of(bad.start())} "
                f"at byte offset {in_line} of the line (offset {offset} in the file)",
            )
        else:
            self.items.append(_item(line=line, index=index, value=value))
        return end, False

    def _resumed(self, pos: int) -> tuple[int, bool] | None:
        start = self._resync(pos)
        return None if start is None else (start, True)

    def _resync(self, pos: int) -> int | None:
        """The next position where a complete element starts, or ``None``."""
        for match in _RESYNC.finditer(self.text, pos):
            start = match.start(1)
            try:
                if self._deep and _nesting_exceeds(
                    self.text, start, limit=MAX_NESTING, single_value=True
                ):
                    raise RecursionError
                _, end = self.decoder.raw_decode(self.text, start)
            except (ValueError, RecursionError):
                continue
            following = self.skip_ws(end)
            if following >= len(self.text) or self.text[following] in ",]":
                return start
        return None

    def _unclosed(self) -> None:
        self.issue(
            line=self.line_of(len(self.text)),
            index=None,
            code=IssueCode.INVALID_JSON,
            detail="invalid JSON: the array is not closed with ']'",
        )

    def _after_array(self, pos: int) -> None:
        rest = self.skip_ws(pos)
        if rest < len(self.text):
            self.issue(
                line=self.line_of(rest),
                index=None,
                code=IssueCode.INVALID_JSON,
                detail="invalid JSON: unexpected content after the closing ']'",
            )
