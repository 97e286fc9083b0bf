"""Field rules: every issue code with its exact location, field and message."""

from __future__ import annotations

import json

import pytest

from ingest.errors import InvalidIntakeArgument
from ingest.formats import parse_batch
from ingest.records import Discipline, IntakeIssue, IssueCode, Severity, TaskType
from ingest.validation import (
    IntakeLimits,
    ValidatedBatch,
    duplicate_key,
    json_type_name,
    normalize_text,
    validate_batch,
)

VALID = {
    "instruction": "What is entropy?",
    "input": "",
    "output": "Entropy measures the average uncertainty of a random variable.",
    "discipline": "information_theory",
}


def validate(
    *objects: object,
    name: str = "sample.jsonl",
    limits: IntakeLimits | None = None,
    default_discipline: Discipline | None = None,
) -> ValidatedBatch:
    """Validate objects written one per line (JSONL) or as one array (``.json`` names)."""
    if name.endswith(".json"):
        data = json.dumps(list(objects), indent=1, ensure_ascii=False).encode()
    else:
        data = "\n".join(json.dumps(o, ensure_ascii=False) for o in objects).encode()
    return validate_batch(
        parse_batch(data, source_name=name),
        limits=limits or IntakeLimits(),
        default_discipline=default_discipline,
    )


def only_issue(batch: ValidatedBatch) -> IntakeIssue:
    assert len(batch.issues) == 1, [i.message for i in batch.issues]
    return batch.issues[0]


def test_a_valid_object_becomes_a_normalized_item() -> None:
    batch = validate(
        {
            "instruction": "  What is entropy?\r\n",
            "input": "Context line 1\r\nline 2",
            "output": "\nIt measures uncertainty. ",
            "discipline": "Information Theory",
            "task_type": "Concept Explanation",
            "license": "CC-BY-SA-4.0",
        }
    )
    assert batch.issues == ()
    (item,) = batch.items
    assert (item.line, item.index) == (1, 0)
    assert item.instruction == "What is entropy?"
    assert item.input == "Context line 1\nline 2"
    assert item.output == "It measures uncertainty."
    assert item.discipline is Discipline.INFORMATION_THEORY
    assert item.task_type is TaskType.CONCEPT_EXPLANATION
    assert item.license == "CC-BY-SA-4.0"


def test_optional_fields_take_their_defaults() -> None:
    batch = validate({"instruction": "q", "output": "a", "discipline": "data_science"})
    (item,) = batch.items
    assert (item.input, item.task_type, item.license) == ("", TaskType.KNOWLEDGE_QA, "CC-BY-4.0")
    nulls = validate(
        {"instruction": "q", "input": None, "output": "a", "discipline": "dsp", "task_type": None}
    )
    assert nulls.issues == ()
    assert (nulls.items[0].input, nulls.items[0].task_type) == ("", TaskType.KNOWLEDGE_QA)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("network_security", Discipline.NETWORK_SECURITY),
        ("network security", Discipline.NETWORK_SECURITY),
        ("Network Security", Discipline.NETWORK_SECURITY),
        ("NETWORK-SECURITY", Discipline.NETWORK_SECURITY),
        ("通信原理", Discipline.COMMUNICATION_PRINCIPLES),
        ("网络安全", Discipline.NETWORK_SECURITY),
        ("信息论", Discipline.INFORMATION_THEORY),
        ("信号处理", Discipline.SIGNAL_PROCESSING),
        ("计算机网络", Discipline.COMPUTER_NETWORKS),
        ("数据科学", Discipline.DATA_SCIENCE),
        ("Ｄａｔａ Ｓｃｉｅｎｃｅ", Discipline.DATA_SCIENCE),
    ],
)
def test_disciplines_are_accepted_by_value_english_or_chinese_name(
    name: str, expected: Discipline
) -> None:
    assert Discipline.lookup(name) is expected
    assert validate(VALID | {"discipline": name}).items[0].discipline is expected


def test_task_types_accept_human_names_and_reject_others() -> None:
    assert TaskType.parse("Formula Derivation") is TaskType.FORMULA_DERIVATION
    assert TaskType.parse("教学对话") is TaskType.TEACHING_DIALOGUE
    with pytest.raises(ValueError, match="unknown TaskType; expected one of: knowledge_qa") as e:
        TaskType.parse("poem")
    assert "poem" not in str(e.value)


def test_batch_default_discipline_fills_records_without_one() -> None:
    record = {"instruction": "q", "output": "a"}
    batch = validate(record, default_discipline=Discipline.SIGNAL_PROCESSING)
    assert batch.items[0].discipline is Discipline.SIGNAL_PROCESSING
    explicit = validate(
        record | {"discipline": "数据科学"}, default_discipline=Discipline.DATA_SCIENCE
    )
    assert explicit.items[0].discipline is Discipline.DATA_SCIENCE


def test_missing_field() -> None:
    batch = validate(VALID, {"instruction": "q", "discipline": "data_science"})
    issue = only_issue(batch)
    assert (issue.line, issue.index, issue.field, issue.code) == (
        2,
        1,
        "output",
        IssueCode.MISSING_FIELD,
    )
    assert issue.message == "sample.jsonl:2: field 'output': required field is missing"
    assert [item.line for item in batch.items] == [1]


def test_missing_discipline_without_a_batch_default() -> None:
    issue = only_issue(validate({"instruction": "q", "output": "a"}))
    assert (issue.field, issue.code) == ("discipline", IssueCode.MISSING_FIELD)
    assert issue.message == (
        "sample.jsonl:1: field 'discipline': required field is missing "
        "(and the batch has no default discipline)"
    )


@pytest.mark.parametrize("blank", ["", "   ", "\n\t"])
def test_empty_field(blank: str) -> None:
    issue = only_issue(validate(VALID | {"instruction": blank}))
    assert (issue.field, issue.code) == ("instruction", IssueCode.EMPTY_FIELD)
    assert issue.message == "sample.jsonl:1: field 'instruction': must not be empty"


def test_empty_optional_word_field() -> None:
    issue = only_issue(validate(VALID | {"task_type": " "}))
    assert issue.message == "sample.jsonl:1: field 'task_type': must not be empty when given"


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (42, "number"),
        (2.5, "number"),
        (True, "boolean"),
        (None, "null"),
        ([1], "array"),
        ({}, "object"),
    ],
)
def test_wrong_type(value: object, type_name: str) -> None:
    issue = only_issue(validate(VALID, VALID | {"output": value}))
    assert (issue.line, issue.field, issue.code) == (2, "output", IssueCode.WRONG_TYPE)
    assert issue.message == f"sample.jsonl:2: field 'output': expected a string, got {type_name}"


def test_json_type_names() -> None:
    values: tuple[object, ...] = ("s", 1, 1.0, False, None, [], {})
    assert [json_type_name(v) for v in values] == [
        "string",
        "number",
        "number",
        "boolean",
        "null",
        "array",
        "object",
    ]


def test_unknown_field_is_a_warning_and_the_record_is_kept() -> None:
    batch = validate(VALID | {"id": 7, "language": "en"})
    assert len(batch.items) == 1
    assert [(i.field, i.code, i.severity) for i in batch.issues] == [
        ("id", IssueCode.UNKNOWN_FIELD, Severity.WARNING),
        ("language", IssueCode.UNKNOWN_FIELD, Severity.WARNING),
    ]
    assert batch.issues[0].message == (
        "sample.jsonl:1: field 'id': unknown field, ignored "
        "(accepted fields are instruction, input, output, system, history, conversations, "
        "messages, discipline, task_type, license)"
    )
    assert batch.issues[1].message == (
        "sample.jsonl:1: field 'language': unknown field, ignored "
        "(intake detects the language itself)"
    )


def test_other_unknown_fields_are_counted_without_their_names() -> None:
    batch = validate(VALID | {"Instruction": "q", "zhang_san": 1, "li.hua@example.com": 2, "id": 3})
    assert len(batch.items) == 1
    assert [(i.field, i.code, i.severity) for i in batch.issues] == [
        ("id", IssueCode.UNKNOWN_FIELD, Severity.WARNING),
        (None, IssueCode.UNKNOWN_FIELD, Severity.WARNING),
    ]
    assert batch.issues[1].message == (
        "sample.jsonl:1: 3 unknown fields ignored (names not repeated: a field name may be "
        "personal data); among them, instruction written in another case or with spaces or "
        "dashes; accepted fields are instruction, input, output, system, history, "
        "conversations, messages, discipline, task_type, license"
    )
    one = only_issue(validate(VALID | {"wang_fang": "x"}))
    assert one.message.startswith("sample.jsonl:1: 1 unknown field ignored (names not repeated")


def test_repeated_keys_are_named_only_when_they_are_known_fields() -> None:
    data = (
        b'{"instruction": "q", "output": "a", "discipline": "dsp", "wang_fang": 1, "wang_fang": 2}'
    )
    batch = validate_batch(parse_batch(data, source_name="sample.jsonl"), limits=IntakeLimits())
    assert [(i.field, i.code) for i in batch.issues] == [
        (None, IssueCode.DUPLICATE_KEY),
        (None, IssueCode.UNKNOWN_FIELD),
    ]
    assert batch.issues[0].message == (
        "sample.jsonl:1: 1 field other than the accepted ones appears more than once in the object "
        "(names not repeated: a field name may be personal data)"
    )
    assert all("wang_fang" not in i.message for i in batch.issues)
    assert batch.items == ()


def test_bidi_controls_are_removed_from_stored_texts() -> None:
    controls = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    batch = validate(
        VALID
        | {"instruction": f"{controls}Call 138\u202e1234\u202c5678?", "input": "\u2067x\u2069"}
    )
    assert batch.issues == ()
    (item,) = batch.items
    assert (item.instruction, item.input) == ("Call 13812345678?", "x")
    only_controls = only_issue(validate(VALID | {"output": f" {controls} "}))
    assert (only_controls.field, only_controls.code) == ("output", IssueCode.EMPTY_FIELD)


@pytest.mark.parametrize("field", ["instruction", "input", "output"])
def test_nul_in_a_text_rejects_the_record_naming_line_and_field(field: str) -> None:
    batch = validate(VALID, VALID | {"instruction": "other", field: "PK\u0003\u0004\u0000\u0000"})
    issue = only_issue(batch)
    assert (issue.line, issue.field, issue.code) == (2, field, IssueCode.NUL_CHARACTER)
    assert issue.message == (
        f"sample.jsonl:2: field '{field}': contains a NUL character (U+0000) at character 4; "
        "text fields may not hold NUL, which usually means binary content"
    )
    assert [item.line for item in batch.items] == [1]


def test_normalize_text_strips_nul_and_bidi_controls_for_other_callers() -> None:
    assert normalize_text(" a\u0000b\u202ec\r\nd ") == "abc\nd"


def test_field_too_long() -> None:
    limits = IntakeLimits(max_field_chars=10, max_record_chars=100)
    issue = only_issue(validate(VALID | {"instruction": "q", "output": "x" * 11}, limits=limits))
    assert (issue.field, issue.code) == ("output", IssueCode.TOO_LONG)
    assert issue.message == (
        "sample.jsonl:1: field 'output': has 11 characters, more than the limit of 10"
    )
    assert validate(VALID | {"instruction": "q", "output": "x" * 10}, limits=limits).items


def test_record_too_long() -> None:
    limits = IntakeLimits(max_field_chars=10, max_record_chars=25)
    record = {"instruction": "i" * 10, "input": "n" * 10, "output": "o" * 6, "discipline": "dsp"}
    issue = only_issue(validate(record, limits=limits))
    assert (issue.field, issue.code) == (None, IssueCode.TOO_LONG)
    assert issue.message == (
        "sample.jsonl:1: record has 26 characters in instruction, input and output, "
        "more than the limit of 25"
    )


def test_limits_reject_inconsistent_settings() -> None:
    with pytest.raises(InvalidIntakeArgument, match="max_field_chars cannot exceed"):
        IntakeLimits(max_field_chars=100, max_record_chars=50)
    with pytest.raises(InvalidIntakeArgument, match="max_records must be positive"):
        IntakeLimits(max_records=0)


def test_unknown_discipline() -> None:
    issue = only_issue(validate(VALID | {"discipline": "biology"}))
    assert (issue.field, issue.code) == ("discipline", IssueCode.UNKNOWN_DISCIPLINE)
    assert issue.message == (
        "sample.jsonl:1: field 'discipline': unknown discipline; expected one of "
        "communication_principles, network_security, information_theory, signal_processing, "
        "computer_networks, data_science (or their English or Chinese names)"
    )


def test_unknown_task_type() -> None:
    issue = only_issue(validate(VALID | {"task_type": "poetry"}))
    assert (issue.field, issue.code) == ("task_type", IssueCode.UNKNOWN_TASK_TYPE)
    assert issue.message.startswith(
        "sample.jsonl:1: field 'task_type': unknown task type; expected one of "
        "knowledge_qa, concept_explanation,"
    )


def test_invalid_license() -> None:
    issue = only_issue(validate(VALID | {"license": "MIT OR Apache-2.0"}))
    assert (issue.field, issue.code) == ("license", IssueCode.INVALID_LICENSE)
    assert issue.message == (
        "sample.jsonl:1: field 'license': not a license identifier: expected one SPDX-style id "
        "such as CC-BY-4.0 (letters, digits, '.', '+' and '-', at most 64 characters)"
    )


def test_not_an_object() -> None:
    batch = validate(VALID, ["instruction", "output"], "text")
    assert [(i.line, i.code, i.message) for i in batch.issues] == [
        (2, IssueCode.NOT_AN_OBJECT, "sample.jsonl:2: expected a JSON object, got array"),
        (3, IssueCode.NOT_AN_OBJECT, "sample.jsonl:3: expected a JSON object, got string"),
    ]
    assert [item.line for item in batch.items] == [1]


def test_duplicate_key() -> None:
    data = b'{"instruction": "q", "output": "a", "output": "b", "discipline": "dsp"}'
    batch = validate_batch(parse_batch(data, source_name="sample.jsonl"), limits=IntakeLimits())
    issue = only_issue(batch)
    assert (issue.field, issue.code) == ("output", IssueCode.DUPLICATE_KEY)
    assert issue.message == "sample.jsonl:1: field 'output': appears more than once in the object"
    assert batch.items == ()


def test_unpaired_surrogate_escape_is_not_text() -> None:
    data = b'{"instruction": "q\\ud800", "output": "a", "discipline": "dsp"}'
    batch = validate_batch(parse_batch(data, source_name="sample.jsonl"), limits=IntakeLimits())
    issue = only_issue(batch)
    assert (issue.field, issue.code) == ("instruction", IssueCode.NOT_UTF8)
    assert issue.message == (
        "sample.jsonl:1: field 'instruction': contains an unpaired surrogate (\\ud800) at "
        "character 1, which is not valid Unicode text"
    )


def test_every_field_problem_of_one_record_is_reported() -> None:
    batch = validate({"instruction": 3, "output": "", "discipline": "x", "task_type": "y"})
    assert [(i.field, i.code) for i in batch.issues] == [
        ("instruction", IssueCode.WRONG_TYPE),
        ("output", IssueCode.EMPTY_FIELD),
        ("discipline", IssueCode.UNKNOWN_DISCIPLINE),
        ("task_type", IssueCode.UNKNOWN_TASK_TYPE),
    ]
    assert batch.items == ()


def test_duplicate_in_batch_names_the_first_line() -> None:
    other = VALID | {"instruction": "What is mutual information?"}
    copy = VALID | {
        "instruction": "  what is ENTROPY? ",
        "output": VALID["output"].replace(" ", "  "),
        "discipline": "信息论",
    }
    batch = validate(VALID, other, copy)
    issue = only_issue(batch)
    assert (issue.line, issue.index, issue.code) == (3, 2, IssueCode.DUPLICATE_IN_BATCH)
    assert issue.message == "sample.jsonl:3: same instruction, input and output as line 1"
    assert [item.line for item in batch.items] == [1, 2]


def test_duplicate_in_json_array_names_line_and_index() -> None:
    batch = validate(VALID, VALID, name="batch.json")
    issue = only_issue(batch)
    assert issue.message == (
        "batch.json:8 (index 1): same instruction, input and output as line 2 (index 0)"
    )


def test_duplicate_key_normalizes_width_case_and_whitespace() -> None:
    assert duplicate_key("ＴＣＰ  Window", "", "Ａ b") == duplicate_key("tcp window", "", "a B")
    assert duplicate_key("q", "x", "a") != duplicate_key("q", "", "a")


def test_json_array_issue_messages_carry_index_and_line() -> None:
    batch = validate(VALID, VALID | {"output": 7}, name="batch.json")
    issue = only_issue(batch)
    assert (issue.line, issue.index) == (8, 1)
    assert issue.message == "batch.json:8 (index 1): field 'output': expected a string, got number"


def test_good_records_survive_bad_ones() -> None:
    lines = [
        VALID | {"instruction": f"Question {n}?"} if n % 2 == 0 else {"instruction": n}
        for n in range(10)
    ]
    batch = validate(*lines)
    assert [item.line for item in batch.items] == [1, 3, 5, 7, 9]
    assert sorted({i.line or 0 for i in batch.issues}) == [2, 4, 6, 8, 10]
