"""Multi-turn records at intake: the three shapes (Alpaca with system and history, ShareGPT,
OpenAI-style messages) become one canonical record, every broken turn rule is located by its
field, and every turn is desensitized."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ingest.dialogue import RecordShape, detect_shape
from ingest.errors import InvalidIntakeArgument
from ingest.formats import parse_batch
from ingest.governance.pii import PiiConfig, PiiRedactor
from ingest.intake import read_batch, read_batch_bytes
from ingest.records import CANONICAL_FIELD_NAMES, CanonicalFields, IssueCode, Severity
from ingest.validation import IntakeLimits, ValidatedBatch, ValidItem, validate_batch
from ledger.canonical import canonical_record
from tests.ingest.test_intake import EMAIL, PHONE, RegexDesensitizer

SYSTEM = "You are a teaching assistant for a signals course."
TURNS = [
    ("What is a sampling rate?", "The number of samples of a signal taken per second."),
    ("And the Nyquist rate?", "Twice the highest frequency of a band-limited signal."),
    ("Why must we sample faster than that?", "Slower sampling folds high frequencies down."),
]
META = {"discipline": "signal_processing", "task_type": "teaching_dialogue"}

ALPACA: dict[str, Any] = {
    "instruction": TURNS[-1][0],
    "input": "",
    "output": TURNS[-1][1],
    "system": SYSTEM,
    "history": [list(pair) for pair in TURNS[:-1]],
    **META,
}
SHAREGPT: dict[str, Any] = {
    "conversations": [
        {"from": "system", "value": SYSTEM},
        *(
            turn
            for user, answer in TURNS
            for turn in ({"from": "human", "value": user}, {"from": "gpt", "value": answer})
        ),
    ],
    **META,
}
MESSAGES: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": SYSTEM},
        *(
            turn
            for user, answer in TURNS
            for turn in (
                {"role": "user", "content": user},
                {"role": "assistant", "content": answer},
            )
        ),
    ],
    **META,
}


def validate(*objects: object, limits: IntakeLimits | None = None) -> ValidatedBatch:
    data = "\n".join(json.dumps(o, ensure_ascii=False) for o in objects).encode()
    return validate_batch(
        parse_batch(data, source_name="dialogue.jsonl"), limits=limits or IntakeLimits()
    )


def only_item(batch: ValidatedBatch) -> ValidItem:
    assert [i.message for i in batch.issues if i.is_error] == []
    (item,) = batch.items
    return item


def errors(batch: ValidatedBatch) -> list[tuple[IssueCode, str | None]]:
    assert batch.items == ()
    return [(i.code, i.field) for i in batch.issues if i.severity is Severity.ERROR]


def sharegpt(*turns: tuple[str, str], **extra: Any) -> dict[str, Any]:
    return {"conversations": [{"from": f, "value": v} for f, v in turns], **META, **extra}


# ---------------------------------------------------------------------------------------------
# Shapes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "shape"),
    [
        (ALPACA, RecordShape.ALPACA),
        (SHAREGPT, RecordShape.SHAREGPT),
        (MESSAGES, RecordShape.MESSAGES),
    ],
)
def test_the_three_shapes_become_the_same_item(item: dict[str, Any], shape: RecordShape) -> None:
    assert detect_shape(item) is shape
    valid = only_item(validate(item))
    assert (valid.instruction, valid.input, valid.output) == (*TURNS[-1][:1], "", TURNS[-1][1])
    assert valid.system == SYSTEM
    assert valid.history == tuple(TURNS[:-1])
    assert (valid.discipline.value, valid.task_type.value) == (
        "signal_processing",
        "teaching_dialogue",
    )


def test_sharegpt_tags_and_a_top_level_system_prompt() -> None:
    item = sharegpt(
        ("user", " Q1?\r\n"),
        ("model", "A1."),
        ("human", "Q2?"),
        ("assistant", "A2."),
        system=SYSTEM,
    )
    valid = only_item(validate(item))
    assert (valid.system, valid.history, valid.instruction, valid.output) == (
        SYSTEM,
        (("Q1?", "A1."),),
        "Q2?",
        "A2.",
    )


def test_empty_system_and_history_mean_a_single_turn_record() -> None:
    # What LLaMA-Factory and our own alpaca export write for a single-turn record.
    item = {"instruction": "Q?", "input": "", "output": "A.", "system": "", "history": [], **META}
    valid = only_item(validate(item))
    assert (valid.system, valid.history) == ("", ())
    result = read_batch_bytes(
        json.dumps(item).encode(), source_name="one.jsonl", institution_id="bupt"
    )
    (record,) = result.records
    assert tuple(record.canonical()) == CANONICAL_FIELD_NAMES
    one_pair = only_item(validate(sharegpt(("human", "Q?"), ("gpt", "A."))))
    assert (one_pair.system, one_pair.history) == ("", ())


def test_the_canonical_record_of_a_dialogue(tmp_path: Path) -> None:
    path = tmp_path / "dialogue.jsonl"
    path.write_text(json.dumps(SHAREGPT) + "\n", encoding="utf-8")
    (record,) = read_batch(path, institution_id="bupt").records
    canonical = record.canonical()
    assert canonical["system"] == SYSTEM
    assert canonical["history"] == [list(pair) for pair in TURNS[:-1]]
    assert canonical_record(canonical) == canonical
    assert CanonicalFields.from_dict(canonical) == record.fields
    assert record.fields.texts()[0] == SYSTEM


def test_a_record_is_its_whole_dialogue_for_in_batch_duplicates() -> None:
    other_history = {**ALPACA, "history": [["What is aliasing?", "Frequencies folding over."]]}
    batch = validate(ALPACA, SHAREGPT, other_history, MESSAGES)
    assert len(batch.items) == 2
    duplicates = [i for i in batch.issues if i.code is IssueCode.DUPLICATE_IN_BATCH]
    assert [i.line for i in duplicates] == [2, 4]
    assert "same turns, system prompt" in duplicates[0].message


# ---------------------------------------------------------------------------------------------
# Located errors
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        (
            sharegpt(("human", "Q1"), ("human", "Q2"), ("gpt", "A")),
            [(IssueCode.TURN_ORDER, "conversations[1].from")],
        ),
        (
            sharegpt(("gpt", "A"), ("human", "Q")),
            [(IssueCode.TURN_ORDER, "conversations[0].from")],
        ),
        (
            sharegpt(("human", "Q"), ("system", "S"), ("gpt", "A")),
            [(IssueCode.TURN_ORDER, "conversations[1].from")],
        ),
        (
            sharegpt(("human", "Q"), ("gpt", "A"), ("human", "Q2")),
            [(IssueCode.LAST_TURN_NOT_ASSISTANT, "conversations[2].from")],
        ),
        (
            sharegpt(("human", "Q"), ("bot", "A")),
            [(IssueCode.UNKNOWN_ROLE, "conversations[1].from")],
        ),
        (
            sharegpt(("human", "Q"), ("gpt", " \n ")),
            [(IssueCode.EMPTY_FIELD, "conversations[1].value")],
        ),
        (sharegpt(("system", "S")), [(IssueCode.EMPTY_FIELD, "conversations")]),
        (sharegpt(), [(IssueCode.EMPTY_FIELD, "conversations")]),
        (
            {**META, "conversations": "Q and A"},
            [(IssueCode.WRONG_TYPE, "conversations")],
        ),
        (
            {**META, "conversations": [{"from": "human", "value": "Q"}, ["gpt", "A"]]},
            [(IssueCode.WRONG_TYPE, "conversations[1]")],
        ),
        (
            {**META, "conversations": [{"from": "human", "value": 3}, {"from": "gpt"}]},
            [
                (IssueCode.WRONG_TYPE, "conversations[0].value"),
                (IssueCode.MISSING_FIELD, "conversations[1].value"),
            ],
        ),
        (
            {**SHAREGPT, "messages": MESSAGES["messages"]},
            [(IssueCode.CONFLICTING_FIELDS, "messages")],
        ),
        (
            {**SHAREGPT, "instruction": "Q"},
            [(IssueCode.CONFLICTING_FIELDS, "instruction")],
        ),
        (
            {**MESSAGES, "history": ALPACA["history"]},
            [(IssueCode.CONFLICTING_FIELDS, "history")],
        ),
        ({**SHAREGPT, "system": "Another prompt."}, [(IssueCode.CONFLICTING_FIELDS, "system")]),
        (
            {
                **META,
                "messages": [{"role": "user", "content": "Q"}, {"role": "tool", "content": "A"}],
            },
            [(IssueCode.UNKNOWN_ROLE, "messages[1].role")],
        ),
        (
            {**META, "messages": [{"role": "assistant", "content": "A"}]},
            [(IssueCode.TURN_ORDER, "messages[0].role")],
        ),
        (
            {**ALPACA, "history": [["Q1", "A1"], ["Q2"]]},
            [(IssueCode.WRONG_TYPE, "history[1]")],
        ),
        (
            {**ALPACA, "history": [["Q1", ""], [None, "A2"]]},
            [(IssueCode.EMPTY_FIELD, "history[0][1]"), (IssueCode.WRONG_TYPE, "history[1][0]")],
        ),
        ({**ALPACA, "history": "Q1 A1"}, [(IssueCode.WRONG_TYPE, "history")]),
        ({**ALPACA, "system": ["S"]}, [(IssueCode.WRONG_TYPE, "system")]),
    ],
)
def test_broken_turn_rules_are_located(
    item: dict[str, Any], expected: list[tuple[IssueCode, str]]
) -> None:
    assert errors(validate(item)) == expected


def test_messages_never_repeat_the_submitted_text() -> None:
    secret = "wang.fang@example.com"
    items = [
        sharegpt(("human", "Q"), (secret, "A")),
        sharegpt(("human", secret), ("human", "Q2"), ("gpt", "A")),
        {
            **META,
            "conversations": [
                {"from": "human", "value": "Q", secret: 1},
                {"from": "gpt", "value": "A"},
            ],
        },
        {**ALPACA, "history": [[secret, secret, secret]]},
    ]
    batch = validate(*items)
    assert batch.issues
    for issue in batch.issues:
        assert secret not in issue.message and secret not in (issue.field or "")
    unknown = [i for i in batch.issues if i.code is IssueCode.UNKNOWN_FIELD]
    assert [(i.field, i.severity) for i in unknown] == [("conversations", Severity.WARNING)]
    role = next(i for i in batch.issues if i.code is IssueCode.UNKNOWN_ROLE)
    assert role.message == (
        "dialogue.jsonl:1: field 'conversations[1].from': unknown role; expected one of human, "
        "user, gpt, assistant, model, system"
    )


def test_turn_count_and_turn_length_limits() -> None:
    limits = IntakeLimits(max_field_chars=40, max_record_chars=400, max_turns=4)
    three_exchanges = sharegpt(*[("human", "Q"), ("gpt", "A")] * 3)
    assert errors(validate(three_exchanges, limits=limits)) == [
        (IssueCode.TOO_MANY_TURNS, "conversations")
    ]
    with_system = sharegpt(("system", "S"), *[("human", "Q"), ("gpt", "A")] * 2)
    assert len(validate(with_system, limits=limits).items) == 1  # the system turn is not counted
    long_history = {"instruction": "Q", "output": "A", "history": [["Q", "A"]] * 2, **META}
    assert errors(validate(long_history, limits=limits)) == [(IssueCode.TOO_MANY_TURNS, "history")]
    long_turn = sharegpt(("human", "Q"), ("gpt", "x" * 41))
    assert errors(validate(long_turn, limits=limits)) == [
        (IssueCode.TOO_LONG, "conversations[1].value")
    ]
    # The record limit counts every turn and the system prompt.
    many = sharegpt(("system", "s" * 40), *[("human", "q" * 40), ("gpt", "a" * 40)] * 2)
    tight = IntakeLimits(max_field_chars=40, max_record_chars=199, max_turns=4)
    (issue,) = validate(many, limits=tight).issues
    assert (issue.code, issue.field) == (IssueCode.TOO_LONG, None)
    assert "200 characters in its texts (system prompt and every turn)" in issue.message
    with pytest.raises(InvalidIntakeArgument, match="max_turns"):
        IntakeLimits(max_turns=1)


# ---------------------------------------------------------------------------------------------
# Desensitization
# ---------------------------------------------------------------------------------------------


def test_every_turn_is_desensitized_and_counted(tmp_path: Path) -> None:
    item = sharegpt(
        ("system", f"Escalate to {EMAIL} when unsure."),
        ("human", f"My number is {PHONE}; what is a sampling rate?"),
        ("gpt", f"Samples per second. I will not call {PHONE}."),
        ("human", "And the Nyquist rate?"),
        ("gpt", "Twice the highest frequency of a band-limited signal."),
    )
    path = tmp_path / "pii.jsonl"
    path.write_text(json.dumps(item) + "\n", encoding="utf-8")
    desensitizer = RegexDesensitizer()
    result = read_batch(path, institution_id="bupt", desensitizer=desensitizer)
    (record,) = result.records
    assert record.fields.system == "Escalate to [EMAIL] when unsure."
    assert record.fields.history == (
        (
            "My number is [PHONE]; what is a sampling rate?",
            "Samples per second. I will not call [PHONE].",
        ),
    )
    assert dict(record.redactions) == {"EMAIL": 1, "PHONE": 2}
    assert result.redaction_totals() == {"EMAIL": 1, "PHONE": 2}
    stored = json.dumps(record.canonical(), ensure_ascii=False)
    assert PHONE not in stored and EMAIL not in stored
    assert {text for text, _ in desensitizer.calls} >= {f"Escalate to {EMAIL} when unsure."}


def test_the_real_redactor_reads_history_turns() -> None:
    item = {
        **ALPACA,
        "history": [["学生王芳的学号是2021211234，她问：什么是采样率？", "每秒采样的次数。"]],
    }
    result = read_batch_bytes(
        json.dumps(item, ensure_ascii=False).encode(),
        source_name="zh.jsonl",
        institution_id="bupt",
        desensitizer=PiiRedactor(PiiConfig(ner_model=None)),
    )
    (record,) = result.records
    user = record.fields.history[0][0]
    assert "王芳" not in user and "2021211234" not in user
    assert "[PERSON]" in user and "[STUDENT_ID]" in user
    assert record.redactions["PERSON"] == 1 and record.redactions["STUDENT_ID"] == 1
