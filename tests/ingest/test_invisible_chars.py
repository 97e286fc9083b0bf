"""Format characters (zero-width spaces and joiners, the BOM, the soft hyphen, tag characters...)
never reach a stored text: intake removes them from every text field before the desensitizer reads
it and before the record is hashed, so a copy padded with them is the same record, and no issue
about such a text repeats it."""

from __future__ import annotations

import json
import sys
import unicodedata
from typing import Any

import pytest

from ingest.governance.pii import PiiConfig, PiiRedactor
from ingest.intake import IntakeLimits, IntakeResult, read_batch_bytes
from ingest.records import IssueCode
from ingest.validation import FORMAT_CHARACTERS
from ledger.canonical import record_hash

INVISIBLE = {
    "zero width space": "\u200b",
    "zero width non-joiner": "\u200c",
    "zero width joiner": "\u200d",
    "word joiner": "\u2060",
    "byte order mark": "\ufeff",
    "soft hyphen": "\u00ad",
    "left-to-right mark": "\u200e",
    "invisible times": "\u2062",
    "right-to-left override": "\u202e",
    "tag latin capital letter a": "\U000e0041",
    "interlinear annotation anchor": "\ufff9",
}
GOOD = {
    "instruction": "什么是香农熵？",
    "input": "Answer in one sentence.",
    "output": "Shannon entropy is the average information of a source, in bits per symbol.",
    "discipline": "information_theory",
}
PHONE = "13812345678"
EMAIL = "li.hua.marker@example.com"
ZWSP, WORD_JOINER, SOFT_HYPHEN = "\u200b", "\u2060", "\u00ad"


def submit(*records: object, **options: Any) -> IntakeResult:
    data = "\n".join(json.dumps(r, ensure_ascii=False) for r in records).encode() + b"\n"
    return read_batch_bytes(data, source_name="b.jsonl", institution_id="bupt", **options)


def sprinkled(text: str, mark: str) -> str:
    """``text`` with ``mark`` before, after and between every two of its characters."""
    return mark + mark.join(text) + mark


@pytest.mark.parametrize("mark", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_a_record_is_stored_without_format_characters(mark: str) -> None:
    record = {name: sprinkled(GOOD[name], mark) for name in ("instruction", "input", "output")}
    result = submit(GOOD | record | {"discipline": sprinkled("信息论", mark)})
    assert result.issues == ()
    (stored,) = result.records
    fields = stored.fields.as_dict()
    assert (fields["instruction"], fields["input"], fields["output"]) == (
        GOOD["instruction"],
        GOOD["input"],
        GOOD["output"],
    )
    assert fields["discipline"] == "information_theory"
    assert not any(FORMAT_CHARACTERS.search(value) for value in fields.values())


def test_a_copy_that_differs_only_by_format_characters_is_the_same_record() -> None:
    clean = submit(GOOD).records[0]
    every_mark = "".join(INVISIBLE.values())
    padded = GOOD | {
        "instruction": sprinkled(GOOD["instruction"], every_mark),
        "output": GOOD["output"].replace(" ", f" {every_mark}"),
        "license": f"CC-BY-4.0{every_mark}",
    }
    copy = submit(padded).records[0]
    assert copy.fields == clean.fields
    assert record_hash(copy.fields.as_dict()) == record_hash(clean.fields.as_dict())
    both = submit(GOOD, padded)
    assert len(both.records) == 1
    [duplicate] = both.issues
    assert (duplicate.line, duplicate.code) == (2, IssueCode.DUPLICATE_IN_BATCH)


def test_personal_data_split_by_format_characters_is_redacted_without_them() -> None:
    redactor = PiiRedactor(PiiConfig(ner_model=None))
    hidden_email = EMAIL.replace("@", f"{WORD_JOINER}@{SOFT_HYPHEN}")
    text = f"请拨打 {sprinkled(PHONE, ZWSP)} 或写信到 {hidden_email}。"
    result = submit(GOOD | {"output": text}, desensitizer=redactor)
    (stored,) = result.records
    output = stored.fields.output
    assert not FORMAT_CHARACTERS.search(output)
    assert PHONE not in output and EMAIL not in output
    assert output.startswith("请拨打 ") and output.endswith("。")
    assert dict(stored.redactions).keys() >= {"PHONE", "EMAIL"}


def test_issues_about_texts_with_format_characters_do_not_quote_them() -> None:
    marker = sprinkled(PHONE, ZWSP) + SOFT_HYPHEN + EMAIL
    limits = IntakeLimits(max_field_chars=30, max_record_chars=100)
    short = {"instruction": "q", "output": "a", "discipline": "dsp"}
    result = submit(
        short | {"instruction": "\u200b\u200d\ufeff "},
        short | {"instruction": "q2", "output": marker * 3},
        short | {"instruction": "q3", "discipline": f"\u200b{marker}"},
        short | {"instruction": "q4", "license": "\u2060\u200b"},
        limits=limits,
    )
    assert result.records == ()
    assert [(i.line, i.field, i.code) for i in result.issues] == [
        (1, "instruction", IssueCode.EMPTY_FIELD),
        (2, "output", IssueCode.TOO_LONG),
        (3, "discipline", IssueCode.UNKNOWN_DISCIPLINE),
        (4, "license", IssueCode.EMPTY_FIELD),
    ]
    for issue in result.issues:
        shown = issue.message + json.dumps(issue.to_dict(), ensure_ascii=False)
        assert PHONE not in shown and EMAIL not in shown and "1381" not in shown
        assert not FORMAT_CHARACTERS.search(shown)
    # Lengths are counted without the format characters: 3 x (11 digits + 25 for the address).
    assert result.issues[1].message.endswith("has 108 characters, more than the limit of 30")


def test_the_stripped_set_is_the_format_category_of_unicode_14() -> None:
    listed = {chr(cp) for cp in range(sys.maxunicode + 1) if FORMAT_CHARACTERS.fullmatch(chr(cp))}
    assert all(unicodedata.category(ch) == "Cf" for ch in listed)
    if unicodedata.unidata_version == "14.0.0":
        format_category = {
            chr(cp) for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)) == "Cf"
        }
        assert listed == format_category
    # Variation selectors are marks, not format characters: they choose CJK glyph variants.
    assert not FORMAT_CHARACTERS.search("\u845b\U000e0100\ufe0f")
