"""Intake messages say where, never what: no submitted value or field name reaches an issue or an
intake exception, while each still names its line, field and rule.

Every case plants distinctive markers (an e-mail address, a phone number, a Chinese name, a random
token) in one position that produces an issue and searches the messages, the issue dicts (what the
event log stores and the API serves) and the exceptions for them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from ingest.errors import InvalidIntakeArgument
from ingest.formats import BatchFormat, _decoder_rule, describe_location
from ingest.intake import IntakeLimits, IntakeResult, read_batch_bytes
from ingest.records import IntakeIssue, IssueCode

MARKERS = {
    "email": "li.hua.marker@example.com",
    "phone": "13812345678",
    "chinese_name": "欧阳娜娜",
    "token": "tok_Zq8XvR3pL0wN7kY2sB5mC9dF4hJ6gT1aE",
}
GOOD = {"instruction": "What is entropy?", "output": "Average uncertainty.", "discipline": "dsp"}
LIMITS = IntakeLimits(max_field_chars=60, max_record_chars=100)


def forms(marker: str) -> set[str]:
    """The marker as written and as JSON would escape it, each also case-folded."""
    written = {marker, json.dumps(marker)[1:-1], json.dumps(marker, ensure_ascii=False)[1:-1]}
    return written | {form.casefold() for form in written}


def leaked(text: str, marker: str) -> bool:
    folded = text.casefold()
    return any(form in text or form in folded for form in forms(marker))


def jsonl(*objects: object) -> bytes:
    return "\n".join(json.dumps(o, ensure_ascii=False) for o in objects).encode() + b"\n"


@dataclass(frozen=True)
class Case:
    source: str
    data: Callable[[str], bytes]
    expected: tuple[tuple[int | None, str | None, IssueCode], ...]
    """(line, field, code) of every issue, in order."""


CASES: dict[str, Case] = {
    "bad discipline": Case(
        "b.jsonl",
        lambda m: jsonl(GOOD, GOOD | {"instruction": "q2", "discipline": m}),
        ((2, "discipline", IssueCode.UNKNOWN_DISCIPLINE),),
    ),
    "bad task_type": Case(
        "b.jsonl",
        lambda m: jsonl(GOOD | {"task_type": m}),
        ((1, "task_type", IssueCode.UNKNOWN_TASK_TYPE),),
    ),
    "bad license": Case(
        "b.jsonl",
        lambda m: jsonl(GOOD | {"license": f"CC-BY-4.0 {m}"}),
        ((1, "license", IssueCode.INVALID_LICENSE),),
    ),
    "language given": Case(
        "b.jsonl",
        lambda m: jsonl(GOOD | {"language": m}),
        ((1, "language", IssueCode.UNKNOWN_FIELD),),
    ),
    "non-string field": Case(
        "b.jsonl",
        lambda m: jsonl(GOOD | {"output": {m: [m]}}),
        ((1, "output", IssueCode.WRONG_TYPE),),
    ),
    "non-string discipline": Case(
        "b.jsonl",
        lambda m: jsonl(GOOD | {"discipline": [m]}),
        ((1, "discipline", IssueCode.WRONG_TYPE),),
    ),
    "extra field named with PII": Case(
        "b.jsonl",
        lambda m: jsonl(GOOD | {m: "x", f"{m}_2": m}),
        ((1, None, IssueCode.UNKNOWN_FIELD),),
    ),
    "repeated extra field named with PII": Case(
        "b.jsonl",
        lambda m: (json.dumps(GOOD, ensure_ascii=False)[:-1] + f', "{m}": 1, "{m}": 2}}').encode(),
        ((1, None, IssueCode.DUPLICATE_KEY), (1, None, IssueCode.UNKNOWN_FIELD)),
    ),
    "over-long field": Case(
        "b.jsonl",
        lambda m: jsonl(GOOD | {"output": m * 20}),
        ((1, "output", IssueCode.TOO_LONG),),
    ),
    "over-long record": Case(
        "b.jsonl",
        lambda m: jsonl(
            {**GOOD, **dict.fromkeys(("instruction", "input", "output"), (m * 60)[:50])}
        ),
        ((1, None, IssueCode.TOO_LONG),),
    ),
    "NUL in a text": Case(
        "b.jsonl",
        lambda m: jsonl(GOOD | {"input": f"{m}\u0000{m}"}),
        ((1, "input", IssueCode.NUL_CHARACTER),),
    ),
    "unpaired surrogate": Case(
        "b.jsonl",
        lambda m: f'{{"instruction": "{m}\\ud83d", "output": "{m}", "discipline": "dsp"}}'.encode(),
        ((1, "instruction", IssueCode.NOT_UTF8),),
    ),
    "not UTF-8": Case(
        "b.jsonl",
        lambda m: jsonl(GOOD) + f'{{"instruction": "{m}'.encode("gbk", "replace") + b'\xff"}\n',
        ((2, None, IssueCode.NOT_UTF8),),
    ),
    "bad JSON in JSONL": Case(
        "b.jsonl",
        lambda m: jsonl(GOOD) + f'{{"instruction": "{m}" "output": "{m}"}}\n'.encode(),
        ((2, None, IssueCode.INVALID_JSON),),
    ),
    "plain text line": Case(
        "b.jsonl",
        lambda m: f"{m} {m}\n".encode(),
        ((1, None, IssueCode.INVALID_JSON),),
    ),
    "bad JSON in an array": Case(
        "b.json",
        lambda m: (
            f'[\n{{"instruction": "{m}" "output": 1}},\n'
            f'{{"instruction": "{m}", "discipline": 1.5}}\n]'
        ).encode(),
        (
            (2, None, IssueCode.INVALID_JSON),
            (3, "output", IssueCode.MISSING_FIELD),
            (3, "discipline", IssueCode.WRONG_TYPE),
        ),
    ),
    "missing comma before a value": Case(
        "b.json",
        lambda m: json.dumps([GOOD]).encode()[:-1] + f' "{m}"]'.encode(),
        ((1, None, IssueCode.INVALID_JSON),),
    ),
    "not an array": Case(
        "b.json",
        lambda m: json.dumps(m, ensure_ascii=False).encode(),
        ((1, None, IssueCode.NOT_AN_ARRAY),),
    ),
    "not an object": Case(
        "b.jsonl",
        lambda m: jsonl(GOOD, m),
        ((2, None, IssueCode.NOT_AN_OBJECT),),
    ),
    "duplicate in batch": Case(
        "b.jsonl",
        lambda m: jsonl(GOOD | {"input": m}, GOOD | {"input": m.upper()}),
        ((2, None, IssueCode.DUPLICATE_IN_BATCH),),
    ),
}


def read(case: Case, marker: str) -> IntakeResult:
    return read_batch_bytes(
        case.data(marker), source_name=case.source, institution_id="bupt", limits=LIMITS
    )


def assert_says_where_not_what(issue: IntakeIssue, marker: str, fmt: BatchFormat) -> None:
    assert not leaked(issue.message, marker), issue.message
    assert not any(leaked(str(value), marker) for value in issue.to_dict().values())
    assert not leaked(repr(issue), marker)
    where = describe_location(source=issue.source, line=issue.line, index=issue.index, fmt=fmt)
    assert issue.message.startswith(f"{where}: ")
    if issue.field is not None:
        assert f"field '{issue.field}': " in issue.message


@pytest.mark.parametrize("marker", MARKERS.values(), ids=MARKERS.keys())
@pytest.mark.parametrize("name", CASES)
def test_issues_name_line_field_and_rule_but_not_the_value(name: str, marker: str) -> None:
    case = CASES[name]
    result = read(case, marker)
    assert [(i.line, i.field, i.code) for i in result.issues] == list(case.expected)
    for issue in result.issues:
        assert result.format is not None
        assert_says_where_not_what(issue, marker, result.format)
    assert not leaked(result.summary(), marker)


def test_rules_and_accepted_values_are_named() -> None:
    email = MARKERS["email"]

    def message(name: str) -> str:
        return read(CASES[name], email).issues[0].message

    assert "expected one of communication_principles, network_security," in message(
        "bad discipline"
    )
    assert "expected one of knowledge_qa, concept_explanation," in message("bad task_type")
    assert "SPDX-style id such as CC-BY-4.0" in message("bad license")
    assert "expected a string, got object" in message("non-string field")
    assert "accepted fields are instruction, input, output" in message("extra field named with PII")
    assert "2 unknown fields ignored" in message("extra field named with PII")
    assert "more than the limit of 60" in message("over-long field")
    assert "NUL character" in message("NUL in a text")
    assert "invalid JSON at column" in message("bad JSON in JSONL")
    assert "found a string" in message("not an array")
    assert message("duplicate in batch").endswith("as line 1")


@pytest.mark.parametrize("marker", MARKERS.values(), ids=MARKERS.keys())
@pytest.mark.parametrize(
    ("argument", "rule"),
    [
        ("institution_id", "invalid institution id: expected a slug like 'bupt'"),
        ("default_discipline", "unknown default discipline; expected one of"),
    ],
)
def test_bad_arguments_raise_without_the_value(argument: str, rule: str, marker: str) -> None:
    # A bare phone number is a well-formed institution slug: the space makes every marker invalid.
    kwargs = {"institution_id": "bupt", argument: f"contact {marker}"}
    with pytest.raises(InvalidIntakeArgument) as raised:
        read_batch_bytes(jsonl(GOOD), source_name="b.jsonl", **kwargs)  # type: ignore[arg-type]
    assert rule in str(raised.value)
    chain: BaseException | None = raised.value
    while chain is not None:
        assert not leaked(str(chain), marker) and not leaked(repr(chain), marker)
        chain = chain.__cause__ or chain.__context__


def test_the_pure_python_decoders_quoted_characters_are_cut_off() -> None:
    # The C decoder's messages hold no document text; the pure-Python fallback appends some.
    assert _decoder_rule("Invalid \\escape: 'q'") == "Invalid \\escape"
    assert _decoder_rule("Invalid control character '\\x00' at") == "Invalid control character"
    assert _decoder_rule("something new: li.hua@example.com") == "syntax error"
