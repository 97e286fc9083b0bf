"""The labeled PII evaluation set: well-formed, in sync with its generator, and the detector meets
its targets on it, the obfuscated cases included."""

from __future__ import annotations

from collections import Counter

import pytest

from ingest.governance.pii import STRUCTURED_TYPES, PiiMatch, PiiRedactor, PiiType
from ingest.governance.pii_eval import CASES_PATH, EvalCase, load_cases
from ingest.governance.pii_eval.scoring import match_case, score
from scripts.pii_cases.generate import build_cases

TARGET_RECALL = 0.98
TARGET_PRECISION = 0.98
TARGET_OBFUSCATED_RECALL = 0.98
OBFUSCATION_FORMS = {
    "invisible",
    "bidi",
    "arabic_indic_digits",
    "math_digits",
    "chinese_numerals",
    "spelled_email",
    "confusable_email",
    "lowercase_name",
    "role_word_name",
    "combined",
}


@pytest.fixture(scope="module")
def cases() -> list[EvalCase]:
    return load_cases()


def test_set_size_and_composition(cases: list[EvalCase]) -> None:
    assert len(cases) >= 300
    assert sum(c.hard_negative for c in cases) >= 100
    languages = Counter(c.language for c in cases)
    assert set(languages) == {"zh", "en", "mixed"}
    assert languages["zh"] >= 100 and languages["en"] >= 100
    gold_types = {s.type for c in cases for s in c.spans}
    assert gold_types == set(PiiType)
    assert len({c.id for c in cases}) == len(cases)


def test_obfuscated_cases_cover_every_form_in_both_languages(cases: list[EvalCase]) -> None:
    obfuscated = [c for c in cases if c.obfuscation is not None]
    assert len(obfuscated) >= 100
    assert {c.obfuscation for c in obfuscated} == OBFUSCATION_FORMS
    for form in OBFUSCATION_FORMS:
        group = [c for c in obfuscated if c.obfuscation == form]
        assert len(group) >= 4, form
        languages = {c.language for c in group}
        # Names in lower case are English; names after a role word are Chinese.
        assert languages & {"zh", "mixed"} or form == "lowercase_name", form
        assert languages & {"en", "mixed"} or form == "role_word_name", form
        assert all(not c.hard_negative and c.spans for c in group), form


def test_offsets_are_exact(cases: list[EvalCase]) -> None:
    for case in cases:
        assert case.hard_negative == (not case.spans), case.id
        previous_end = 0
        for span in sorted(case.spans):
            value = case.text[span.start : span.end]
            assert 0 <= span.start < span.end <= len(case.text), case.id
            assert value == value.strip() and value, case.id
            assert span.start >= previous_end, f"{case.id}: overlapping gold spans"
            previous_end = span.end
            # A value never runs into a neighbouring letter or digit of the same script.
            before = case.text[span.start - 1 : span.start]
            after = case.text[span.end : span.end + 1]
            assert not (before.isascii() and before.isalnum()), case.id
            assert not (after.isascii() and after.isalnum()), case.id


def test_file_matches_its_generator(cases: list[EvalCase]) -> None:
    regenerated = build_cases()
    assert [c.to_json() for c in regenerated] == [c.to_json() for c in cases], (
        f"{CASES_PATH.name} is stale: run python -m scripts.pii_cases.generate"
    )


def test_scoring_rule() -> None:
    gold = [PiiMatch(0, 11, PiiType.PHONE), PiiMatch(20, 30, PiiType.EMAIL)]
    predicted = [
        PiiMatch(3, 11, PiiType.PHONE),  # overlaps the gold phone: a hit under the overlap rule
        PiiMatch(20, 30, PiiType.PHONE),  # right place, wrong type
        PiiMatch(40, 45, PiiType.IP_ADDRESS),
    ]
    overlap = match_case(gold, predicted)
    assert (overlap[PiiType.PHONE].tp, overlap[PiiType.PHONE].fp) == (1, 1)
    assert overlap[PiiType.EMAIL].fn == 1
    assert overlap[PiiType.IP_ADDRESS].fp == 1
    exact = match_case(gold, predicted, exact=True)
    assert (exact[PiiType.PHONE].tp, exact[PiiType.PHONE].fn) == (0, 1)


@pytest.fixture(scope="module")
def redactor() -> PiiRedactor:
    return PiiRedactor()


def test_redaction_removes_values_and_leaves_hard_negatives_alone(
    cases: list[EvalCase], redactor: PiiRedactor
) -> None:
    for language in ("zh", "en", "mixed"):
        group = [c for c in cases if c.language == language]
        redacted = redactor.redact_many([c.text for c in group], language=language)
        for case, redaction in zip(group, redacted, strict=True):
            for span in case.spans:
                if span.type in STRUCTURED_TYPES:
                    assert case.text[span.start : span.end] not in redaction.text, case.id
            if case.hard_negative:
                assert redaction.text == case.text, case.id


def test_detector_meets_targets_on_the_labeled_set(
    cases: list[EvalCase], redactor: PiiRedactor
) -> None:
    predicted: dict[str, list[PiiMatch]] = {}
    for language in ("zh", "en", "mixed"):
        group = [c for c in cases if c.language == language]
        for case, found in zip(
            group, redactor.detect_many([c.text for c in group], language=language), strict=True
        ):
            predicted[case.id] = found
    result = score([c.spans for c in cases], [predicted[c.id] for c in cases])
    structured = result.structured
    assert structured.recall >= TARGET_RECALL, result.as_dict()
    assert structured.precision >= TARGET_PRECISION, result.as_dict()
    for pii_type in STRUCTURED_TYPES:
        tally = result.per_type[pii_type]
        assert tally.recall >= 0.9 and tally.precision >= 0.9, (pii_type, tally.as_dict())
    negatives = [c for c in cases if c.hard_negative]
    fired = [c.id for c in negatives if any(m.type in STRUCTURED_TYPES for m in predicted[c.id])]
    assert len(fired) <= len(negatives) * 0.02, fired


def test_detector_meets_the_target_on_obfuscated_cases(
    cases: list[EvalCase], redactor: PiiRedactor
) -> None:
    obfuscated = [c for c in cases if c.obfuscation is not None]
    predicted: dict[str, list[PiiMatch]] = {}
    for language in ("zh", "en", "mixed"):
        group = [c for c in obfuscated if c.language == language]
        found = redactor.detect_many([c.text for c in group], language=language)
        predicted.update({c.id: m for c, m in zip(group, found, strict=True)})
    result = score([c.spans for c in obfuscated], [predicted[c.id] for c in obfuscated])
    assert result.structured.recall >= TARGET_OBFUSCATED_RECALL, result.as_dict()
    assert result.structured.precision >= TARGET_PRECISION, result.as_dict()
    if redactor.ner_model is not None:  # lower-case names outside a cue need the NER model
        everything = result.total(PiiType)
        assert everything.recall >= TARGET_OBFUSCATED_RECALL, result.as_dict()
