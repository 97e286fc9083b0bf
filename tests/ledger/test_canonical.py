"""Canonical records, RFC 8785 test vectors, record and metadata hashes, salts and manifests."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ledger.canonical import (
    CANONICAL_FIELDS,
    CANONICAL_SCHEMA_VERSION,
    OPTIONAL_FIELDS,
    CanonicalError,
    batch_manifest,
    canonical_record,
    field_text,
    jcs,
    metadata_hash,
    new_salt,
    record_hash,
    record_texts,
)

RECORD = {
    "instruction": "解释香农信道容量公式 C = B log₂(1 + S/N)。",
    "input": "",
    "output": '容量单位是 bit/s。\n引号 " 与反斜杠 \\ 以及制表符\t都需转义；\u0001 也是。',
    "discipline": "information_theory",
    "task_type": "concept_explanation",
    "language": "zh",
    "license": "CC-BY-4.0",
    "institution_id": "bupt",
}

# Written by hand from RFC 8785: keys in UTF-16 order, no whitespace, UTF-8 text kept raw, only
# '"', '\\' and control characters escaped (short forms where JSON has them, else \u00xx lowercase),
# '/' not escaped.
RECORD_JCS = (
    '{"discipline":"information_theory","input":"","institution_id":"bupt",'
    '"instruction":"解释香农信道容量公式 C = B log₂(1 + S/N)。",'
    '"language":"zh","license":"CC-BY-4.0",'
    '"output":"容量单位是 bit/s。\\n引号 \\" 与反斜杠 \\\\ 以及制表符\\t都需转义；\\u0001 也是。",'
    '"task_type":"concept_explanation"}'
).encode()
RECORD_SHA256 = "2718a258511ccf4142a30e67e784691d462098a74c23d66b17de9a1dc13458df"


def test_record_jcs_bytes_and_hash_match_the_hand_written_vector() -> None:
    assert jcs(canonical_record(RECORD)) == RECORD_JCS
    assert hashlib.sha256(RECORD_JCS).hexdigest() == RECORD_SHA256
    assert record_hash(RECORD).hex() == RECORD_SHA256


def test_rfc8785_string_and_literal_example() -> None:
    # RFC 8785 section 3.2.2's example, minus the float array (records hold strings only).
    value = {
        "string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/",
        "literals": [None, True, False],
    }
    assert (
        jcs(value)
        == ('{"literals":[null,true,false],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}').encode()
    )


def test_rfc8785_sorts_keys_by_utf16_code_units() -> None:
    # RFC 8785 section 3.2.3: an astral character (a surrogate pair) sorts before U+FB33.
    value = {"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\U0001f600": 5, "\u0080": 6, "\u00f6": 7}
    keys = [*json.loads(jcs(value).decode("utf-8"))]
    assert keys == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_field_order_and_key_order_do_not_change_the_hash() -> None:
    shuffled = dict(reversed(list(RECORD.items())))
    assert record_hash(shuffled) == record_hash(RECORD)
    assert list(canonical_record(shuffled)) == list(CANONICAL_FIELDS)


def test_any_change_of_any_field_changes_the_hash() -> None:
    base = record_hash(RECORD)
    for name in CANONICAL_FIELDS:
        assert record_hash({**RECORD, name: RECORD[name] + " "}) != base, name


def test_unicode_is_hashed_as_given_not_normalized() -> None:
    nfc = {**RECORD, "output": "caf\u00e9"}
    nfd = {**RECORD, "output": "cafe\u0301"}
    assert record_hash(nfc) != record_hash(nfd)


def test_python_json_with_sorted_keys_reproduces_jcs_for_string_records() -> None:
    # The documented independent recomputation for flat string records with ASCII keys.
    text = json.dumps(RECORD, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == RECORD_SHA256


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_jq_reproduces_the_record_hash() -> None:
    out = subprocess.run(
        ["jq", "-cjS", "."],
        input=json.dumps(RECORD).encode("ascii"),
        capture_output=True,
        check=True,
    ).stdout
    assert hashlib.sha256(out).hexdigest() == RECORD_SHA256


@pytest.mark.parametrize("name", ["output", "license", "institution_id"])
def test_missing_field_is_named(name: str) -> None:
    fields = {k: v for k, v in RECORD.items() if k != name}
    with pytest.raises(CanonicalError, match=f"missing canonical field.*{name}"):
        canonical_record(fields)


def test_non_string_field_is_named() -> None:
    with pytest.raises(CanonicalError, match="'language' must be a string, got int"):
        canonical_record({**RECORD, "language": 1})
    with pytest.raises(CanonicalError, match="'input' must be a string, got NoneType"):
        record_hash({**RECORD, "input": None})


def test_extra_field_is_named_and_rejected() -> None:
    with pytest.raises(CanonicalError, match=r"non-canonical field.*score"):
        canonical_record({**RECORD, "score": "0.9"})


def test_salts_are_32_random_bytes() -> None:
    salts = {new_salt() for _ in range(64)}
    assert len(salts) == 64
    assert all(len(s) == 32 for s in salts)


def _manifest(**overrides: object) -> dict[str, object]:
    args: dict[str, object] = {
        "institution_id": "bupt",
        "discipline_counts": {"information_theory": 2, "data_science": 1},
        "record_count": 3,
        "rejected_count": 1,
        "submitted_at": datetime(2026, 3, 1, 8, 30, tzinfo=timezone(timedelta(hours=8))),
        "policy_version": "governance-2026.1",
        "source_name": "课程问答.jsonl",
    }
    args.update(overrides)
    return batch_manifest(**args)  # type: ignore[arg-type]


def test_batch_manifest_fields_and_hash_vector() -> None:
    manifest = _manifest()
    assert manifest == {
        "institution_id": "bupt",
        "source_name": "课程问答.jsonl",
        "submitted_at": "2026-03-01T00:30:00+00:00",
        "record_count": 3,
        "rejected_count": 1,
        "discipline_counts": {"data_science": 1, "information_theory": 2},
        "schema_version": CANONICAL_SCHEMA_VERSION,
        "policy_version": "governance-2026.1",
    }
    expected_jcs = (
        '{"discipline_counts":{"data_science":1,"information_theory":2},'
        '"institution_id":"bupt","policy_version":"governance-2026.1","record_count":3,'
        '"rejected_count":1,"schema_version":1,"source_name":"课程问答.jsonl",'
        '"submitted_at":"2026-03-01T00:30:00+00:00"}'
    ).encode()
    assert metadata_hash(manifest) == hashlib.sha256(expected_jcs).digest()


def test_batch_manifest_keeps_a_given_timestamp_string() -> None:
    assert _manifest(submitted_at="2026-03-01T00:30:00Z")["submitted_at"] == "2026-03-01T00:30:00Z"
    aware = datetime(2026, 3, 1, tzinfo=UTC)
    assert _manifest(submitted_at=aware)["submitted_at"] == "2026-03-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"record_count": 4}, "sum to 3 but record_count is 4"),
        ({"rejected_count": -1}, "rejected_count must be a non-negative integer"),
        ({"discipline_counts": {"data_science": "3"}}, r"discipline_counts\['data_science'\]"),
        ({"submitted_at": datetime(2026, 3, 1)}, "timezone-aware"),
        ({"record_count": True}, "record_count must be a non-negative integer"),
    ],
)
def test_batch_manifest_rejects_broken_contracts(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(CanonicalError, match=message):
        _manifest(**overrides)


def test_metadata_hash_rejects_values_without_canonical_json() -> None:
    with pytest.raises(CanonicalError, match="RFC 8785"):
        metadata_hash({"too_big": 2**60})


# ---------------------------------------------------------------------------------------------
# Multi-turn records
# ---------------------------------------------------------------------------------------------

DIALOGUE = {
    **RECORD,
    "system": "你是信息论课程的助教。",
    "history": [["什么是信道容量？", "信道容量是可靠传输的最大速率。"]],
}


def test_a_single_turn_record_keeps_its_bytes_and_hash() -> None:
    # The test vector above, written before records could have turns, is unchanged; so is the
    # canonical form: no system or history key appears when there is none.
    assert list(canonical_record(RECORD)) == list(CANONICAL_FIELDS)
    assert jcs(canonical_record(RECORD)) == RECORD_JCS
    assert record_hash(RECORD).hex() == RECORD_SHA256
    assert CANONICAL_FIELDS == (
        "instruction",
        "input",
        "output",
        "discipline",
        "task_type",
        "language",
        "license",
        "institution_id",
    )
    assert CANONICAL_SCHEMA_VERSION == 1


def test_a_dialogue_hashes_its_system_prompt_and_every_turn() -> None:
    record = canonical_record(DIALOGUE)
    assert list(record) == [*CANONICAL_FIELDS, *OPTIONAL_FIELDS]
    expected = (
        '{"discipline":"information_theory",'
        '"history":[["什么是信道容量？","信道容量是可靠传输的最大速率。"]],'
        '"input":"","institution_id":"bupt",'
    ).encode()
    assert jcs(record).startswith(expected)
    assert b'"system":"\xe4\xbd\xa0' in jcs(record)
    base = record_hash(DIALOGUE)
    assert base != record_hash(RECORD)
    changes = [
        {"system": DIALOGUE["system"] + " "},
        {"history": [["什么是信道容量？", "信道容量是可靠传输的最大速率"]]},
        {"history": [["什么是信道容量?", "信道容量是可靠传输的最大速率。"]]},
        {"history": [*DIALOGUE["history"], ["再问一次", "再答一次"]]},
        {"history": [list(reversed(DIALOGUE["history"][0]))]},
    ]
    for change in changes:
        assert record_hash({**DIALOGUE, **change}) != base, change
    no_system = {k: v for k, v in DIALOGUE.items() if k != "system"}
    assert record_hash(no_system) not in {base, record_hash(RECORD)}
    # A tuple of tuples is the same record as the list of lists JSON decodes to.
    as_tuples = {**DIALOGUE, "history": (("什么是信道容量？", "信道容量是可靠传输的最大速率。"),)}
    assert record_hash(as_tuples) == base


def test_python_json_with_sorted_keys_reproduces_jcs_for_dialogues() -> None:
    text = json.dumps(DIALOGUE, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert text.encode() == jcs(canonical_record(DIALOGUE))


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq is not installed")
def test_jq_reproduces_the_hash_of_a_dialogue() -> None:
    out = subprocess.run(
        ["jq", "-cjS", "."],
        input=json.dumps(DIALOGUE).encode("ascii"),
        capture_output=True,
        check=True,
    ).stdout
    assert hashlib.sha256(out).digest() == record_hash(DIALOGUE)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"system": ""}, "'system' is empty"),
        ({"history": []}, "'history' is empty"),
        ({"system": 3}, "'system' must be a string, got int"),
        ({"history": "问与答"}, "'history' must be an array of \\[user, assistant\\] pairs"),
        ({"history": [["只有问题"]]}, r"'history\[0\]' must be a \[user, assistant\] pair"),
        ({"history": [["问", "答"], ["问", None]]}, r"'history\[1\]' must be"),
        ({"turns": []}, "non-canonical field.*turns.*optionally system, history"),
    ],
)
def test_optional_fields_are_checked(change: dict[str, object], message: str) -> None:
    with pytest.raises(CanonicalError, match=message):
        record_hash({**DIALOGUE, **change})


def test_the_texts_of_a_record_in_dialogue_order() -> None:
    assert record_texts(DIALOGUE) == [
        ("system", DIALOGUE["system"]),
        ("history[0][0]", "什么是信道容量？"),
        ("history[0][1]", "信道容量是可靠传输的最大速率。"),
        ("instruction", RECORD["instruction"]),
        ("input", ""),
        ("output", RECORD["output"]),
    ]
    assert [name for name, _ in record_texts(RECORD)] == ["instruction", "input", "output"]
    for name, text in record_texts(DIALOGUE):
        assert field_text(DIALOGUE, name) == text
    assert field_text(DIALOGUE, "history[3][0]") == "" and field_text(RECORD, "system") == ""
