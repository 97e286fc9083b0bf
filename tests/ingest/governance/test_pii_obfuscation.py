"""Obfuscated personal data is redacted, exactly, through the public redactor; scientists' names,
numbers and look-alikes of the disguises are not."""

from __future__ import annotations

import pytest

from ingest.governance.pii import PiiConfig, PiiRedactor, PiiType

RLO, PDF = "\u202e", "\u202c"

# (form, type, language, template, disguised value, what it reads as); "{}" marks the value.
OBFUSCATED: list[tuple[str, PiiType, str, str, str, str]] = [
    (
        "zero_width_space",
        PiiType.PHONE,
        "zh",
        "手机{}，微信同号。",
        "138\u200b1234\u200b5678",
        "13812345678",
    ),
    (
        "zero_width_joiner",
        PiiType.PHONE,
        "en",
        "Call {} now.",
        "138\u200d12345\u200c678",
        "13812345678",
    ),
    ("word_joiner", PiiType.PHONE, "zh", "电话：{}", "13812\u2060345678", "13812345678"),
    (
        "soft_hyphen",
        PiiType.PHONE,
        "en",
        "My phone is {}.",
        "138\u00ad1234\u00ad5678",
        "13812345678",
    ),
    ("bom", PiiType.PHONE, "zh", "手机{}。", "1381\ufeff2345678", "13812345678"),
    (
        "zero_width_id",
        PiiType.ID_CARD,
        "zh",
        "身份证号{}已核验。",
        "110105\u200b19491231\u200b002X",
        "11010519491231002X",
    ),
    (
        "zero_width_email",
        PiiType.EMAIL,
        "en",
        "Mail {} today.",
        "li.na@bupt\u200b.edu.cn",
        "li.na@bupt.edu.cn",
    ),
    (
        "rtl_override_inside",
        PiiType.PHONE,
        "zh",
        "电话{}请回电",
        "138\u202e12345678",
        "13812345678",
    ),
    (
        "rtl_isolate_inside",
        PiiType.PHONE,
        "en",
        "Phone {} please.",
        "138\u20671234\u20695678",
        "13812345678",
    ),
    (
        "rtl_override_email",
        PiiType.EMAIL,
        "en",
        "Write to {}.",
        "zhang\u202ewei@qq.com",
        "zhangwei@qq.com",
    ),
    ("arabic_indic", PiiType.PHONE, "zh", "手机号码：{}", "١٣٨١٢٣٤٥٦٧٨", "13812345678"),
    ("extended_arabic_indic", PiiType.PHONE, "en", "Phone: {}", "۱۳۸۱۲۳۴۵۶۷۸", "13812345678"),
    (
        "arabic_indic_id",
        PiiType.ID_CARD,
        "en",
        "ID number: {}",
        "١١٠١٠٥١٩٤٩١٢٣١٠٠٢X",
        "11010519491231002X",
    ),
    ("math_bold", PiiType.PHONE, "zh", "联系方式：{}", "𝟏𝟑𝟖𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖", "13812345678"),
    (
        "math_monospace",
        PiiType.PHONE,
        "en",
        "Text me at {} tonight.",
        "𝟷𝟹𝟾 𝟷𝟸𝟹𝟺 𝟻𝟼𝟽𝟾",
        "138 1234 5678",
    ),
    (
        "chinese_numerals",
        PiiType.PHONE,
        "zh",
        "我的手机号是{}，微信同号。",
        "一三八一二三四五六七八",
        "13812345678",
    ),
    (
        "chinese_numerals_yao",
        PiiType.PHONE,
        "zh",
        "电话{}（晚上打）",
        "幺三八 幺二三四 五六七八",
        "138 1234 5678",
    ),
    ("chinese_numerals_mixed", PiiType.PHONE, "zh", "手机{}", "一3八1二三4五六七八", "13812345678"),
    (
        "chinese_numerals_id",
        PiiType.ID_CARD,
        "zh",
        "身份证号{}",
        "一一〇一〇五一九四九一二三一〇〇二X",
        "11010519491231002X",
    ),
    (
        "chinese_numerals_landline",
        PiiType.PHONE,
        "zh",
        "座机：{}",
        "零一零-六二二八二六二八",
        "010-62282628",
    ),
    (
        "at_dot_brackets",
        PiiType.EMAIL,
        "en",
        "Email {} for slides.",
        "li.na [at] bupt [dot] edu [dot] cn",
        "li.na@bupt.edu.cn",
    ),
    (
        "at_dot_parentheses",
        PiiType.EMAIL,
        "zh",
        "请发邮件到{}，谢谢。",
        "zhangwei(at)163(dot)com",
        "zhangwei@163.com",
    ),
    (
        "at_parentheses_spaced",
        PiiType.EMAIL,
        "en",
        "Contact: {}",
        "kevin_liu (at) gmail (dot) com",
        "kevin_liu@gmail.com",
    ),
    ("at_braces", PiiType.EMAIL, "en", "Mail {}.", "m.brown{at}ieee.org", "m.brown@ieee.org"),
    ("at_fullwidth", PiiType.EMAIL, "zh", "邮箱：{}", "liuyang88＠qq.com", "liuyang88@qq.com"),
    (
        "at_dot_words",
        PiiType.EMAIL,
        "en",
        "Reach me at {} anytime.",
        "sun.yue at foxmail dot com",
        "sun.yue@foxmail.com",
    ),
    (
        "at_dot_upper",
        PiiType.EMAIL,
        "en",
        "CONTACT: {}",
        "ZHAOLEI AT 126 DOT COM",
        "ZHAOLEI@126.COM",
    ),
    (
        "at_dot_spaced_brackets",
        PiiType.EMAIL,
        "en",
        "Email {}.",
        "hr-office [ at ] example [ dot ] org",
        "hr-office@example.org",
    ),
    (
        "aite_dian",
        PiiType.EMAIL,
        "zh",
        "邮箱{}，欢迎来信。",
        "xiaoming艾特qq点com",
        "xiaoming@qq.com",
    ),
    (
        "aite_dian_spaced",
        PiiType.EMAIL,
        "zh",
        "有问题请发至{}。",
        "wang_fang2021 艾特 163 点 com",
        "wang_fang2021@163.com",
    ),
    (
        "cyrillic_local",
        PiiType.EMAIL,
        "zh",
        "请将作业发送至{}，谢谢。",
        "zhаngwei@bupt.edu.cn",
        "zhangwei@bupt.edu.cn",
    ),
    (
        "cyrillic_domain",
        PiiType.EMAIL,
        "en",
        "Send it to {} by Friday.",
        "li.na@gmаil.com",
        "li.na@gmail.com",
    ),
    (
        "greek_tld",
        PiiType.EMAIL,
        "en",
        "Mail {}.",
        "ta.signal@example.οrg",
        "ta.signal@example.org",
    ),
    ("cyrillic_unlike", PiiType.EMAIL, "en", "Mail {}.", "ivжan@mail.com", "an@mail.com"),
]


@pytest.fixture(scope="module")
def redactor() -> PiiRedactor:
    return PiiRedactor()


@pytest.mark.parametrize(
    ("form", "pii_type", "language", "template", "value", "plain"),
    OBFUSCATED,
    ids=[o[0] for o in OBFUSCATED],
)
def test_obfuscated_values_are_redacted_exactly(
    redactor: PiiRedactor,
    form: str,
    pii_type: PiiType,
    language: str,
    template: str,
    value: str,
    plain: str,
) -> None:
    text = template.format(value)
    redaction = redactor.redact(text, language=language)
    # Everything around the value, as it was; the value, invisible characters included, gone.
    assert redaction.text == template.format(pii_type.placeholder)
    assert redaction.counts == {pii_type.value: 1}
    assert value not in redaction.text and plain not in redaction.text
    (match,) = redactor.detect(text, language=language)
    assert (match.type, text[match.start : match.end]) == (pii_type, value)


@pytest.mark.parametrize("language", ["zh", "en", "mixed"])
def test_a_number_stored_reversed_behind_an_override_is_redacted(
    redactor: PiiRedactor, language: str
) -> None:
    text = f"电话 phone {RLO}87654321831{PDF} 请回电"
    redaction = redactor.redact(text, language=language)
    assert redaction.text == f"电话 phone {RLO}[PHONE]{PDF} 请回电"


def test_several_disguises_in_one_text(redactor: PiiRedactor) -> None:
    text = "联系人：学生王\u200b芳，手机一三八一二三四五六七八，邮箱 wangfang 艾特 qq 点 com。"
    redaction = redactor.redact(text, language="zh")
    assert redaction.text == "联系人：学生[PERSON]，手机[PHONE]，邮箱 [EMAIL]。"
    assert redaction.counts == {"PERSON": 1, "PHONE": 1, "EMAIL": 1}


def test_redacting_obfuscated_text_twice_changes_nothing_more(redactor: PiiRedactor) -> None:
    text = "Call １３８\u200b１２３４５６７８ or mail li.na [at] bupt [dot] edu [dot] cn."
    once = redactor.redact(text, language="en")
    assert once.text == "Call [PHONE] or mail [EMAIL]."
    twice = redactor.redact(once.text, language="en")
    assert twice.text == once.text and twice.counts == {}


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("学生王芳的实验报告还没有提交。", "学生[PERSON]的实验报告还没有提交。"),
        ("辅导员李娜通知大家周五开会。", "辅导员[PERSON]通知大家周五开会。"),
        ("老师张伟布置了第三章的作业。", "老师[PERSON]布置了第三章的作业。"),
        ("同学陈静说他找到了答案。", "同学[PERSON]说他找到了答案。"),
        ("教授刘洋的课在周三下午。", "教授[PERSON]的课在周三下午。"),
        ("学生王\u200b芳缺勤。", "学生[PERSON]缺勤。"),
    ],
)
def test_chinese_names_after_role_words(redactor: PiiRedactor, text: str, expected: str) -> None:
    assert redactor.redact(text, language="zh").text == expected


@pytest.mark.parametrize(
    "text",
    [
        "学生会主席由全体学生投票选出。",
        "老师常说要多做练习。",
        "同学关系融洽，学习氛围很好。",
        "学生安全教育周从下周一开始。",
        "学生党员请到三楼会议室开会。",
        "教授级高级工程师评审下周进行。",
        "辅导员一般负责学生的日常管理。",
        "老师和同学们一起讨论了香农公式。",
    ],
)
def test_role_words_before_ordinary_words_stay(redactor: PiiRedactor, text: str) -> None:
    assert redactor.redact(text, language="zh").text == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Name: john smith\nEmail: none", "Name: [PERSON]\nEmail: none"),
        ("CONTACT: EMILY CHEN", "CONTACT: [PERSON]"),
        ("office hours with dr. wang on monday.", "office hours with dr. [PERSON] on monday."),
        ("name: wang fang", "name: [PERSON]"),
    ],
)
def test_lower_and_upper_case_english_names_by_cue(text: str, expected: str) -> None:
    plain = PiiRedactor(PiiConfig(ner_model=None))
    assert plain.redact(text, language="en").text == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Dear john smith, your exam score is attached.",
            "Dear [PERSON], your exam score is attached.",
        ),
        (
            "The intern, robert miller, configured the router yesterday.",
            "The intern, [PERSON], configured the router yesterday.",
        ),
        ("please ask mary jane watson about the lab.", "please ask [PERSON] about the lab."),
    ],
)
def test_lower_case_english_names_by_ner(redactor: PiiRedactor, text: str, expected: str) -> None:
    if redactor.ner_model is None:
        pytest.skip("no English spaCy NER model installed")
    assert redactor.redact(text, language="en").text == expected


# ---------------------------------------------------------------------------------------------
# Precision
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "Shannon, Nyquist and Hartley laid the foundations; Hamming and Huffman built codes.",
        "Dijkstra's algorithm and the Bellman-Ford algorithm find shortest paths.",
        "Diffie and Hellman published their key exchange in 1976.",
        "The Fourier transform, the Viterbi algorithm and the Kalman filter appear in chapter 5.",
        "Turing and Church answered the Entscheidungsproblem in 1936.",
        "Ford and Fulkerson proved the max-flow min-cut theorem in 1956.",
        "claude shannon and harry nyquist worked at Bell Labs.",
        "richard hamming introduced the hamming code; david huffman the huffman code.",
        "shannon entropy and the nyquist rate, dijkstra's algorithm and diffie-hellman.",
        "CLAUDE SHANNON PROVED THE CODING THEOREM IN 1948.",
        "The model was trained on 1,000,000 samples at a learning rate of 0.001.",
        "The carrier frequency is 2.4 GHz; Wi-Fi spans 2412 MHz to 2484 MHz.",
        "The years 1948, 1956, 1960 and 1976 saw major results.",
        "x² + y² = r², and 10¹⁰ is ten billion.",
        "Look at example.com for the dataset, or at github.com/org/repo.",
        "Write a [dot] b for the dot product; meet me at the lab at 3 pm.",
        "The emoji 👨\u200d💻 has a zero-width joiner; infor\u00admation has a soft hyphen.",
        "alice sends bob a message while eve eavesdrops.",
        "we will mark the paper and grant extensions.",
        "The propagation delay is 10 ms. Ignoring queuing, the last bit arrives at 11.2 ms.",
        "see dr. ignoring and prof. rate in the glossary.",
    ],
)
def test_english_technical_text_is_left_alone(redactor: PiiRedactor, text: str) -> None:
    assert redactor.redact(text, language="en").text == text


@pytest.mark.parametrize(
    "text",
    [
        "香农、奈奎斯特和哈特莱奠定了通信理论的基础。",
        "迪杰斯特拉算法和贝尔曼-福特算法都能求最短路径。",
        "一九四八年，香农发表了《通信的数学理论》。",
        "二〇二四年共有三百六十六天，一二三四五六七是队列的编号。",
        "训练集共有 1,000,000 个样本，载波频率为 2.4 GHz。",
        "下午3点在教三楼开会，有问题艾特我一下就行。",
        "阿拉伯-印度数字写作 ٠١٢٣٤٥٦٧٨٩，数学粗体 𝟏𝟐𝟑 常用于排版。",
        "第①步：计算 x² + y²；第②步：开方。",
    ],
)
def test_chinese_technical_text_is_left_alone(redactor: PiiRedactor, text: str) -> None:
    assert redactor.redact(text, language="zh").text == text


def test_mixed_technical_text_is_left_alone(redactor: PiiRedactor) -> None:
    text = "Dijkstra 算法和 Bellman-Ford 算法；Shannon 香农 1948 年；look at example.com。"
    assert redactor.redact(text, language="mixed").text == text


@pytest.mark.parametrize(
    ("declared", "text", "expected"),
    [
        (
            "en",
            "Sampling above the Nyquist rate. 学生王芳缺勤。",
            "Sampling above the Nyquist rate. 学生[PERSON]缺勤。",
        ),
        (
            "en",
            "Shannon's bound holds. 学生王\u200b芳缺勤。",
            "Shannon's bound holds. 学生[PERSON]缺勤。",
        ),
        (
            "zh",
            "香农定理给出信道容量。The grader, Li Na, will reply.",
            "香农定理给出信道容量。The grader, [PERSON], will reply.",
        ),
        (
            "zh",
            "奈奎斯特采样。the grader, wang fang, replied.",
            "奈奎斯特采样。the grader, [PERSON], replied.",
        ),
    ],
)
def test_names_in_the_other_script_of_a_declared_language(
    redactor: PiiRedactor, declared: str, text: str, expected: str
) -> None:
    """The declared language says what a text mostly is; names in the other script are found."""
    assert redactor.redact(text, language=declared).text == expected
