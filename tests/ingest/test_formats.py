"""Reading JSON arrays and JSONL into located items: formats, line/index bookkeeping, bad bytes."""

from __future__ import annotations

import json

import pytest

from ingest.formats import BatchFormat, detect_format, parse_batch, source_label
from ingest.records import IssueCode

GOOD = {"instruction": "What is entropy?", "output": "A measure of uncertainty."}


def jsonl(*lines: object) -> bytes:
    """JSONL bytes: dicts are encoded, bytes and str are taken as the raw line."""
    out = []
    for line in lines:
        if isinstance(line, bytes):
            out.append(line)
        elif isinstance(line, str):
            out.append(line.encode())
        else:
            out.append(json.dumps(line, ensure_ascii=False).encode())
    return b"\n".join(out) + b"\n"


def codes(parsed) -> list[tuple[int | None, int | None, str]]:
    return [(i.line, i.index, i.code.value) for i in parsed.issues]


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("batch.jsonl", b'{"a": 1}', BatchFormat.JSONL),
        ("batch.ndjson", b'{"a": 1}', BatchFormat.JSONL),
        ("batch.JSONL", b"[]", BatchFormat.JSONL),
        ("batch.json", b"[]", BatchFormat.JSON),
        ("batch.json", b'\n  {"a": 1}\n{"a": 2}', BatchFormat.JSONL),
        ("batch.json", b"\xef\xbb\xbf[]", BatchFormat.JSON),
        ("upload", b"  \n[{}]", BatchFormat.JSON),
        ("upload.txt", b'{"a": 1}', BatchFormat.JSONL),
        ("C:\\data\\batch.json", b"[]", BatchFormat.JSON),
    ],
)
def test_format_comes_from_the_extension_or_the_content(
    name: str, data: bytes, expected: BatchFormat
) -> None:
    assert detect_format(data, source_name=name) is expected


def test_source_label_keeps_only_the_file_name() -> None:
    assert source_label("/home/u/uploads/batch.jsonl") == "batch.jsonl"
    assert source_label("C:\\Users\\u\\batch.json") == "batch.json"
    assert source_label("") == "batch"


def test_jsonl_skips_blank_lines_and_counts_items_on_non_blank_lines() -> None:
    data = b'\n{"n": 1}\r\n   \n\n{"n": 2}\n\t\n{"n": 3}'
    parsed = parse_batch(data, source_name="a.jsonl")
    assert parsed.format is BatchFormat.JSONL
    assert [(i.line, i.index, i.value) for i in parsed.items] == [
        (2, 0, {"n": 1}),
        (5, 1, {"n": 2}),
        (7, 2, {"n": 3}),
    ]
    assert parsed.issues == ()
    assert parsed.items_seen == 3


def test_jsonl_invalid_line_is_reported_and_the_others_are_read() -> None:
    data = jsonl(GOOD, '{"instruction": "x", "output": }', GOOD | {"n": 3})
    parsed = parse_batch(data, source_name="a.jsonl")
    assert [i.line for i in parsed.items] == [1, 3]
    (issue,) = parsed.issues
    assert (issue.line, issue.index, issue.field, issue.code) == (
        2,
        1,
        None,
        IssueCode.INVALID_JSON,
    )
    assert issue.message == "a.jsonl:2: invalid JSON at column 32: Expecting value"


def test_jsonl_non_utf8_line_reports_line_and_byte_offsets_and_keeps_other_lines() -> None:
    first = json.dumps(GOOD).encode()
    bad = b'{"instruction": "caf\xe9", "output": "x"}'
    parsed = parse_batch(first + b"\n" + bad + b"\n" + first + b"\n", source_name="a.jsonl")
    assert [i.line for i in parsed.items] == [1, 3]
    (issue,) = parsed.issues
    assert issue.code is IssueCode.NOT_UTF8
    assert (issue.line, issue.index) == (2, 1)
    offset_in_line = bad.index(b"\xe9")
    offset_in_file = len(first) + 1 + offset_in_line
    assert issue.message == (
        f"a.jsonl:2: not valid UTF-8: byte 0xe9 at byte offset {offset_in_line} of the line "
        f"(offset {offset_in_file} in the file)"
    )


def test_jsonl_skips_a_byte_order_mark() -> None:
    parsed = parse_batch(b"\xef\xbb\xbf" + jsonl(GOOD), source_name="a.jsonl")
    assert parsed.issues == ()
    assert parsed.items[0].value == GOOD


def test_jsonl_records_repeated_keys() -> None:
    parsed = parse_batch(b'{"output": "a", "instruction": "q", "output": "b"}', source_name="a")
    assert parsed.items[0].duplicate_keys == ("output",)
    assert parsed.items[0].value == {"output": "b", "instruction": "q"}


def test_json_array_items_carry_their_index_and_start_line() -> None:
    data = (
        b"[\n"
        b'  {"instruction": "a",\n   "output": "b"},\n'
        b'  {"instruction": "c", "output": "d"},\n'
        b"\n"
        b'  {\n    "instruction": "e",\n    "output": "f"\n  }\n'
        b"]\n"
    )
    parsed = parse_batch(data, source_name="a.json")
    assert parsed.format is BatchFormat.JSON
    assert [(i.index, i.line) for i in parsed.items] == [(0, 2), (1, 4), (2, 6)]
    assert parsed.issues == ()


def test_json_array_resumes_after_a_broken_element() -> None:
    data = (
        b"[\n"
        b'  {"instruction": "a", "output": "b"},\n'
        b'  {"instruction": "c" "output": "d"},\n'
        b'  {"instruction": "e", "output": "f"}\n'
        b"]\n"
    )
    parsed = parse_batch(data, source_name="a.json")
    assert [(i.index, i.line, i.value["instruction"]) for i in parsed.items] == [
        (0, 2, "a"),
        (2, 4, "e"),
    ]
    (issue,) = parsed.issues
    assert (issue.line, issue.index, issue.code) == (3, 1, IssueCode.INVALID_JSON)
    assert issue.message == (
        "a.json:3 (index 1): invalid JSON at line 3, column 23: Expecting ',' delimiter"
    )


def test_json_array_resumes_on_a_single_line_file() -> None:
    data = b'[{"instruction": "a", "output": 1 2}, {"instruction": "b", "output": "c"}]'
    parsed = parse_batch(data, source_name="a.json")
    assert [(i.index, i.value["instruction"]) for i in parsed.items] == [(1, "b")]
    assert codes(parsed) == [(1, 0, "invalid_json")]


def test_json_array_missing_comma_and_trailing_comma_are_reported() -> None:
    data = b'[\n{"n": 1}\n{"n": 2},\n]'
    parsed = parse_batch(data, source_name="a.json")
    assert [i.value for i in parsed.items] == [{"n": 1}, {"n": 2}]
    assert [i.message for i in parsed.issues] == [
        "a.json:3: invalid JSON: expected ',' or ']' after the element at index 0, found '{'",
        "a.json:4: invalid JSON: trailing comma before ']'",
    ]


def test_json_array_unclosed_and_trailing_content_are_reported() -> None:
    unclosed = parse_batch(b'[\n{"n": 1},\n{"n": 2}\n', source_name="a.json")
    assert [i.value for i in unclosed.items] == [{"n": 1}, {"n": 2}]
    assert [i.message for i in unclosed.issues] == [
        "a.json:4: invalid JSON: the array is not closed with ']'"
    ]
    trailing = parse_batch(b'[{"n": 1}]\n[{"n": 2}]\n', source_name="a.json")
    assert [i.value for i in trailing.items] == [{"n": 1}]
    assert [i.message for i in trailing.issues] == [
        "a.json:2: invalid JSON: unexpected content after the closing ']'"
    ]


def test_json_array_non_utf8_drops_only_the_element_that_holds_it() -> None:
    head = b'[\n  {"instruction": "a", "output": "b"},\n'
    bad_line = b'  {"instruction": "\xff\xfe", "output": "b"},\n'
    data = head + bad_line + b'  {"instruction": "c", "output": "d"}\n]\n'
    parsed = parse_batch(data, source_name="a.json")
    assert [(i.index, i.value["instruction"]) for i in parsed.items] == [(0, "a"), (2, "c")]
    (issue,) = parsed.issues
    in_line = bad_line.index(b"\xff")
    assert issue.code is IssueCode.NOT_UTF8
    assert (issue.line, issue.index) == (3, 1)
    assert issue.message == (
        f"a.json:3 (index 1): not valid UTF-8: byte 0xff on line 3 at byte offset {in_line} "
        f"of the line (offset {len(head) + in_line} in the file)"
    )


def test_json_top_level_must_be_an_array() -> None:
    parsed = parse_batch(b'\n"just a string"', source_name="a.json")
    assert parsed.items == ()
    assert [(i.code, i.message) for i in parsed.issues] == [
        (IssueCode.NOT_AN_ARRAY, "a.json:2: expected a JSON array of objects ('['), found a string")
    ]


@pytest.mark.parametrize(
    ("name", "data"), [("a.json", b""), ("a.json", b"[ ]"), ("a.jsonl", b"\n\n")]
)
def test_a_batch_without_items_is_reported_as_empty(name: str, data: bytes) -> None:
    parsed = parse_batch(data, source_name=name)
    assert [(i.code, i.message) for i in parsed.issues] == [
        (IssueCode.EMPTY_BATCH, f"{name}: no records")
    ]


@pytest.mark.parametrize("name", ["a.json", "a.jsonl"])
def test_reading_stops_after_max_items(name: str) -> None:
    items = [{"n": n} for n in range(5)]
    data = json.dumps(items).encode() if name.endswith(".json") else jsonl(*items)
    parsed = parse_batch(data, source_name=name, max_items=3)
    assert [i.value["n"] for i in parsed.items] == [0, 1, 2]
    (issue,) = parsed.issues
    assert (issue.code, issue.index) == (IssueCode.TOO_MANY_RECORDS, 3)
    assert "more than 3 records" in issue.message


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("a.jsonl", b'{"a": ' + b"[" * 100_000 + b'\n{"b": 1}\n'),
        ("a.json", b"[" + b"[" * 100_000 + b'\n, {"b": 1}]\n'),
    ],
)
def test_absurd_nesting_is_invalid_json_and_reading_goes_on(name: str, data: bytes) -> None:
    parsed = parse_batch(data, source_name=name)
    assert [i.value for i in parsed.items] == [{"b": 1}]
    assert [(i.line, i.code) for i in parsed.issues] == [(1, IssueCode.INVALID_JSON)]
    assert parsed.issues[0].message.endswith("invalid JSON: nested too deeply")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("a.jsonl", b'{"a": ' + b"[" * 100_000 + b'\n{"b": 1}\n'),
        ("a.json", b"[" + b"[" * 100_000 + b'\n, {"b": 1}]\n'),
    ],
)
def test_absurd_nesting_is_reported_even_when_the_recursion_limit_is_raised(
    name: str, data: bytes
) -> None:
    # web3 raises the limit to 100,000 at import; the C decoder would then overflow the C stack.
    import sys

    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(100_000)
    try:
        parsed = parse_batch(data, source_name=name)
    finally:
        sys.setrecursionlimit(previous)
    assert [i.value for i in parsed.items] == [{"b": 1}]
    assert parsed.issues[0].message.endswith("invalid JSON: nested too deeply")


@pytest.mark.parametrize("name", ["a.jsonl", "a.json"])
def test_a_number_too_long_to_convert_is_invalid_json_and_reading_goes_on(name: str) -> None:
    long_number = '{"instruction": ' + "7" * 5000 + "}"
    data = (
        f"[{long_number},\n" + '{"b": 1}]' if name == "a.json" else long_number + '\n{"b": 1}\n'
    ).encode()
    parsed = parse_batch(data, source_name=name)
    assert [i.value for i in parsed.items] == [{"b": 1}]
    assert [(i.line, i.code) for i in parsed.issues] == [(1, IssueCode.INVALID_JSON)]
    assert parsed.issues[0].message.endswith("invalid JSON: a number has too many digits")


@pytest.mark.parametrize(
    ("top", "found"),
    [
        (b'"li.hua@example.com"', "a string"),
        (b"-13812345678", "a number"),
        (b"null", "a literal such as true, false or null"),
        ("张伟".encode(), "a character that cannot start a JSON value"),
        (b"{}", "'{'"),
    ],
)
def test_what_was_found_is_described_by_kind_not_quoted(top: bytes, found: str) -> None:
    (issue,) = parse_batch(top, source_name="a.json", fmt=BatchFormat.JSON).issues
    assert issue.message == f"a.json:1: expected a JSON array of objects ('['), found {found}"


def test_a_missing_comma_before_a_value_names_its_kind() -> None:
    parsed = parse_batch(b'[{"n": 1} "zhang.san@example.com"]', source_name="a.json")
    assert parsed.issues[0].message == (
        "a.json:1: invalid JSON: expected ',' or ']' after the element at index 0, found a string"
    )
    assert "zhang" not in parsed.issues[0].message
