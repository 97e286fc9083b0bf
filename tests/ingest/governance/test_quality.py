"""Quality flags: each check on small crafted Chinese and English texts, with exact spans."""

from __future__ import annotations

import pytest

from ingest.governance.flags import FlagCode, QualityFlag
from ingest.governance.quality import (
    QualityChecker,
    QualityLimits,
    length_units,
    repetition,
)

ZH = QualityLimits(
    min_length=12,
    max_length=400,
    max_repeat_ratio=0.35,
    repeat_ngram=4,
    max_unusual_symbol_ratio=0.1,
)
EN = QualityLimits(
    min_length=8,
    max_length=200,
    max_repeat_ratio=0.35,
    repeat_ngram=3,
    max_unusual_symbol_ratio=0.1,
)
LIMITS = {"zh": ZH, "en": EN, "mixed": ZH}

CLEAN_ZH = "信噪比（SNR）是信号功率与噪声功率之比，通常用分贝表示。信噪比越高，信道容量越大。"
CLEAN_EN = (
    "The signal-to-noise ratio (SNR) compares signal power with noise power and is usually "
    "given in decibels. A higher SNR allows a higher channel capacity."
)


@pytest.fixture(scope="module")
def checker() -> QualityChecker:
    return QualityChecker()


def flags_of(
    checker: QualityChecker, output: str, *, language: str = "en", instruction: str = "Explain."
) -> list[QualityFlag]:
    return checker.check(
        instruction=instruction, input="", output=output, language=language, limits=LIMITS[language]
    )


def spans(flags: list[QualityFlag], code: FlagCode, text: str) -> list[str]:
    return [text[f.start : f.end] for f in flags if f.code is code]


@pytest.mark.parametrize(("language", "text"), [("zh", CLEAN_ZH), ("en", CLEAN_EN)])
def test_clean_outputs_have_no_flags(checker: QualityChecker, language: str, text: str) -> None:
    assert flags_of(checker, text, language=language) == []


def test_lengths_count_characters_for_chinese_and_words_for_english() -> None:
    assert length_units("信噪比 是 比值。", "zh") == 7
    assert length_units("TCP uses a three-way handshake.", "en") == 6
    assert length_units("TCP 使用三次握手", "mixed") == 7


def test_too_short_and_too_long_span_the_whole_output(checker: QualityChecker) -> None:
    short = flags_of(checker, "是。", language="zh")
    assert [(f.code, f.field, f.start, f.end) for f in short] == [
        (FlagCode.TOO_SHORT, "output", 0, 2)
    ]
    assert "2 characters" in short[0].message
    long_text = " ".join(f"word{i}" for i in range(201)) + "."
    (flag,) = [f for f in flags_of(checker, long_text) if f.code is FlagCode.TOO_LONG]
    assert (flag.start, flag.end) == (0, len(long_text))
    assert "201 words" in flag.message


def test_repetition_ratio_and_span_in_english(checker: QualityChecker) -> None:
    text = "A router forwards packets. " + "It forwards packets and forwards packets. " * 4
    rep = repetition(text, language="en", n=3)
    assert rep.ratio > 0.5
    (flag,) = [f for f in flags_of(checker, text) if f.code is FlagCode.REPETITIVE]
    # The span starts at the first repeat of an earlier trigram and runs to the end of the run.
    assert text[flag.start : flag.end].startswith("forwards packets")
    assert text[flag.start : flag.end].endswith("forwards packets")
    assert flag.start > text.index("It")


def test_repetition_in_chinese_marks_the_repeated_sentences(checker: QualityChecker) -> None:
    text = "数据清洗很重要。" + "因为数据清洗很重要。" * 4
    (span,) = spans(flags_of(checker, text, language="zh"), FlagCode.REPETITIVE, text)
    assert span.startswith("数据清洗很重要")
    assert text.endswith(span + "。")


def test_ordinary_technical_text_is_not_repetitive() -> None:
    assert repetition(CLEAN_EN, language="en", n=3).ratio < 0.1
    assert repetition(CLEAN_ZH, language="zh", n=4).ratio < 0.2


@pytest.mark.parametrize(
    ("text", "garbled"),
    [
        ("误码率是指锟斤拷出错码元的比例，是衡量可靠性的指标。", "锟斤拷"),
        ("The cafÃ© network uses WPA2 encryption for every client.", "Ã©"),
        ("The encoder writes ï¿½ when a byte cannot be decoded at all.", "ï¿½"),
        ("A replacement character \ufffd appears in the decoded output text.", "\ufffd"),
        ("A bell \x07 control character is hidden in this sentence here.", "\x07"),
    ],
)
def test_garbled_text_is_flagged_at_the_mojibake(
    checker: QualityChecker, text: str, garbled: str
) -> None:
    language = "zh" if "误码" in text else "en"
    assert spans(flags_of(checker, text, language=language), FlagCode.GARBLED, text) == [garbled]


def test_utf8_read_as_cp1252_is_garbled(checker: QualityChecker) -> None:
    mojibake = "信噪比是信号功率与噪声功率之比。".encode().decode("cp1252", errors="replace")
    flags = flags_of(checker, mojibake, language="mixed")
    assert FlagCode.GARBLED in {f.code for f in flags}


def test_random_characters_are_garbled_but_formulas_are_not(checker: QualityChecker) -> None:
    noise = "qZ8#vL0!mN2@ xR7$kT4%pW9^ bY3&hJ6* cF1(gD5) sA0_eU8+ iO2=lK7~"
    (flag,) = [f for f in flags_of(checker, noise) if f.code is FlagCode.GARBLED]
    assert (flag.start, flag.end) == (0, len(noise))
    formula = (
        "Solving gives Eb/N0 = (2^{C/B} − 1)/(C/B), and H(e^{jω}) = Σ h[k] e^{−jωk} for "
        "log2(1 + S/N) with X[1] = −2 + 2j."
    )
    assert not [f for f in flags_of(checker, formula) if f.code is FlagCode.GARBLED]


def test_many_unusual_symbols_are_garbled(checker: QualityChecker) -> None:
    text = "Answer: \U0001f600\U0001f600\U0001f600 \ue000\ue001\ue002 ok fine."
    assert [f.code for f in flags_of(checker, text)].count(FlagCode.GARBLED) == 1


@pytest.mark.parametrize(
    ("text", "offending", "language"),
    [
        ("The function f(x = 2x + 1 is linear in x for all inputs.", "(", "en"),
        ("The vector [1, 2, 3 has three components in total here.", "[", "en"),
        ("A closing brace } appears here without an opening one at all.", "}", "en"),
        ("傅里叶变换（FT 把时域信号变换到频域进行分析和处理。", "（", "zh"),
        ("参考文献】信号与系统教材第三章的内容讲解了卷积。", "】", "zh"),
    ],
)
def test_unbalanced_brackets_are_flagged_at_the_offending_offset(
    checker: QualityChecker, text: str, offending: str, language: str
) -> None:
    flags = [
        f
        for f in flags_of(checker, text, language=language)
        if f.code is FlagCode.UNBALANCED_MARKUP
    ]
    assert [(f.start, f.end) for f in flags] == [(text.index(offending), text.index(offending) + 1)]


def test_mismatched_bracket_names_the_opener(checker: QualityChecker) -> None:
    text = "The value g(x] is undefined for negative inputs in this case."
    (flag,) = [f for f in flags_of(checker, text) if f.code is FlagCode.UNBALANCED_MARKUP]
    assert text[flag.start] == "]"
    assert "opened at offset 11" in flag.message


@pytest.mark.parametrize(
    "text",
    [
        "The sample lies in [0, 1) and the phase in (−π, π], as usual for these signals.",
        "Steps:\n1) sample the signal;\na) then quantize it.\n",
        "步骤如下：1）采样；2）量化；3）编码，然后传输。",
        "The license costs $5 per seat, while the formula $x^2 + y^2$ is inline math.",
        "Inline code `f(x` and a fenced block:\n```python\nprint((1)\n```\nare not prose.",
        "The mutual information is I(X;Y) = H(Y) − H(Y|X) for the channel (p − 1).",
        "Display math $$\\sum_{n} x[n]$$ and \\(a + b\\) and \\[c\\] are balanced.",
    ],
)
def test_balanced_or_non_bracket_text_is_not_flagged(checker: QualityChecker, text: str) -> None:
    assert not [f for f in flags_of(checker, text) if f.code is FlagCode.UNBALANCED_MARKUP]


@pytest.mark.parametrize(
    ("text", "offending"),
    [
        ("The energy is $E = \\int |x(t)|^2 dt and it is finite for pulses.", "$"),
        ("Display math $$\\sum_n x[n] never ends in this paragraph of text.", "$$"),
        ("The closing \\) has no opening delimiter in this short sentence.", "\\)"),
        ("Code follows:\n```python\nprint('never closed')\n", "```"),
    ],
)
def test_unbalanced_formula_delimiters_and_fences(
    checker: QualityChecker, text: str, offending: str
) -> None:
    flags = [f for f in flags_of(checker, text) if f.code is FlagCode.UNBALANCED_MARKUP]
    at = text.index(offending)
    assert [(f.start, f.end) for f in flags] == [(at, at + len(offending))]


@pytest.mark.parametrize(
    ("text", "language", "why"),
    [
        ("TCP 是一种面向连接的可靠传输协议，它通过三次握手建立连接，并且", "zh", "connective"),
        (
            "香农公式表明信道容量由带宽和信噪比共同决定。当信噪比一定时，增加带宽可以",
            "zh",
            "punctuation",
        ),
        (
            "The window slides forward as acknowledgements arrive, and the size is",
            "en",
            "connective",
        ),
        ("Each AES round applies SubBytes, ShiftRows and Mix", "en", "punctuation"),
        ("The receiver then decodes the frame and checks its CRC...", "en", "ellipsis"),
        ("主要的步骤包括采样、量化、编码，", "zh", "'，'"),
    ],
)
def test_truncated_endings_mark_the_last_sentence(
    checker: QualityChecker, text: str, language: str, why: str
) -> None:
    (flag,) = [
        f for f in flags_of(checker, text, language=language) if f.code is FlagCode.TRUNCATED
    ]
    assert why in flag.message
    assert flag.end == len(text)
    last_sentence = text[flag.start : flag.end]
    assert text.endswith(last_sentence)
    # The span is the last sentence, not the whole output, when there are several.
    if "。" in text[:-1] or ". " in text:
        assert flag.start > 0


@pytest.mark.parametrize(
    "text",
    [
        "The capacity is C = B log2(1 + S/N) ≈ 34.6 kbit/s",
        "Use the following code:\n```python\nprint(1)\n```",
        "Three layers matter:\n- physical\n- data link\n- network",
        "最终答案为“信道容量”。",
        "The result is $$C = B \\log_2(1 + S/N)$$",
    ],
)
def test_complete_endings_are_not_truncated(checker: QualityChecker, text: str) -> None:
    assert not [f for f in flags_of(checker, text) if f.code is FlagCode.TRUNCATED]


@pytest.mark.parametrize(
    ("text", "language", "connective"),
    [
        ("因此，信噪比越高，误码率越低，这是通信系统设计的基本结论。", "zh", "因此"),
        ("综上所述，对称加密速度快，但需要安全地分发密钥才能使用。", "zh", "综上所述"),
        (
            "Therefore, the receiver must estimate the carrier phase before it demodulates.",
            "en",
            "Therefore",
        ),
        (
            "## Answer\n\nThus the entropy is maximal for the uniform distribution over symbols.",
            "en",
            "Thus",
        ),
    ],
)
def test_logic_break_when_the_output_opens_with_a_connective(
    checker: QualityChecker, text: str, language: str, connective: str
) -> None:
    (flag,) = [
        f for f in flags_of(checker, text, language=language) if f.code is FlagCode.LOGIC_BREAK
    ]
    assert text[flag.start : flag.end] == connective


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("信噪比越高，误码率越低。因此，提高发射功率可以改善性能。", "zh"),
        ("可见光通信使用发光二极管传输数据，速率可以很高。", "zh"),
        ("Noise adds errors. Therefore, a higher SNR lowers the bit error rate here.", "en"),
        ("Thusly is not a word, yet this sentence about routers is complete.", "en"),
    ],
)
def test_connectives_after_a_premise_are_not_logic_breaks(
    checker: QualityChecker, text: str, language: str
) -> None:
    assert not [
        f for f in flags_of(checker, text, language=language) if f.code is FlagCode.LOGIC_BREAK
    ]


def test_flags_in_instruction_and_input_name_their_field(checker: QualityChecker) -> None:
    flags = checker.check(
        instruction="解释锟斤拷的来源（编码",
        input="x = f(2",
        output=CLEAN_ZH,
        language="zh",
        limits=ZH,
    )
    assert [(f.field, f.code) for f in flags] == [
        ("instruction", FlagCode.GARBLED),
        ("instruction", FlagCode.UNBALANCED_MARKUP),
        ("input", FlagCode.UNBALANCED_MARKUP),
    ]


def test_sentences_are_character_spans(checker: QualityChecker) -> None:
    text = "第一句。第二句！\n\nThird one here. Fourth"
    found = [text[s:e] for s, e in checker.sentences(text, language="zh")]
    assert found[:2] == ["第一句。", "第二句！"]
    assert found[-1].endswith("Fourth")


def test_assess_reports_length_and_repeat_ratio(checker: QualityChecker) -> None:
    result = checker.assess(
        instruction="Explain.", input="", output=CLEAN_EN, language="en", limits=EN
    )
    assert result.flags == []
    assert result.length == length_units(CLEAN_EN, "en")
    assert result.repeat_ratio == repetition(CLEAN_EN, language="en", n=3).ratio


def test_flag_dict_is_json_ready() -> None:
    flag = QualityFlag(code=FlagCode.GARBLED, field="output", start=1, end=3, message="m")
    assert flag.to_dict() == {
        "code": "garbled",
        "field": "output",
        "start": 1,
        "end": 3,
        "message": "m",
        "severity": "warning",
    }


# ---------------------------------------------------------------------------------------------
# Multi-turn records
# ---------------------------------------------------------------------------------------------


def test_every_turn_is_checked_and_named(checker: QualityChecker) -> None:
    history = [
        ("What is SNR?", "It compares signal power with noise power, usually in decibels, and"),
        ("误码率是什么锟斤拷锟斤拷？", "Yes."),
        ("And repetition?", "Noise is noise. " * 10),
    ]
    flags = checker.check(
        instruction="Why does a higher SNR help?",
        input="",
        output=CLEAN_EN,
        language="en",
        limits=EN,
        system="Answer (briefly.",
        history=history,
    )
    found = [(f.code, f.field) for f in flags]
    assert found == [
        (FlagCode.UNBALANCED_MARKUP, "system"),
        (FlagCode.TRUNCATED, "history[0][1]"),
        (FlagCode.GARBLED, "history[1][0]"),
        (FlagCode.REPETITIVE, "history[2][1]"),
    ]
    garbled = next(f for f in flags if f.code is FlagCode.GARBLED)
    assert history[1][0][garbled.start : garbled.end] == "锟斤拷锟斤拷"
    # A short earlier answer is a reply, not a defect: length is measured on the final output.
    assert (FlagCode.TOO_SHORT, "history[1][1]") not in found


def test_a_single_turn_check_is_unchanged_by_empty_turns(checker: QualityChecker) -> None:
    truncated = "The sliding window keeps the link busy during the round trip, and the"
    plain = flags_of(checker, truncated)
    explicit = checker.check(
        instruction="Explain.",
        input="",
        output=truncated,
        language="en",
        limits=EN,
        system="",
        history=(),
    )
    assert plain == explicit and [f.code for f in plain] == [FlagCode.TRUNCATED]
