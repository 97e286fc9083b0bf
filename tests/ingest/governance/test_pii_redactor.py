"""The redactor end to end through the spaCy pipelines, in Chinese, English and mixed text."""

from __future__ import annotations

import logging
import time

import pytest

from ingest.governance.pii import (
    NerModelUnavailable,
    PiiConfig,
    PiiRedaction,
    PiiRedactor,
    PiiType,
    UnsupportedLanguage,
)
from ingest.records import Desensitizer, Redaction

# (type, value, Chinese sentence, English sentence); "{}" marks where the value goes.
SAMPLES: list[tuple[PiiType, str, str, str]] = [
    (PiiType.EMAIL, "li.na@bupt.edu.cn", "作业请发到{}，谢谢。", "Send homework to {}, thanks."),
    (PiiType.PHONE, "138 1234 5678", "我的手机是{}，微信同号。", "My mobile is {}, call me."),
    (PiiType.PHONE, "(0755)1234-5678", "办公室电话{}。", "The office phone is {}."),
    (PiiType.ID_CARD, "11010519491231002X", "身份证号{}已核验。", "Her ID number is {}."),
    (PiiType.BANK_CARD, "6222 0212 3456 7890 128", "工资卡号{}。", "Refund to card {} please."),
    (PiiType.PASSPORT, "E12345678", "护照号码{}，有效期十年。", "Passport number: {}."),
    (PiiType.STUDENT_ID, "2021211001", "学号{}的同学请留下。", "Student ID {} is missing."),
    (PiiType.IP_ADDRESS, "58.192.10.5", "来自{}的异常登录。", "Login failed from {} twice."),
    (PiiType.IP_ADDRESS, "2408:8207:24a1:3c10::5", "服务器地址{}。", "Ping {} to test."),
    (
        PiiType.URL_CREDENTIALS,
        "postgresql://admin:s3cr3t@db.lab.cn:5432",
        "连接串{}/prod 泄露了。",
        "The URI {}/prod leaked.",
    ),
]


@pytest.fixture(scope="module")
def redactor() -> PiiRedactor:
    return PiiRedactor()


def _only(redaction: PiiRedaction, pii_type: PiiType) -> None:
    assert redaction.counts == {pii_type.value: 1}
    (span,) = redaction.spans
    assert span.type is pii_type
    assert redaction.text[span.start : span.end] == pii_type.placeholder


@pytest.mark.parametrize(
    ("pii_type", "value", "zh", "en"),
    SAMPLES,
    ids=[f"{s[0].value}-{i}" for i, s in enumerate(SAMPLES)],
)
@pytest.mark.parametrize("language", ["zh", "en"])
def test_each_type_is_detected_and_redacted(
    redactor: PiiRedactor, pii_type: PiiType, value: str, zh: str, en: str, language: str
) -> None:
    text = (zh if language == "zh" else en).format(value)
    (match,) = redactor.detect(text, language=language)
    assert (match.type, text[match.start : match.end]) == (pii_type, value)
    redaction = redactor.redact(text, language=language)
    assert value not in redaction.text
    assert redaction.text == text.replace(value, pii_type.placeholder)
    _only(redaction, pii_type)


def test_chinese_names_after_and_before_cues(redactor: PiiRedactor) -> None:
    text = "姓名：李娜，导师王芳老师，同组张伟同学和欧阳娜娜同学。"
    redaction = redactor.redact(text, language="zh")
    assert redaction.text == "姓名：[PERSON]，导师[PERSON]老师，同组[PERSON]同学和[PERSON]同学。"
    assert redaction.counts == {"PERSON": 4}


@pytest.mark.parametrize(
    "text",
    [
        "香农定理给出了信道容量，奈奎斯特准则限制了码元速率。",
        "各位同学、新同学和高中同学请注意，任课老师和这位老师都在。",
        "首先生成密钥，向优秀同学学习，王老师今天不在。",
        "哈夫曼编码、维纳滤波和傅里叶变换是本章重点。",
    ],
)
def test_chinese_teaching_text_keeps_its_names_and_words(redactor: PiiRedactor, text: str) -> None:
    assert redactor.redact(text, language="zh").text == text


def test_english_names_by_cue(redactor: PiiRedactor) -> None:
    text = "Name: Emily Chen\nOffice hours with Dr. Wang on Monday."
    redaction = redactor.redact(text, language="en")
    assert redaction.text == "Name: [PERSON]\nOffice hours with Dr. [PERSON] on Monday."


@pytest.mark.parametrize(
    "text",
    [
        "Claude Shannon proved that C = B log2(1 + S/N).",
        "The Nyquist rate and Hamming's bound appear in chapter 3.",
        "Alice sends Bob a message while Eve eavesdrops.",
        "Student: Why is capacity finite?\nTeacher: Because of noise.",
        "Dijkstra's algorithm and the Bellman-Ford algorithm find shortest paths.",
    ],
)
def test_english_teaching_text_keeps_its_names(redactor: PiiRedactor, text: str) -> None:
    assert redactor.redact(text, language="en").text == text


def test_english_person_names_by_ner(redactor: PiiRedactor) -> None:
    if redactor.ner_model is None:
        pytest.skip("no English spaCy NER model installed")
    text = "The intern, Robert Miller, configured the router with Jennifer Wu."
    redaction = redactor.redact(text, language="en")
    assert redaction.text == "The intern, [PERSON], configured the router with [PERSON]."


def test_without_ner_names_rely_on_cues() -> None:
    plain = PiiRedactor(PiiConfig(ner_model=None))
    assert plain.ner_model is None
    text = "Robert Miller met Prof. Emily Chen."
    assert plain.redact(text, language="en").text == "Robert Miller met Prof. [PERSON]."


def test_a_missing_named_model_fails_loudly() -> None:
    redactor = PiiRedactor(PiiConfig(ner_model="no_such_spacy_model"))
    with pytest.raises(NerModelUnavailable):
        redactor.redact("Robert Miller", language="en")


def test_names_can_be_switched_off() -> None:
    quiet = PiiRedactor(PiiConfig(person_names=False))
    assert (
        quiet.redact("姓名：李娜，手机13812345678", language="zh").text == "姓名：李娜，手机[PHONE]"
    )


def test_mixed_text(redactor: PiiRedactor) -> None:
    text = "王芳同学 (student ID 2020211234) wrote to Alice Wang at alice@bupt.edu.cn。"
    redaction = redactor.redact(text, language="mixed")
    expected = "[PERSON]同学 (student ID [STUDENT_ID]) wrote to "
    if redactor.ner_model is not None:
        expected += "[PERSON] at [EMAIL]。"
        assert redaction.counts == {"PERSON": 2, "STUDENT_ID": 1, "EMAIL": 1}
    else:
        expected += "Alice Wang at [EMAIL]。"
    assert redaction.text == expected


def test_spans_locate_every_placeholder_in_order(redactor: PiiRedactor) -> None:
    text = "张伟同学，手机13812345678，邮箱zw@bupt.edu.cn，学号2021211001，来自58.192.10.5。"
    redaction = redactor.redact(text, language="zh")
    assert [s.type for s in redaction.spans] == [
        PiiType.PERSON,
        PiiType.PHONE,
        PiiType.EMAIL,
        PiiType.STUDENT_ID,
        PiiType.IP_ADDRESS,
    ]
    for span in redaction.spans:
        assert redaction.text[span.start : span.end] == span.type.placeholder
    for value in ("张伟", "13812345678", "zw@bupt.edu.cn", "2021211001", "58.192.10.5"):
        assert value not in redaction.text


def test_redaction_is_idempotent(redactor: PiiRedactor) -> None:
    text = "Name: Emily Chen, email emily@ieee.org, phone +86 139 1234 5678, from 58.192.10.5."
    once = redactor.redact(text, language="en")
    twice = redactor.redact(once.text, language="en")
    assert twice.text == once.text
    assert twice.counts == {}


def test_redactor_satisfies_the_intake_contract(redactor: PiiRedactor) -> None:
    desensitizer: Desensitizer = redactor
    result = desensitizer.redact("手机13812345678", language="zh")
    assert isinstance(result, Redaction)
    assert result.text == "手机[PHONE]"


def test_empty_and_blank_texts(redactor: PiiRedactor) -> None:
    assert redactor.redact("", language="en") == PiiRedaction(text="", counts={}, spans=())
    assert redactor.redact("   ", language="zh").text == "   "


def test_unknown_language_is_rejected_without_quoting_text(redactor: PiiRedactor) -> None:
    with pytest.raises(UnsupportedLanguage) as info:
        redactor.redact("手机13812345678", language="fr")
    assert "13812345678" not in str(info.value)


def test_pipelines_are_built_once_per_language(redactor: PiiRedactor) -> None:
    assert redactor.pipeline("zh") is redactor.pipeline("zh")
    assert redactor.pipeline("mixed") is not redactor.pipeline("zh")
    assert redactor.pipeline("en").pipe_names[0] == "pii_structured"


def test_components_mark_spans_on_the_doc(redactor: PiiRedactor) -> None:
    doc = redactor.pipeline("zh")("请张伟同学打13812345678")
    assert [(s.label_, s.text) for s in doc.spans["pii"]] == [
        ("PHONE", "13812345678"),
        ("PERSON", "张伟"),
    ]


def test_nothing_is_logged_with_a_value(
    redactor: PiiRedactor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    redactor.redact("手机13812345678，邮箱zw@bupt.edu.cn", language="mixed")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "13812345678" not in logged
    assert "zw@bupt.edu.cn" not in logged


@pytest.mark.parametrize("language", ["zh", "en", "mixed"])
def test_a_batch_of_200_records_is_fast(redactor: PiiRedactor, language: str) -> None:
    record = {
        "zh": "请张伟同学把报告发到zw@bupt.edu.cn，手机13812345678。香农公式 C=B log2(1+S/N)。",
        "en": "Dear Emily Chen, send the lab report to emily@ieee.org; Shannon's theorem bounds C.",
        "mixed": "请联系 TA Emily Chen（emily@ieee.org），香农 Shannon 公式见第 3 章。",
    }[language]
    batch = [f"{record} #{i}" for i in range(200)]
    redactor.redact_many(batch[:4], language=language)
    start = time.perf_counter()
    results = redactor.redact_many(batch, language=language)
    elapsed = time.perf_counter() - start
    assert len(results) == 200
    assert all("[EMAIL]" in r.text for r in results)
    assert elapsed < 5.0
