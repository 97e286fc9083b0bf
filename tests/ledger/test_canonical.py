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
    CanonicalError,
    batch_manifest,
    canonical_record,
    jcs,
    metadata_hash,
    new_salt,
    record_hash,
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
