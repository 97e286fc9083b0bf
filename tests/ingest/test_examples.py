"""The bundled sample corpus reads exactly as its expectation files say."""

from __future__ import annotations

import json
import re
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from ingest.formats import BatchFormat
from ingest.intake import IntakeResult, read_batch
from ingest.records import Discipline, Language, Severity, TaskType

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

REASON_CODES = {
    "pii_redacted",
    "near_duplicate",
    "exact_duplicate",
    "off_topic",
    "garbled",
    "truncated",
    "repetitive",
    "too_short",
    "low_term_coverage",
}
PII_TYPES = {"EMAIL", "PHONE", "ID_CARD", "BANK_CARD", "IP_ADDRESS", "STUDENT_ID", "PERSON"}


@cache
def read(name: str) -> IntakeResult:
    return read_batch(EXAMPLES / name, institution_id="bupt")


def expected(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def lines_of(name: str) -> list[str]:
    return (EXAMPLES / name).read_text(encoding="utf-8").splitlines()


# ---------------------------------------------------------------------------------------------
# sample_corpus.jsonl
# ---------------------------------------------------------------------------------------------


def test_sample_corpus_rejects_exactly_the_expected_malformed_lines() -> None:
    result = read("sample_corpus.jsonl")
    spec = expected("sample_corpus.expected.json")
    errors = [(i.line, i.code.value, i.field) for i in result.errors]
    assert errors == [(m["line"], m["code"], m["field"]) for m in spec["malformed"]]
    warnings = [(i.line, i.code.value, i.field) for i in result.warnings]
    assert warnings == [(w["line"], w["code"], w["field"]) for w in spec["warnings"]]
    assert all(i.severity is Severity.WARNING for i in result.warnings)
    assert len(lines_of("sample_corpus.jsonl")) == spec["lines"]


def test_sample_corpus_duplicate_names_its_original_line() -> None:
    result = read("sample_corpus.jsonl")
    (dup_spec,) = [
        m for m in expected("sample_corpus.expected.json")["malformed"] if "duplicate_of_line" in m
    ]
    (issue,) = [i for i in result.issues if i.code.value == "duplicate_in_batch"]
    assert issue.message.endswith(f"as line {dup_spec['duplicate_of_line']}")


def test_sample_corpus_has_enough_records_in_every_discipline() -> None:
    result = read("sample_corpus.jsonl")
    spec = expected("sample_corpus.expected.json")
    assert len(result.records) == spec["records"] >= 190
    counts = result.discipline_counts()
    assert counts == spec["records_per_discipline"]
    assert set(counts) == {d.value for d in Discipline}
    assert min(counts.values()) >= 25


def test_sample_corpus_is_bilingual_and_covers_every_task_type() -> None:
    records = read("sample_corpus.jsonl").records
    languages = Counter(r.fields.language for r in records)
    assert languages[Language.EN] >= 90
    assert languages[Language.ZH] >= 90
    assert {r.fields.task_type for r in records} == set(TaskType)
    for discipline in Discipline:
        per_language = Counter(
            r.fields.language for r in records if r.fields.discipline is discipline
        )
        assert per_language[Language.EN] >= 12 and per_language[Language.ZH] >= 12


def test_sample_corpus_outputs_are_substantive() -> None:
    for record in read("sample_corpus.jsonl").records:
        output = record.fields.output
        sentences = [s for s in re.split(r"(?<=[.!?])\s+|(?<=[。！？])", output) if s.strip()]
        assert 2 <= len(sentences) <= 6, (record.line, output)
        assert len(output) >= 40, (record.line, output)
        assert output[-1] in ".。)）", (record.line, output)


# ---------------------------------------------------------------------------------------------
# small_batch.json
# ---------------------------------------------------------------------------------------------


def test_small_batch_is_a_valid_json_array() -> None:
    result = read("small_batch.json")
    assert result.format is BatchFormat.JSON
    assert result.ok and result.issues == ()
    assert [r.index for r in result.records] == list(range(10))
    lines = [r.line for r in result.records]
    assert lines == sorted(lines) and lines[0] == 2
    assert Counter(r.fields.language for r in result.records) == {Language.EN: 5, Language.ZH: 5}


# ---------------------------------------------------------------------------------------------
# governance_cases.jsonl
# ---------------------------------------------------------------------------------------------


def governance_spec() -> dict[str, dict[str, Any]]:
    return expected("governance_cases.expected.json")["cases"]


def test_governance_cases_all_pass_intake() -> None:
    result = read("governance_cases.jsonl")
    assert result.issues == ()
    assert [r.line for r in result.records] == list(range(1, 41))


def test_governance_expectations_are_well_formed() -> None:
    spec = governance_spec()
    assert set(spec) == {str(n) for n in range(1, 41)}
    for line, case in spec.items():
        assert case["expect"] in ("accept", "reject"), line
        assert set(case["reasons"]) <= REASON_CODES, line
        assert set(case["pii"]) <= PII_TYPES, line
        assert ("pii_redacted" in case["reasons"]) == bool(case["pii"]), line
        blocking = set(case["reasons"]) - {"pii_redacted"}
        assert (case["expect"] == "reject") == bool(blocking), line
        duplicate = blocking & {"near_duplicate", "exact_duplicate"}
        if duplicate:
            original = case["duplicate_of_line"]
            assert 1 <= original < int(line), line
            assert spec[str(original)]["expect"] == "accept", line
        else:
            assert case["duplicate_of_line"] is None, line


def test_governance_cases_cover_every_planted_problem() -> None:
    spec = governance_spec()
    reasons = Counter(r for case in spec.values() for r in case["reasons"])
    assert set(reasons) == REASON_CODES
    assert {t for case in spec.values() for t in case["pii"]} == PII_TYPES
    clean = [line for line, case in spec.items() if case["expect"] == "accept" and not case["pii"]]
    assert len(clean) >= 10


def _prc_id_is_valid(number: str) -> bool:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(d) * w for d, w in zip(number[:17], weights, strict=True))
    return "10X98765432"[total % 11] == number[17].upper()


def _luhn_is_valid(number: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


@pytest.mark.parametrize(
    ("pii_type", "pattern", "check"),
    [
        ("ID_CARD", r"(?<!\d)\d{17}[\dXx](?!\d)", _prc_id_is_valid),
        ("BANK_CARD", r"(?<!\d)\d{16,19}(?!\d)", _luhn_is_valid),
        ("PHONE", r"(?<!\d)1[3-9]\d{9}(?!\d)", lambda s: True),
        ("STUDENT_ID", r"(?<!\d)20\d{8}(?!\d)", lambda s: True),
        ("EMAIL", r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", lambda s: True),
        ("IP_ADDRESS", r"(?<!\d)(?:\d{1,3}\.){3}\d{1,3}(?!\d)", lambda s: True),
    ],
)
def test_planted_pii_values_are_present_and_well_formed(
    pii_type: str, pattern: str, check: Any
) -> None:
    lines = lines_of("governance_cases.jsonl")
    planted = [int(line) for line, case in governance_spec().items() if pii_type in case["pii"]]
    assert planted
    for line in planted:
        found = re.findall(pattern, lines[line - 1])
        assert found, (pii_type, line)
        assert all(check(value) for value in found), (pii_type, line, found)


def test_sample_corpus_carries_no_planted_pii() -> None:
    text = (EXAMPLES / "sample_corpus.jsonl").read_text(encoding="utf-8")
    assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.-]+", text)
    assert not re.search(r"(?<!\d)1[3-9]\d{9}(?!\d)", text)
    assert not re.search(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])", text)


# ---------------------------------------------------------------------------------------------
# multiturn_sharegpt.jsonl
# ---------------------------------------------------------------------------------------------


def test_multiturn_examples_are_clean_dialogues_of_every_discipline() -> None:
    result = read("multiturn_sharegpt.jsonl")
    assert result.format is BatchFormat.JSONL and result.issues == ()
    lines = lines_of("multiturn_sharegpt.jsonl")
    assert len(result.records) == len(lines) and 6 <= len(lines) <= 10
    assert all("conversations" in json.loads(line) for line in lines)
    fields = [r.fields for r in result.records]
    assert {f.discipline for f in fields} == set(Discipline)
    assert {f.language for f in fields} == {Language.ZH, Language.EN}
    assert all(2 <= len(f.history) + 1 <= 4 for f in fields)
    dialogues = Counter(f.task_type for f in fields)
    assert dialogues[TaskType.TEACHING_DIALOGUE] > len(fields) / 2
    assert any(f.system for f in fields) and not all(f.system for f in fields)
