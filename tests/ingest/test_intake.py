"""The intake use case end to end: canonical records, desensitization, language, result API."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ingest.errors import BatchUnreadable, InvalidIntakeArgument
from ingest.formats import BatchFormat
from ingest.intake import IntakeLimits, Redaction, read_batch, read_batch_bytes
from ingest.language import detect_language
from ingest.records import (
    CANONICAL_FIELD_NAMES,
    CanonicalFields,
    Discipline,
    IssueCode,
    Language,
    TaskType,
)

PHONE = "13812345678"
EMAIL = "li.hua@example.com"


class RegexDesensitizer:
    """A test-only desensitizer: e-mail addresses and PRC mobile numbers, nothing else.

    It remembers every call so that tests can see which texts it was given and in which language.
    """

    _PATTERNS = (
        ("EMAIL", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")),
        ("PHONE", re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")),
    )

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def redact(self, text: str, *, language: str) -> Redaction:
        self.calls.append((text, language))
        counts: dict[str, int] = {}
        for kind, pattern in self._PATTERNS:
            text, n = pattern.subn(f"[{kind}]", text)
            if n:
                counts[kind] = n
        return Redaction(text=text, counts=counts)


def write_jsonl(path: Path, *objects: object) -> Path:
    path.write_text(
        "\n".join(json.dumps(o, ensure_ascii=False) for o in objects) + "\n", encoding="utf-8"
    )
    return path


def test_records_carry_exactly_the_canonical_fields(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "batch.jsonl",
        {
            "instruction": "What is the Nyquist rate?",
            "output": "Twice the highest frequency of a band-limited signal.",
            "discipline": "Signal Processing",
        },
    )
    result = read_batch(path, institution_id="bupt")
    assert result.ok
    (record,) = result.records
    assert record.canonical() == {
        "instruction": "What is the Nyquist rate?",
        "input": "",
        "output": "Twice the highest frequency of a band-limited signal.",
        "discipline": "signal_processing",
        "task_type": "knowledge_qa",
        "language": "en",
        "license": "CC-BY-4.0",
        "institution_id": "bupt",
    }
    assert tuple(record.canonical()) == CANONICAL_FIELD_NAMES
    assert all(isinstance(v, str) for v in record.canonical().values())
    assert (record.source, record.line, record.index) == ("batch.jsonl", 1, 0)
    assert dict(record.redactions) == {}


def test_desensitizer_is_applied_to_instruction_input_and_output_before_canonical_fields(
    tmp_path: Path,
) -> None:
    path = write_jsonl(
        tmp_path / "batch.jsonl",
        {
            "instruction": f"我的手机号 {PHONE} 收到了诈骗短信，这属于什么攻击？",
            "input": f"请回复到 {EMAIL}",
            "output": f"这是短信钓鱼。不要回拨 {PHONE}，也不要向 {EMAIL} 以外的地址提供信息。",
            "discipline": "网络安全",
        },
    )
    desensitizer = RegexDesensitizer()
    result = read_batch(path, institution_id="bupt", desensitizer=desensitizer)
    (record,) = result.records
    canonical = record.canonical()
    assert canonical["instruction"] == "我的手机号 [PHONE] 收到了诈骗短信，这属于什么攻击？"
    assert canonical["input"] == "请回复到 [EMAIL]"
    assert (
        canonical["output"]
        == "这是短信钓鱼。不要回拨 [PHONE]，也不要向 [EMAIL] 以外的地址提供信息。"
    )
    assert dict(record.redactions) == {"EMAIL": 2, "PHONE": 2}
    assert result.redaction_totals() == {"EMAIL": 2, "PHONE": 2}
    # The placeholders do not turn a Chinese record into a mixed one.
    assert canonical["language"] == "zh"
    assert [language for _, language in desensitizer.calls] == ["zh", "zh", "zh"]
    assert PHONE not in repr(result) and EMAIL not in repr(result)


def test_desensitizer_is_not_asked_about_an_empty_input(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "b.jsonl", {"instruction": "q", "output": "a", "discipline": "data_science"}
    )
    desensitizer = RegexDesensitizer()
    read_batch(path, institution_id="bupt", desensitizer=desensitizer)
    assert [text for text, _ in desensitizer.calls] == ["q", "a"]


def test_read_batch_writes_nothing_and_gives_the_same_result_twice(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "batch.jsonl",
        {"instruction": "q", "output": "a", "discipline": "dsp"},
        {"instruction": "q2"},
    )

    def snapshot() -> list[tuple[str, int, int]]:
        return sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in tmp_path.iterdir())

    before = snapshot()
    first = read_batch(path, institution_id="bupt")
    second = read_batch(path, institution_id="bupt")
    assert snapshot() == before
    assert first == second


def test_read_batch_bytes_matches_read_batch(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "batch.jsonl",
        {"instruction": "q", "output": "a", "discipline": "dsp"},
        {"instruction": "q", "output": 1, "discipline": "dsp"},
    )
    from_file = read_batch(path, institution_id="bupt")
    from_bytes = read_batch_bytes(
        path.read_bytes(), source_name="uploads/batch.jsonl", institution_id="bupt"
    )
    assert from_bytes == from_file
    assert from_bytes.source == "batch.jsonl"


def test_json_array_records_keep_their_index_and_line() -> None:
    data = json.dumps(
        [
            {"instruction": "a", "output": "b", "discipline": "dsp"},
            {"instruction": "c", "output": 2, "discipline": "dsp"},
            {"instruction": "e", "output": "f", "discipline": "dsp"},
        ],
        indent=2,
    ).encode()
    result = read_batch_bytes(data, source_name="batch.json", institution_id="bupt")
    assert result.format is BatchFormat.JSON
    assert [(r.index, r.line) for r in result.records] == [(0, 2), (2, 12)]
    assert [i.message for i in result.issues] == [
        "batch.json:7 (index 1): field 'output': expected a string, got number"
    ]


def test_good_lines_survive_bad_ones_and_the_result_says_which_were_rejected() -> None:
    lines = [
        b'{"instruction": "q1", "output": "a1", "discipline": "dsp", "id": 1}',
        b'{"instruction": "q2", "output": ',
        b'{"instruction": "q3 \xff", "output": "a3", "discipline": "dsp"}',
        b'{"instruction": "q4", "output": "a4", "discipline": "dsp"}',
        b'{"instruction": "q5", "discipline": "dsp"}',
        b'{"instruction": "q1", "output": "a1", "discipline": "dsp"}',
        b'{"instruction": "q7", "output": "a7", "discipline": "data_science"}',
    ]
    result = read_batch_bytes(b"\n".join(lines), source_name="mixed.jsonl", institution_id="bupt")
    assert [r.line for r in result.records] == [1, 4, 7]
    assert not result.ok
    assert result.rejected_lines() == [2, 3, 5, 6]
    assert [i.line for i in result.warnings] == [1]
    assert result.issue_counts() == {
        "duplicate_in_batch": 1,
        "invalid_json": 1,
        "missing_field": 1,
        "not_utf8": 1,
        "unknown_field": 1,
    }
    assert result.discipline_counts() == {"signal_processing": 2, "data_science": 1}
    assert result.items_seen == 7
    assert result.summary() == (
        "mixed.jsonl: 7 items, 3 records accepted, 4 rejected (errors: duplicate_in_batch 1, "
        "invalid_json 1, missing_field 1, not_utf8 1), 1 warning"
    )


def test_summary_mentions_pii_replacements() -> None:
    data = json.dumps({"instruction": f"call {PHONE}", "output": "ok", "discipline": "dsp"})
    result = read_batch_bytes(
        data.encode(),
        source_name="one.jsonl",
        institution_id="bupt",
        desensitizer=RegexDesensitizer(),
    )
    assert result.ok
    assert result.summary() == (
        "one.jsonl: 1 item, 1 record accepted, 1 PII replacements (PHONE 1)"
    )


def test_default_discipline_may_be_given_by_name() -> None:
    data = b'{"instruction": "q", "output": "a"}'
    result = read_batch_bytes(
        data, source_name="b.jsonl", institution_id="bupt", default_discipline="信号处理"
    )
    assert result.records[0].fields.discipline is Discipline.SIGNAL_PROCESSING


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"institution_id": "Not A Slug"}, r"invalid institution id: expected a slug like 'bupt'"),
        (
            {"institution_id": "bupt", "default_discipline": "astrology"},
            "unknown default discipline; expected one of communication_principles",
        ),
    ],
)
def test_bad_arguments_raise_naming_the_rule_not_the_value(
    kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidIntakeArgument, match=message) as e:
        read_batch_bytes(b"", source_name="b.jsonl", **kwargs)  # type: ignore[arg-type]
    assert "Not A Slug" not in str(e.value) and "astrology" not in str(e.value)
    assert e.value.__cause__ is None


def test_unreadable_batch_raises(tmp_path: Path) -> None:
    with pytest.raises(BatchUnreadable, match=r"missing\.jsonl"):
        read_batch(tmp_path / "missing.jsonl", institution_id="bupt")
    with pytest.raises(BatchUnreadable):
        read_batch(tmp_path, institution_id="bupt")


def test_oversized_batch_is_refused_as_a_whole(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "big.jsonl", *({"instruction": "q" * 50, "output": "a"} for _ in range(5))
    )
    result = read_batch(path, institution_id="bupt", limits=IntakeLimits(max_batch_bytes=100))
    assert result.records == ()
    assert [(i.code, i.message) for i in result.issues] == [
        (
            IssueCode.BATCH_TOO_LARGE,
            "big.jsonl: the batch is larger than the limit of 100 bytes",
        )
    ]
    assert not result.ok


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (("TCP uses a sliding window for flow control.",), Language.EN),
        (("TCP 的拥塞控制包括慢启动、拥塞避免、快重传和快恢复四个阶段。",), Language.ZH),
        (("推导 H(z) = 1/(1 − a z⁻¹)，并求 y[n] = a·y[n−1] + x[n] 的冲激响应。",), Language.ZH),
        (
            ("The entropy 信息熵 measures the average uncertainty of a source in bits.",),
            Language.EN,
        ),
        (
            ("请解释 the difference between precision and recall in classification 任务。",),
            Language.MIXED,
        ),
        (("我的邮箱是 [EMAIL]，学号 [STUDENT_ID]。",), Language.ZH),
        (("1 + 1 = 2",), Language.EN),
        (("问题", "The answer is written in English here, with many words."), Language.EN),
    ],
)
def test_language_detection(texts: tuple[str, ...], expected: Language) -> None:
    assert detect_language(*texts) is expected


def test_canonical_fields_round_trip_and_reject_other_shapes() -> None:
    fields = CanonicalFields(
        instruction="q",
        input="",
        output="a",
        discipline=Discipline.DATA_SCIENCE,
        task_type=TaskType.SUMMARIZATION,
        language=Language.EN,
        license="CC-BY-4.0",
        institution_id="bupt",
    )
    assert CanonicalFields.from_dict(fields.as_dict()) == fields
    with pytest.raises(ValueError, match=r"missing \['license'\], unexpected \['extra'\]"):
        CanonicalFields.from_dict(
            {k: v for k, v in fields.as_dict().items() if k != "license"} | {"extra": "x"}
        )


def test_issue_dict_is_json_ready() -> None:
    result = read_batch_bytes(b'{"instruction": 1}', source_name="b.jsonl", institution_id="bupt")
    as_dicts = [issue.to_dict() for issue in result.issues]
    assert as_dicts[0] == {
        "source": "b.jsonl",
        "line": 1,
        "index": 0,
        "field": "instruction",
        "code": "wrong_type",
        "severity": "error",
        "message": "b.jsonl:1: field 'instruction': expected a string, got number",
    }
    assert json.loads(json.dumps(as_dicts)) == as_dicts
