"""Person-name rules: cue-based Chinese names and filters for English PERSON entities.

Chinese (no reliable Chinese NER ships offline): a name is reported only next to a cue that says a
person is meant — after ``姓名：``/``联系人``/``作者：``... or a role word (``学生王芳``,
``辅导员李娜``), or before ``同学``/``老师``/``教授``/``先生``... — and only if it starts with a
known surname, is 2-3 characters (3-4 with a compound surname), contains no function character
(的, 是, 请...), and jieba's dictionary does not know it as an ordinary word. Cue positions must
fall on jieba token boundaries, so ``首先生成`` has no ``先生`` and ``高中同学`` is one word.
Eponyms in course text (香农定理, 奈奎斯特准则) carry no cue and are never reported.

English: PERSON entities from an optional spaCy NER model, kept only if they look like a personal
name (two or more capitalised words, or one after Mr/Ms/Dr/Prof), are not a scientist the six
disciplines name laws after (Shannon, Nyquist, Hamming...), are not used as an eponym (``Nyquist
rate``, ``Hamming's bound``), and are not the stock characters of security textbooks (Alice, Bob,
Eve). The same filters apply to names after cues such as ``Name:`` or ``Dr.``, which work without a
model. Names written in lower or upper case are given capitals first
(:mod:`~ingest.governance.pii.truecase`).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_SINGLE_SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
    "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴"
    "莫孔向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪"
    "梅童凌毕单季裴霍涂苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳穆农司卓古吉缪简车项"
    "连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂佟应臧闵苟邬边卞姬师仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖"
    "巩佘池查麻苑迟邝官封谈匡鞠惠荆乐冀郁胥班储栗燕楚鄢劳谌奚皮粟冼蔺楼满闻厉伊仝区郜阚帅屠豆朴盖练廉"
    "禹井祖漆巴丰卿狄宣晋扈晁芮阙浦戈伏鹿薄邸雍辜羊乌母裘亓修邰赫杭况宿鲜印逯隆茹诸战慕危玉银亢嵇湛宾"
    "戎勾茅於揭尉冶斯束檀衣昝奉植衡富尧闭"
)
_COMPOUND_SURNAMES = _words(
    """欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 轩辕 令狐 端木 独孤
    南宫 西门 申屠 万俟 闻人 赫连 澹台 公冶 宗政 濮阳 太史 仲孙 钟离 拓跋 呼延 百里 东郭"""
)
# Characters that do not occur in given names but glue words together around a cue.
_FUNCTION_CHARS = frozenset(
    "的了是在和与及或请向给让对把被由从这那每各些位个们也都就很将为其之所而不没到说要会吗呢吧啊"
)
_NAME_TAGS = frozenset({"nr", "nrfg", "nrt"})

_ZH_SUFFIX_CUES = re.compile(
    "副教授|教授|同学|老师|博士|先生|女士|助教|主任|院长|校长|导师|讲师|研究员|工程师|学长|学姐|学弟|学妹|同志"
)
_ZH_PREFIX_CUES = re.compile(
    r"(?:(?:姓名|联系人)\s*(?:[:：]|为|是)?|我叫|名叫|户名\s*[:：]?"
    r"|(?:收件人|发件人|申请人|负责人|经办人|报告人|作者|学生|导师|指导教师)\s*[:：])\s*"
)
# Role words right before a name ("学生王芳", "辅导员李娜"). They precede ordinary words as often
# (学生会, 老师常说, 同学关系), so the candidate must pass the strict test.
_ZH_ROLE_CUES = re.compile(
    "副教授|教授|学生|同学|老师|教师|辅导员|班主任|导师|助教|讲师|研究员|班长|组长|学长|学姐|学弟|学妹"
    "|室友|舍友"
)
_CJK = re.compile(r"[\u4e00-\u9fff]")

COMMON_WORD_FREQ = 1000
"""A dictionary word this frequent (in jieba's counts) and not tagged as a name is ordinary."""


@dataclass(frozen=True, slots=True)
class Lexicon:
    """The segmenter's dictionary: part-of-speech tags and frequencies of known words."""

    tags: Mapping[str, str]
    freq: Mapping[str, int]

    def tag(self, word: str) -> str | None:
        """The word's tag, or ``None`` when the dictionary does not know it."""
        return self.tags.get(word)

    def is_ordinary_word(self, word: str) -> bool:
        """Whether ``word`` is a frequent dictionary word that is not a person name (优秀, 明天)."""
        tag = self.tags.get(word)
        return (
            tag is not None and tag not in _NAME_TAGS and self.freq.get(word, 0) >= COMMON_WORD_FREQ
        )


def _is_cjk(ch: str) -> bool:
    return _CJK.match(ch) is not None


def plausible_zh_name(
    candidate: str, *, inner_words: Iterable[str], lexicon: Lexicon, strict: bool = True
) -> bool:
    """Whether ``candidate`` can be a full Chinese name (surname + given name).

    ``inner_words`` are the segmenter's tokens lying inside the candidate. A candidate that is
    itself a dictionary word other than a name (高中, 全体) is out. With ``strict`` (a cue such as
    同学 that also follows ordinary words: 优秀同学), so is one containing a frequent ordinary word
    (向 + 优秀), while a rare word as given name (孙 + 浩然) is fine; after an explicit label
    (姓名：) only the first test applies.
    """
    if not all(_is_cjk(ch) for ch in candidate) or _FUNCTION_CHARS.intersection(candidate):
        return False
    if candidate[:2] in _COMPOUND_SURNAMES:
        if not 3 <= len(candidate) <= 4:
            return False
    elif candidate[0] not in _SINGLE_SURNAMES or not 2 <= len(candidate) <= 3:
        return False
    whole = lexicon.tag(candidate)
    if whole is not None and whole not in _NAME_TAGS:
        return False
    if not strict:
        return True
    return not any(
        len(word) >= 2 and word not in _COMPOUND_SURNAMES and lexicon.is_ordinary_word(word)
        for word in inner_words
    )


def zh_cued_names(
    text: str, *, token_starts: frozenset[int], token_ends: frozenset[int], lexicon: Lexicon
) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of Chinese names introduced by a cue, given the segmenter's token
    boundaries."""
    bounds = sorted(token_starts | token_ends)

    def words_inside(start: int, end: int) -> list[str]:
        inner = [b for b in bounds if start <= b <= end]
        return [text[a:b] for a, b in itertools.pairwise(inner)]

    for cue in _ZH_SUFFIX_CUES.finditer(text):
        end = cue.start()
        if end not in token_starts:
            continue
        # Shortest candidate first: in 请张伟同学 the name is 张伟, not 请张伟.
        for start in sorted((b for b in token_starts if 2 <= end - b <= 4), reverse=True):
            candidate = text[start:end]
            if plausible_zh_name(candidate, inner_words=words_inside(start, end), lexicon=lexicon):
                yield start, end
                break
    for cues, strict in ((_ZH_PREFIX_CUES, False), (_ZH_ROLE_CUES, True)):
        for cue in cues.finditer(text):
            start = cue.end()
            if start not in token_starts:
                continue
            run_end = start
            while run_end < len(text) and run_end - start < 5 and _is_cjk(text[run_end]):
                run_end += 1
            # Longest candidate first: 张三丰 rather than 张三, but never past a token boundary.
            for end in sorted(
                (b for b in token_ends if 2 <= b - start <= 4 and b <= run_end), reverse=True
            ):
                candidate = text[start:end]
                if plausible_zh_name(
                    candidate, inner_words=words_inside(start, end), lexicon=lexicon, strict=strict
                ):
                    yield start, end
                    break


# ---------------------------------------------------------------------------------------------
# English
# ---------------------------------------------------------------------------------------------

DISTINCTIVE_EPONYMS = _words(
    """shannon nyquist hartley fourier laplace hamming huffman viterbi turing gauss gaussian euler
    maxwell bayes markov kalman wiener lempel ziv solomon bose chaudhuri hocquenghem diffie hellman
    rivest shamir adleman merkle dijkstra bellman kruskal kolmogorov boltzmann leibniz hilbert
    cauchy schwarz neumann einstein tesla ohm volta faraday hertz marconi baudot erlang kleinrock
    cerf knuth backus naur chomsky boole babbage lovelace gosset bernoulli poisson chebyshev
    lagrange jacobi maclaurin parseval rayleigh nakagami doppler butterworth chebychev bessel
    heaviside dirac kronecker hadamard golay goppa fano mcmillan arimoto blahut slepian berlekamp
    gallager berrou arikan alamouti grover feistel vernam vigenere kerckhoffs lamport schnorr
    elgamal paillier fermat pareto zipf gini jaccard kullback leibler hoeffding chernoff vapnik
    cybenko hopfield hebb rosenblatt warshall tarjan dantzig lecun bengio goodfellow fulkerson
    edmonds tukey cooley levenshtein sobel hough bezier runge kutta riemann galois euclid
    pythagoras descartes kirchhoff thevenin coulomb ampere planck heisenberg schrodinger bohr
    bloch hartree"""
)
"""Surnames of scientists that course text names laws, codes and algorithms after; a name ending in
one of them is never reported."""
COMMON_SURNAME_EPONYMS = _words(
    """ford newton nash morse pearson fisher miller rabin moore floyd prim karp nagle jacobson lloyd
    hinton welch walsh elias kraft cover wolf massey tanner shor rice jensen bell young
    taylor"""
)
"""Surnames of eponyms that are also everyday surnames: they rule out a name only when used alone
("Prof. Newton") or when the full name is a famous one."""
FAMOUS_FULL_NAMES = frozenset(
    {
        "isaac newton",
        "john nash",
        "samuel morse",
        "karl pearson",
        "ronald fisher",
        "gordon moore",
        "robert floyd",
        "richard karp",
        "john nagle",
        "van jacobson",
        "stuart lloyd",
        "geoffrey hinton",
        "terry welch",
        "peter elias",
        "thomas cover",
        "james massey",
        "peter shor",
        "alexander graham bell",
        "thomas young",
        "brook taylor",
        "claude elwood shannon",
        "tim berners-lee",
        "bob kahn",
        "robert kahn",
        "vint cerf",
        "robert metcalfe",
        "paul baran",
        "donald davies",
        "whitfield diffie",
        "alan turing",
        "ada lovelace",
        "henry ford",
        "lester ford",
        "richard bellman",
        "rudolf kalman",
        "edsger dijkstra",
        "andrew viterbi",
        "david huffman",
        "richard hamming",
        "joseph fourier",
        "martin hellman",
    }
)
STOCK_CHARACTERS = _words(
    "alice bob carol charlie dave eve mallory trudy oscar peggy victor trent walter"
)
HONORIFICS = _words("mr mrs ms miss dr prof professor sir madam")
_EPONYM_NOUNS = _words(
    """theorem law limit rate criterion criteria code codes coding transform transforms series
    distribution algorithm filter filters bound inequality equation equations entropy capacity
    formula test network networks machine chain chains process sampling frequency window interval
    noise channel matrix function functions interval cipher signature scheme protocol tree
    coefficient constant effect principle lemma conjecture number numbers model kernel space
    spaces"""
)
_NOT_NAME_WORDS = _words(
    """the this that these those a an it in on at of for to please yes no i we you he she they what
    how why when where which who let given consider assume suppose note answer question hi hello
    dear thanks thank thanks sure ok okay and or but if then so because since well good great sorry
    first next now here there today thus therefore right exactly correct see"""
)
_NAME_WORD = re.compile(r"[A-Z][a-z]+(?:['-][A-Z]?[a-z]+)?$")
_EN_CUE = re.compile(
    r"(?:\b(?:Mr|Mrs|Ms|Miss|Dr|Prof|Professor)\.?[ \t]+"
    r"|(?P<label>\b(?i:name|contact|contact person|student|instructor|teacher|author|advisor"
    r"|supervisor|TA))[ \t]*(?:[:：]|is\b)[ \t]*)"
    r"(?P<name>[A-Z][a-z]+(?:['-][A-Z]?[a-z]+)?(?:[ \t]+[A-Z][a-z]+(?:['-][A-Z]?[a-z]+)?){0,2})"
)
# "Teacher: Because of noise": a lower-case word right after the capture means a sentence, not a
# name.
_SENTENCE_GOES_ON = re.compile(r"[ \t]+[a-z]")
_POSSESSIVE_EPONYM = re.compile(r"^['’]s\s+([A-Za-z]+)")
_FOLLOWING_WORD = re.compile(r"^[\s-]+([A-Za-z]+)")


def _is_eponym_use(after: str) -> bool:
    """Whether the text right after a name makes it an eponym (``'s theorem``, `` rate``)."""
    m = _POSSESSIVE_EPONYM.match(after) or _FOLLOWING_WORD.match(after)
    return m is not None and m.group(1).lower() in _EPONYM_NOUNS


def plausible_en_name(name: str, *, before: str, after: str, single_word_ok: bool = False) -> bool:
    """Whether ``name`` (already judged a person by NER or a cue) should be reported.

    ``before`` and ``after`` are a few characters of context around it. A single word counts only
    after an honorific, or when ``single_word_ok`` (the caller saw a label such as ``Name:``).
    """
    words = name.split()
    if not words or not all(_NAME_WORD.match(w) for w in words):
        return False
    lowered = [w.lower() for w in words]
    if lowered[0] in _NOT_NAME_WORDS:
        return False
    parts = [part for w in lowered for part in re.split(r"[-']", w)]
    if any(part in DISTINCTIVE_EPONYMS for part in parts) or _is_eponym_use(after):
        return False
    if " ".join(" ".join(lowered).split()) in FAMOUS_FULL_NAMES:
        return False
    if len(words) == 1 and lowered[0] in COMMON_SURNAME_EPONYMS:
        return False
    if all(w in STOCK_CHARACTERS for w in lowered):
        return False
    if len(words) == 1 and not single_word_ok:
        previous = re.findall(r"[A-Za-z]+", before[-12:])
        return bool(previous) and previous[-1].lower() in HONORIFICS
    return True


def en_cued_names(text: str) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of English names after an honorific or a label such as ``Name:``."""
    for m in _EN_CUE.finditer(text):
        words = list(re.finditer(r"\S+", m.group("name")))
        # Drop trailing words that start a sentence rather than continue the name.
        while words and words[-1].group(0).lower() in _NOT_NAME_WORDS:
            words.pop()
        if not words:
            continue
        start = m.start("name")
        end = start + words[-1].end()
        if m.group("label") and _SENTENCE_GOES_ON.match(text, end):
            continue
        if plausible_en_name(
            text[start:end],
            before=text[max(0, start - 16) : start],
            after=text[end:],
            single_word_ok=True,
        ):
            yield start, end


# Stretches without Han characters, CJK punctuation or line breaks.
_LATIN_SEGMENT = re.compile(r"[^\n\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]+")
# A possible name: an honorific before a capitalised word, or two capitalised words in a row.
_NAME_HINT = re.compile(
    r"\b(?:Mr|Mrs|Ms|Miss|Dr|Prof|Professor)\.?[ \t]+[A-Z]"
    r"|(?=\b([A-Z][a-z]+)(?:['-][A-Z]?[a-z]+)?[ \t]+[A-Z][a-z])"
)


def name_segments(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of the Latin-script stretches of ``text`` (split at Han characters, CJK
    punctuation and line breaks) that may hold a name the filters would keep: an honorific before a
    capitalised word, or two capitalised words in a row ("Sarah Johnson", not "The network").

    Running an English NER model on these stretches only, rather than on whole texts, keeps it off
    formulas and Chinese and makes it several times cheaper on course material.
    """
    out = []
    for m in _LATIN_SEGMENT.finditer(text):
        for hint in _NAME_HINT.finditer(m.group(0)):
            first = hint.group(1)
            if first is None or first.lower() not in _NOT_NAME_WORDS:
                out.append((m.start(), m.end()))
                break
    return out
