"""Obfuscated cases of the labeled PII set: values disguised the way a contributor hides them from a
pattern but not from a reader, and hard negatives that look like such disguises.

A kind here (``⟦mobile_zw⟧``, ``⟦email_spelled⟧``...) draws a plain value of a base kind of
:mod:`scripts.pii_cases.generate` and disguises it; the gold span covers the disguised value, the
invisible characters inside it included. Each template names its *form*, which the case records
(``obfuscation``) so that :mod:`bench.pii` can report recall per form.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from ingest.governance.pii.model import PiiType

Draw = Callable[[str], str]
"""Draws a plain value of a base kind of the generator (``"mobile"``, ``"email"``...)."""
Make = Callable[[random.Random, Draw], str]

# ---------------------------------------------------------------------------------------------
# Disguises
# ---------------------------------------------------------------------------------------------

# Zero-width space, non-joiner and joiner, word joiner, soft hyphen, zero-width no-break space.
INVISIBLE = ("\u200b", "\u200c", "\u200d", "\u2060", "\u00ad", "\ufeff")
# Right-to-left override and mark, left-to-right override, isolates and their closing marks.
BIDI = ("\u202e", "\u202d", "\u200f", "\u2067", "\u2066", "\u2069", "\u202c")
RLO, PDF = "\u202e", "\u202c"


def insert_between(rng: random.Random, value: str, chars: tuple[str, ...], count: int) -> str:
    """``value`` with ``count`` characters of ``chars`` inserted at distinct inner positions."""
    positions = rng.sample(range(1, len(value)), min(count, len(value) - 1))
    out = value
    for position in sorted(positions, reverse=True):
        out = out[:position] + rng.choice(chars) + out[position:]
    return out


def digits_in(value: str, zero: int) -> str:
    """``value`` with its ASCII digits written in the script whose zero is code point ``zero``."""
    return "".join(chr(zero + int(ch)) if ch.isdigit() else ch for ch in value)


ARABIC_INDIC_ZEROS = (0x0660, 0x06F0)
MATH_ZEROS = (0x1D7CE, 0x1D7D8, 0x1D7EC, 0x1D7F6)  # bold, double-struck, sans-serif bold, mono
_ZH_NUMERALS = "〇一二三四五六七八九"


def chinese_numerals(rng: random.Random, value: str) -> str:
    """``value`` with its digits as Chinese numerals (零 or 〇 for 0, sometimes 幺 for 1); a few
    inner digits may stay ASCII."""
    zero = rng.choice("〇零")
    one = rng.choice("一一幺")
    keep_ascii = rng.random() < 0.25
    out = []
    positions = [i for i, ch in enumerate(value) if ch.isdigit()]
    inner = set(positions[1:-1])
    for i, ch in enumerate(value):
        if not ch.isdigit() or (keep_ascii and i in inner and rng.random() < 0.3):
            out.append(ch)
        elif ch == "0":
            out.append(zero)
        elif ch == "1":
            out.append(one)
        else:
            out.append(_ZH_NUMERALS[int(ch)])
    return "".join(out)


_SPELLED = (
    (" [at] ", " [dot] "),
    ("[at]", "[dot]"),
    ("(at)", "(dot)"),
    (" (at) ", " (dot) "),
    ("{at}", "."),
    (" AT ", " DOT "),
    (" at ", " dot "),
    ("＠", "."),
    ("[@]", "[.]"),
    (" [ at ] ", " [ dot ] "),
    ("(at)", "."),
    ("<at>", "<dot>"),
    (" at ", " [dot] "),
    ("[AT]", "[DOT]"),
)
_SPELLED_ZH = (
    ("艾特", "点"),
    (" 艾特 ", " 点 "),
    ("艾特", "."),
    ("@", "点"),
    ("(艾特)", "(点)"),
    ("爱特", "点"),
    ("[艾特]", "[点]"),
)


def spelled(rng: random.Random, email: str, forms: tuple[tuple[str, str], ...]) -> str:
    """``email`` with its ``@`` and dots spelled out in one of ``forms``."""
    at, dot = rng.choice(forms)
    local, domain = email.split("@")
    if dot != ".":
        local = local.replace(".", dot)
    return local + at + domain.replace(".", dot)


_LOOKALIKES = {
    "a": "аα",
    "e": "е",
    "o": "оο",
    "p": "р",
    "c": "с",
    "x": "х",
    "y": "у",
    "i": "і",
    "s": "ѕ",
}


def confusable(rng: random.Random, email: str) -> str:
    """``email`` with one or two letters replaced by Cyrillic or Greek look-alikes."""
    positions = [i for i, ch in enumerate(email) if ch.lower() in _LOOKALIKES and ch.islower()]
    chosen = rng.sample(positions, min(len(positions), rng.choice((1, 1, 2))))
    chars = list(email)
    for i in chosen:
        chars[i] = rng.choice(_LOOKALIKES[chars[i]])
    return "".join(chars)


LOWER_EN_NAMES = (
    "john smith",
    "emily chen",
    "michael brown",
    "sarah johnson",
    "david lee",
    "jennifer wu",
    "kevin liu",
    "laura garcia",
    "james wilson",
    "olivia martin",
    "daniel kim",
    "wang fang",
    "li na",
    "wei zhang",
    "mary jane watson",
    "thomas anderson",
    "maria lopez",
    "peter zhao",
    "anna schmidt",
    "robert miller",
)


def _plain_mobile(draw: Draw) -> str:
    return "".join(ch for ch in draw("mobile") if ch.isdigit())[-11:]


def _reversed_mobile(rng: random.Random, draw: Draw) -> str:
    n = _plain_mobile(draw)
    shown = rng.choice((n, f"{n[:3]} {n[3:7]} {n[7:]}"))
    return shown[::-1]


def _mobile_zh(rng: random.Random, draw: Draw) -> str:
    n = _plain_mobile(draw)
    shown = rng.choice((n, n, f"{n[:3]} {n[3:7]} {n[7:]}", f"{n[:3]}-{n[3:7]}-{n[7:]}"))
    return chinese_numerals(rng, shown)


def _landline_zh(rng: random.Random, draw: Draw) -> str:
    number = draw("landline_bare")
    area = 3 if number[1] in "12" else 4  # 010 and 02x, else 0xxx
    return chinese_numerals(rng, number[:area] + rng.choice(" -") + number[area:])


def _id_zh(rng: random.Random, draw: Draw) -> str:
    return chinese_numerals(rng, draw("id"))


OBFUSCATED_KINDS: dict[str, tuple[PiiType, Make]] = {
    "mobile_zw": (
        PiiType.PHONE,
        lambda r, d: insert_between(r, d("mobile"), INVISIBLE, r.randint(1, 3)),
    ),
    "email_zw": (
        PiiType.EMAIL,
        lambda r, d: insert_between(r, d("email"), INVISIBLE, r.randint(1, 3)),
    ),
    "id_zw": (PiiType.ID_CARD, lambda r, d: insert_between(r, d("id"), INVISIBLE, r.randint(1, 3))),
    "card_zw": (PiiType.BANK_CARD, lambda r, d: insert_between(r, d("card"), INVISIBLE, 2)),
    "mobile_bidi": (PiiType.PHONE, lambda r, d: insert_between(r, d("mobile"), BIDI, 1)),
    "email_bidi": (PiiType.EMAIL, lambda r, d: insert_between(r, d("email"), BIDI, 1)),
    "mobile_reversed": (PiiType.PHONE, _reversed_mobile),
    "mobile_arabic": (
        PiiType.PHONE,
        lambda r, d: digits_in(d("mobile"), r.choice(ARABIC_INDIC_ZEROS)),
    ),
    "id_arabic": (PiiType.ID_CARD, lambda r, d: digits_in(d("id"), r.choice(ARABIC_INDIC_ZEROS))),
    "mobile_math": (PiiType.PHONE, lambda r, d: digits_in(d("mobile"), r.choice(MATH_ZEROS))),
    "id_math": (PiiType.ID_CARD, lambda r, d: digits_in(d("id"), r.choice(MATH_ZEROS))),
    "card_math": (PiiType.BANK_CARD, lambda r, d: digits_in(d("card"), r.choice(MATH_ZEROS))),
    "mobile_zh": (PiiType.PHONE, _mobile_zh),
    "landline_zh": (PiiType.PHONE, _landline_zh),
    "id_zh": (PiiType.ID_CARD, _id_zh),
    "email_spelled": (PiiType.EMAIL, lambda r, d: spelled(r, d("email"), _SPELLED)),
    "email_spelled_zh": (PiiType.EMAIL, lambda r, d: spelled(r, d("email"), _SPELLED_ZH)),
    "email_confusable": (PiiType.EMAIL, lambda r, d: confusable(r, d("email"))),
    "enname_lower": (PiiType.PERSON, lambda r, d: r.choice(LOWER_EN_NAMES)),
    "enname_upper": (PiiType.PERSON, lambda r, d: r.choice(LOWER_EN_NAMES).upper()),
}
"""Disguised kinds: the PII type and how a value is made from plain draws."""

# ---------------------------------------------------------------------------------------------
# Templates: (language, repetitions, form, template)
# ---------------------------------------------------------------------------------------------

OBFUSCATED: tuple[tuple[str, int, str, str], ...] = (
    # Invisible characters (zero-width space, joiners, word joiner, soft hyphen, BOM) inside
    ("zh", 3, "invisible", "如有疑问请联系助教，手机⟦mobile_zw⟧。"),
    ("zh", 3, "invisible", "请将作业发送至⟦email_zw⟧，邮件标题注明学号。"),
    ("zh", 2, "invisible", "身份证号：⟦id_zw⟧，请核对。"),
    ("zh", 1, "invisible", "奖学金将发放到银行卡⟦card_zw⟧，请核对。"),
    ("en", 3, "invisible", "My phone number is ⟦mobile_zw⟧, call me."),
    ("en", 3, "invisible", "Email me at ⟦email_zw⟧ please."),
    ("en", 2, "invisible", "Her ID card number is ⟦id_zw⟧."),
    ("mixed", 2, "invisible", "My 手机 is ⟦mobile_zw⟧，邮箱 ⟦email_zw⟧。"),
    # Bidi controls inside, or a number stored reversed behind a right-to-left override
    ("zh", 2, "bidi", "电话：⟦mobile_bidi⟧，请尽快回电。"),
    ("zh", 2, "bidi", f"联系电话{RLO}⟦mobile_reversed⟧{PDF}（白天）"),
    ("zh", 2, "bidi", "邮箱⟦email_bidi⟧，欢迎来信。"),
    ("en", 2, "bidi", "Call ⟦mobile_bidi⟧ after 6pm."),
    ("en", 2, "bidi", f"Phone: {RLO}⟦mobile_reversed⟧{PDF}"),
    ("en", 2, "bidi", "Write to ⟦email_bidi⟧ for the slides."),
    # Arabic-Indic digits
    ("zh", 2, "arabic_indic_digits", "手机号码：⟦mobile_arabic⟧"),
    ("zh", 2, "arabic_indic_digits", "身份证⟦id_arabic⟧已通过实名认证。"),
    ("en", 2, "arabic_indic_digits", "My phone number is ⟦mobile_arabic⟧."),
    ("en", 2, "arabic_indic_digits", "ID number: ⟦id_arabic⟧"),
    # Mathematical bold, double-struck, sans-serif and monospace digits
    ("zh", 2, "math_digits", "联系方式：⟦mobile_math⟧"),
    ("zh", 2, "math_digits", "身份证号码⟦id_math⟧"),
    ("en", 2, "math_digits", "Text me at ⟦mobile_math⟧ tonight."),
    ("en", 1, "math_digits", "Card on file: ⟦card_math⟧."),
    ("mixed", 1, "math_digits", "手机 mobile: ⟦mobile_math⟧"),
    # Chinese numerals
    ("zh", 3, "chinese_numerals", "我的手机号是⟦mobile_zh⟧，微信同号。"),
    ("zh", 2, "chinese_numerals", "电话⟦mobile_zh⟧（晚上打）"),
    ("zh", 2, "chinese_numerals", "身份证号⟦id_zh⟧"),
    ("zh", 2, "chinese_numerals", "办公室座机：⟦landline_zh⟧"),
    ("en", 2, "chinese_numerals", "Phone (written in Chinese): ⟦mobile_zh⟧"),
    ("mixed", 2, "chinese_numerals", "手机 mobile: ⟦mobile_zh⟧"),
    # Spelled-out e-mail addresses
    ("zh", 3, "spelled_email", "请发邮件到⟦email_spelled⟧，谢谢。"),
    ("zh", 3, "spelled_email", "邮箱：⟦email_spelled_zh⟧"),
    ("zh", 2, "spelled_email", "有问题请发邮件至⟦email_spelled_zh⟧，我会尽快回复。"),
    ("en", 4, "spelled_email", "Email me at ⟦email_spelled⟧ for the slides."),
    ("en", 3, "spelled_email", "Contact: ⟦email_spelled⟧"),
    ("mixed", 2, "spelled_email", "请联系 TA，邮箱 ⟦email_spelled⟧。"),
    # Look-alike letters from other scripts in an e-mail address
    ("zh", 3, "confusable_email", "请将作业发送至⟦email_confusable⟧，邮件标题注明学号。"),
    ("en", 3, "confusable_email", "Send the report to ⟦email_confusable⟧ by Friday."),
    ("mixed", 1, "confusable_email", "My email 邮箱 is ⟦email_confusable⟧."),
    # English names in lower or upper case
    ("en", 3, "lowercase_name", "Dear ⟦enname_lower⟧, your exam score is attached."),
    ("en", 2, "lowercase_name", "Name: ⟦enname_lower⟧\nEmail: ⟦email⟧"),
    ("en", 2, "lowercase_name", "Contact ⟦enname_lower⟧ (⟦email⟧) for the lab schedule."),
    ("en", 2, "lowercase_name", "The intern, ⟦enname_lower⟧, configured the router yesterday."),
    ("en", 2, "lowercase_name", "please ask ⟦enname_lower⟧ about the lab."),
    ("en", 2, "lowercase_name", "CONTACT: ⟦enname_upper⟧"),
    ("en", 1, "lowercase_name", "office hours with dr. ⟦PERSON=wang⟧ on monday."),
    ("mixed", 2, "lowercase_name", "请联系 TA ⟦enname_lower⟧，邮箱 ⟦email⟧。"),
    # Chinese names right after a role word
    ("zh", 3, "role_word_name", "学生⟦zhname⟧的实验报告还没有提交。"),
    ("zh", 2, "role_word_name", "辅导员⟦zhname⟧通知大家周五开会。"),
    ("zh", 2, "role_word_name", "老师⟦zhname⟧布置了第三章的作业。"),
    ("zh", 2, "role_word_name", "同学⟦zhname⟧说他找到了答案。"),
    ("zh", 2, "role_word_name", "教授⟦zhname⟧的课在周三下午。"),
    ("zh", 2, "role_word_name", "请联系助教⟦zhname⟧，电话⟦mobile⟧。"),
    ("mixed", 1, "role_word_name", "学生⟦zhname⟧ (student ID ⟦sid⟧) 缺勤。"),
    # Several disguises in one text
    ("zh", 2, "combined", "联系人：学生⟦zhname⟧，手机⟦mobile_zh⟧，邮箱⟦email_spelled_zh⟧。"),
    ("en", 2, "combined", "dear ⟦enname_lower⟧: call ⟦mobile_zw⟧ or mail ⟦email_spelled⟧."),
)

HARD_NEGATIVE: tuple[tuple[str, str], ...] = (
    # Scientists and engineers in technical text, written every way
    ("en", "Shannon published his paper in 1948; Nyquist wrote his in 1928."),
    ("en", "shannon entropy H(X) is measured in bits when the logarithm is base 2."),
    ("en", "The nyquist frequency is half the sampling rate."),
    ("en", "dijkstra's algorithm runs in O((V+E) log V) with a binary heap."),
    ("en", "Diffie and Hellman published their key exchange in 1976."),
    ("en", "The computational Diffie-Hellman assumption underlies many protocols."),
    ("en", "Fourier series converge for piecewise smooth functions."),
    ("en", "Huffman and Hamming both worked on coding theory."),
    ("en", "The Viterbi decoder traces back 5K steps for a code of constraint length K."),
    ("en", "Turing and Church answered the Entscheidungsproblem in 1936."),
    ("en", "Bellman and Ford each published the shortest-path algorithm in the 1950s."),
    ("en", "Kalman published the filter in 1960, and it flew on Apollo."),
    ("en", "Ford and Fulkerson proved the max-flow min-cut theorem in 1956."),
    ("en", "claude shannon and harry nyquist worked at Bell Labs."),
    ("en", "alan turing, john von neumann and claude shannon shaped computing."),
    ("en", "richard hamming introduced the hamming code; david huffman the huffman code."),
    ("en", "The Kalman gain, the Viterbi path and the Fourier transform appear in chapter 5."),
    # Numbers that are not phones or ids
    ("en", "The model was trained on 1,000,000 samples at a learning rate of 0.001."),
    ("en", "We sampled 13,800,000 frames over 2,400 hours of audio."),
    ("en", "The carrier frequency is 2.4 GHz and the sampling rate is 48000 Hz."),
    ("en", "Wi-Fi channels span 2412 MHz to 2484 MHz in the 2.4 GHz band."),
    ("en", "The years 1948, 1956, 1960 and 1976 saw major results."),
    ("en", "x² + y² = r², and 10¹⁰ is ten billion."),
    ("en", "The bold 𝟏𝟎𝟎𝟎 Hz tone was played for 𝟑 seconds."),
    ("en", "In Arabic script the year ٢٠٢٤ is written with Arabic-Indic digits."),
    # Look-alikes of the disguises
    ("en", "Look at example.com for the dataset."),
    ("en", "The results are at github.com/org/repo, see the README."),
    ("en", "Write a · b or a [dot] b for the dot product of vectors a and b."),
    ("en", "The soft hyphen in infor\u00admation is invisible when the word fits."),
    ("en", "The emoji 👨\u200d💻 is built with a zero-width joiner."),
    ("en", "we will mark the paper and grant extensions at our discretion."),
    ("en", "alice sends bob a message encrypted with his public key."),
    ("en", "Meet me at the lab at 3 pm, then we dot the i's."),
    ("en", "The propagation delay is 10 ms. Ignoring queuing, the last bit arrives at 11.2 ms."),
    ("zh", "训练集共有 1,000,000 个样本，测试集 200,000 个。"),
    ("zh", "一九四八年，香农发表了《通信的数学理论》。"),
    ("zh", "二〇二四年共有三百六十六天。"),
    ("zh", "载波频率为 2.4 GHz，采样率为 48000 Hz。"),
    ("zh", "下午3点在教三楼开会，请准时参加。"),
    ("zh", "点击链接下载课件，有问题艾特我一下就行。"),
    ("zh", "学生会主席由全体学生投票选出。"),
    ("zh", "老师常说要多做练习。"),
    ("zh", "同学关系融洽，学习氛围很好。"),
    ("zh", "学生安全教育周从下周一开始。"),
    ("zh", "学生党员请到三楼会议室开会。"),
    ("zh", "教授级高级工程师评审下周进行。"),
    ("zh", "辅导员一般负责学生的日常管理。"),
    ("zh", "老师和同学们一起讨论了香农公式。"),
    ("zh", "香农、奈奎斯特和哈特莱奠定了通信理论的基础。"),
    ("zh", "迪杰斯特拉算法和贝尔曼-福特算法都能求最短路径。"),
    ("zh", "卡尔曼滤波和维特比译码是本章的重点。"),
    ("zh", "一二三四五六七，这是队列的编号。"),
    ("zh", "第①步：计算 x² + y²；第②步：开方。"),
    ("zh", "阿拉伯-印度数字写作 ٠١٢٣٤٥٦٧٨٩。"),
    ("zh", "数学粗体 𝟏𝟐𝟑 常用于公式排版。"),
    ("zh", "这个词中间有零宽空格：信\u200b息\u200b论。"),
    ("zh", "请用点积计算 a 点 b 的值。"),
    ("mixed", "Shannon 香农 1948 年的论文共有 55 页。"),
    ("mixed", "请 at 一下助教 TA，或者 look at example.com。"),
    ("mixed", "频率 frequency 为 2400 MHz，一共 1,000,000 次采样。"),
    ("mixed", "Dijkstra 算法和 Bellman-Ford 算法的复杂度不同。"),
)
"""Hard negatives for the normalization: nothing in them is personal data."""
