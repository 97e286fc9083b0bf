"""The normalized view that PII detection reads: what it undoes, what it leaves alone, and that
every character of it maps back to the original characters it came from."""

from __future__ import annotations

import random

import pytest

from ingest.governance.pii import PiiConfig, PiiMatch, PiiType, find_structured
from ingest.governance.pii.names import DISTINCTIVE_EPONYMS
from ingest.governance.pii.normalize import (
    NormalizedText,
    fold_char,
    normalize,
    visual_order,
)
from ingest.governance.pii.truecase import GIVEN_NAMES, SURNAMES, truecase_names


@pytest.mark.parametrize(
    ("text", "view"),
    [
        ("手机138\u200b1234\u200d5678", "手机13812345678"),
        ("13812\u2060345678\u00ad", "13812345678"),
        ("\ufeff138\u200c12345678", "13812345678"),
        ("138\u202e1234\u202c5678", "13812345678"),
        ("电话١٣٨١٢٣٤٥٦٧٨", "电话13812345678"),
        ("۱۳۸۱۲۳۴۵۶۷۸", "13812345678"),
        ("𝟏𝟑𝟖𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖", "13812345678"),
        ("𝟙𝟛𝟠𝟙𝟚𝟛𝟜𝟝𝟞𝟟𝟠", "13812345678"),
        ("１３８１２３４５６７８", "13812345678"),
        ("手机一三八一二三四五六七八", "手机13812345678"),
        ("幺三八 幺二三四 五六七八", "138 1234 5678"),
        ("零一零-六二二八二六二八", "010-62282628"),
        ("john [at] example [dot] com", "john@example.com"),
        ("john(at)gmail(dot)com", "john@gmail.com"),
        ("john (AT) gmail (DOT) com", "john@gmail.com"),
        ("li.na AT bupt DOT edu DOT cn", "li.na@bupt.edu.cn"),
        ("john dot smith at gmail dot com", "john.smith@gmail.com"),
        ("john [ at ] gmail [ dot ] com", "john@gmail.com"),
        ("john{at}gmail.com", "john@gmail.com"),
        ("john[@]qq[.]com", "john@qq.com"),
        ("john＠qq．com", "john@qq.com"),
        ("zhang艾特qq点com", "zhang@qq.com"),
        ("zhang 艾特 163 点 com", "zhang@163.com"),
        ("jоhn@gmаil.com", "john@gmail.com"),
        ("ivan.petrоv@mail.ru", "ivan.petrov@mail.ru"),
        ("gmail.cοm", "gmail.com"),
    ],
)
def test_obfuscations_are_undone(text: str, view: str) -> None:
    assert normalize(text).text == view


@pytest.mark.parametrize(
    "text",
    [
        "Look at example.com for the dataset.",
        "Visit us at bupt.edu.cn tomorrow.",
        "Write a [dot] b for the dot product.",
        "下午3点到实验室、艾特我一下。",
        "一一对应、一二三四五六。",
        "一九四八年、二〇二四年",
        "x² + y² = r², 10¹⁰",
        "第①步、第②步",
        "①13812345678",
        "学号2023616369三位同学",
        "Москва и Πειραιάς",
        "john [at] host [dot] local",
        "Shannon, Nyquist and Hamming",
    ],
)
def test_look_alikes_of_obfuscations_stay(text: str) -> None:
    assert normalize(text).text == text


def test_removed_characters_inside_a_span_map_back_with_it() -> None:
    text = "手机138\u200b1234\u200d5678，谢谢"
    view = normalize(text)
    start = view.text.index("138")
    assert view.original_span(start, start + 11) == (2, 15)
    assert text[2:15].replace("\u200b", "").replace("\u200d", "") == "13812345678"


def test_a_rewritten_separator_stands_for_all_its_characters() -> None:
    text = "写信给 john [at] qq [dot] com 吧"
    view = normalize(text)
    start = view.text.index("john")
    end = view.text.index("com") + 3
    assert text[slice(*view.original_span(start, end))] == "john [at] qq [dot] com"


def test_expansions_and_combining_marks_keep_their_original_span() -> None:
    view = normalize("ﬁle e\u0301t\u0301")
    assert view.text == "file et"
    assert view.original_span(0, 2) == (0, 1)  # "fi" both stand for the ligature
    assert view.original_span(5, 7) == (4, 8)  # the marks belong to the letters before them


def test_every_view_character_maps_into_the_text_in_order() -> None:
    rng = random.Random(5)
    alphabet = "ab1@. 手机一三八\u200b\u200d\u00ad\u202e\u202c\ufe0fé\u0301аο①²٣𝟏ﬁ（）［at］点艾特"
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        view = normalize(text)
        assert len(view.starts) == len(view.ends) == len(view.text)
        previous = (0, 0)
        for start, end in zip(view.starts, view.ends, strict=True):
            assert 0 <= start < end <= len(text)
            assert (start, end) >= previous
            previous = (start, end)


def test_identity_view_of_plain_ascii() -> None:
    view = normalize("Call 13812345678 now.")
    assert view == NormalizedText.identity("Call 13812345678 now.")
    assert view.original_span(5, 16) == (5, 16)


def test_rewrite_rejects_overlapping_edits() -> None:
    view = NormalizedText.identity("abcdef")
    with pytest.raises(ValueError):
        view.rewrite([(0, 3, "x"), (2, 4, "y")])
    with pytest.raises(ValueError):
        view.original_span(3, 3)


def test_fold_char() -> None:
    assert fold_char("\u200b") == ""
    assert fold_char("\u00ad") == ""
    assert fold_char("\ufe0f") == ""
    assert fold_char("٧") == "7"
    assert fold_char("𝟕") == "7"
    assert fold_char("＠") == "@"
    assert fold_char("²") == "²"  # only inside a digit run
    assert fold_char("王") == "王"


def test_visual_order_reads_a_reversed_number_as_displayed() -> None:
    assert visual_order("电话13812345678") is None
    text = "电话\u202e87654321831\u202c。谢谢"
    view = visual_order(text)
    assert view is not None
    assert view.text == "电话13812345678。谢谢"
    assert view.original_span(2, 13) == (3, 14)


def test_find_structured_maps_matches_back_to_the_original_text() -> None:
    text = "手机١٣٨\u200b١٢٣٤٥٦٧٨，邮箱 li.na [at] bupt [dot] edu [dot] cn。"
    found = find_structured(text, PiiConfig())
    assert [(m.type, text[m.start : m.end]) for m in found] == [
        (PiiType.PHONE, "١٣٨\u200b١٢٣٤٥٦٧٨"),
        (PiiType.EMAIL, "li.na [at] bupt [dot] edu [dot] cn"),
    ]


def test_find_structured_reads_a_reversed_number() -> None:
    text = "Phone: \u202e87654321831\u202c"
    assert find_structured(text, PiiConfig()) == [PiiMatch(8, 19, PiiType.PHONE)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dear john smith, hi", "dear John Smith, hi"),
        ("ask mary jane watson", "ask Mary Jane Watson"),
        ("CONTACT: EMILY CHEN", "CONTACT: Emily Chen"),
        ("wang fang and li na", "Wang Fang and Li Na"),
        ("ask dr. wang", "ask Dr. Wang"),
        ("john smith's report", "John Smith's report"),
        ("claude shannon and harry nyquist", "claude shannon and harry nyquist"),
        ("we will price it and mark the answers", "we will price it and mark the answers"),
        ("alice sends bob a key", "alice sends bob a key"),
    ],
)
def test_truecase_names(text: str, expected: str) -> None:
    assert truecase_names(text) == expected
    assert len(truecase_names(text)) == len(text)


def test_name_lexicons_hold_no_eponym() -> None:
    assert not SURNAMES & DISTINCTIVE_EPONYMS
    assert not GIVEN_NAMES & DISTINCTIVE_EPONYMS
