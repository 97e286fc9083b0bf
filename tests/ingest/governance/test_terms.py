"""Glossaries and term coverage: sizes, validation, Chinese and English matching, the score."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ingest.governance.errors import GlossaryError, GovernanceError
from ingest.governance.terms import (
    DEFAULT_TARGET_DENSITY,
    GLOSSARY_DIR,
    MIN_TOKENS,
    Glossary,
    GlossaryEntry,
    TermIndex,
    TermMatcher,
    count_tokens,
    load_glossaries,
    load_glossary,
    term_coverage,
    token_key,
)
from ingest.records import Discipline

CJK = re.compile("[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def index() -> TermIndex:
    return TermIndex.load()


def terms_in(index: TermIndex, discipline: str, text: str) -> list[tuple[str, str]]:
    """(glossary term, matched surface text) pairs, in order."""
    return [(m.term, text[m.start : m.end]) for m in index.matcher(discipline).find(text)]


# -- glossaries ----------------------------------------------------------------------------------


def test_every_discipline_has_a_glossary_of_at_least_150_terms() -> None:
    glossaries = load_glossaries()
    assert set(glossaries) == {d.value for d in Discipline}
    for name, glossary in glossaries.items():
        assert len(glossary) >= 150, name


@pytest.mark.parametrize("discipline", [d.value for d in Discipline])
def test_entries_have_english_and_chinese_and_no_duplicates(discipline: str) -> None:
    raw = yaml.safe_load((GLOSSARY_DIR / f"{discipline}.yaml").read_text(encoding="utf-8"))
    entries = raw["terms"]
    for entry in entries:
        assert entry["en"].strip() and not CJK.search(entry["en"]), entry
        assert CJK.search(entry["zh"]), entry
    en = [e["en"].casefold() for e in entries]
    zh = [e["zh"] for e in entries]
    assert len(set(en)) == len(en)
    assert len(set(zh)) == len(zh)


def write_glossary(directory: Path, name: str, terms: list[dict[str, object]]) -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"discipline": name, "terms": terms}, allow_unicode=True))
    return path


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        (
            [{"en": "router", "zh": "路由器"}, {"en": "routers", "zh": "路由设备"}],
            "terms[1] ('routers'): form 'routers' duplicates terms[0] ('router')",
        ),
        (
            [{"en": "router", "zh": "路由器"}, {"en": "gateway", "zh": "路由器"}],
            "form '路由器' duplicates terms[0]",
        ),
        ([{"en": "router", "zh": "router"}], "terms[0] ('router'): 'zh' must contain Chinese"),
        ([{"en": "router"}], "terms[0]: expected keys 'en', 'zh'"),
        ([{"en": "router", "zh": "路由器", "aliases": "RT"}], "'aliases' must be a list"),
        ([{"en": "router", "zh": "路由器", "notes": "x"}], "terms[0]: expected keys"),
    ],
)
def test_bad_glossaries_are_refused_naming_the_entry(
    tmp_path: Path, terms: list[dict[str, object]], message: str
) -> None:
    path = write_glossary(tmp_path, "computer_networks", terms)
    with pytest.raises(GlossaryError) as caught:
        load_glossary(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)
    assert isinstance(caught.value, GovernanceError)


def test_file_name_must_match_the_discipline(tmp_path: Path) -> None:
    path = tmp_path / "data_science.yaml"
    path.write_text(yaml.safe_dump({"discipline": "computer_networks", "terms": []}))
    with pytest.raises(GlossaryError, match="does not match file name"):
        load_glossaries(tmp_path)


# -- Chinese matching -----------------------------------------------------------------------------


def test_chinese_terms_are_found_by_longest_match(index: TermIndex) -> None:
    text = "在加性高斯白噪声信道中，信道容量由带宽和信噪比决定。"
    # information_theory lists the whole channel name; communication_principles only its parts.
    assert terms_in(index, "information_theory", text) == [
        ("additive white Gaussian noise channel", "加性高斯白噪声信道"),
        ("channel capacity", "信道容量"),
        ("signal-to-noise ratio", "信噪比"),
    ]
    assert terms_in(index, "communication_principles", text) == [
        ("additive white Gaussian noise", "加性高斯白噪声"),
        ("channel", "信道"),
        ("channel capacity", "信道容量"),
        ("bandwidth", "带宽"),
        ("signal-to-noise ratio", "信噪比"),
    ]


def test_chinese_matching_does_not_depend_on_segmentation(index: TermIndex) -> None:
    # jieba splits 拥塞窗口 and 慢开始 differently in different contexts; the trie does not care.
    for text in ("拥塞窗口在慢开始阶段指数增长。", "慢开始阶段拥塞窗口指数增长", "TCP的慢开始"):
        found = {term for term, _ in terms_in(index, "computer_networks", text)}
        assert {"congestion window", "slow start"} & found


def test_latin_prefixed_chinese_forms_respect_word_boundaries(index: TermIndex) -> None:
    assert terms_in(index, "computer_networks", "TCP协议") == [
        ("Transmission Control Protocol", "TCP协议")
    ]
    assert ("IP address", "IP地址") not in terms_in(index, "computer_networks", "VIP地址")


# -- English matching -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("discipline", "text", "expected"),
    [
        (
            "computer_networks",
            "Routers forward datagrams.",
            [("router", "Routers"), ("forwarding table", "forward"), ("datagram", "datagrams")],
        ),
        (
            "information_theory",
            "Huffman codes are prefix codes.",
            [("Huffman coding", "Huffman codes"), ("prefix code", "prefix codes")],
        ),
        (
            "information_theory",
            "error-correcting codes, error correcting code",
            [
                ("error-correcting code", "error-correcting codes"),
                ("error-correcting code", "error correcting code"),
            ],
        ),
        ("information_theory", "Kraft's inequality", [("Kraft inequality", "Kraft's inequality")]),
        ("information_theory", "Entropies of sources", [("entropy", "Entropies")]),
    ],
)
def test_english_inflections_and_variants_match(
    index: TermIndex, discipline: str, text: str, expected: list[tuple[str, str]]
) -> None:
    assert terms_in(index, discipline, text) == expected


def test_verb_forms_normalize_to_one_key() -> None:
    assert (
        token_key("encoded") == token_key("encoding") == token_key("encodes") == token_key("encode")
    )
    assert token_key("filtered") == token_key("filtering") == token_key("filters")
    assert token_key("embedded") == token_key("embedding")
    assert token_key("addresses") == token_key("address")
    assert token_key("analysis") == "analysis"


def test_acronyms_are_case_sensitive(index: TermIndex) -> None:
    assert token_key("CRCs") == "CRC"
    assert token_key("IPv6") == "IPv6"
    assert terms_in(index, "signal_processing", "The SNR is 20 dB.") == [
        ("signal-to-noise ratio", "SNR"),
        ("decibel", "dB"),
    ]
    assert terms_in(index, "signal_processing", "snr and db") == []
    # "AS" (autonomous system) never matches the English word "as".
    assert terms_in(index, "computer_networks", "as fast as possible") == []
    assert terms_in(index, "computer_networks", "each AS runs BGP") == [
        ("autonomous system", "AS"),
        ("Border Gateway Protocol", "BGP"),
    ]


def test_matches_do_not_cross_sentence_punctuation(index: TermIndex) -> None:
    assert terms_in(index, "computer_networks", "a three-way. Handshake") == []
    assert terms_in(index, "computer_networks", "three-way handshake") == [
        ("three-way handshake", "three-way handshake")
    ]


def test_mixed_text_keeps_the_longer_overlapping_match(index: TermIndex) -> None:
    text = "使用 Transformer模型 和 k-means 聚类"
    assert terms_in(index, "data_science", text) == [
        ("Transformer architecture", "Transformer模型"),
        ("k-means clustering", "k-means"),
        ("clustering", "聚类"),
    ]


# -- coverage score -------------------------------------------------------------------------------


def test_score_is_distinct_terms_per_100_tokens_saturating() -> None:
    glossary = Glossary(
        discipline="x",
        entries=(
            GlossaryEntry(en="router", zh="路由器"),
            GlossaryEntry(en="switch", zh="交换机"),
        ),
    )
    matcher = TermMatcher(glossary, target_density=DEFAULT_TARGET_DENSITY)
    words = " ".join(["word"] * 38)
    # 40 tokens, one distinct term used twice: density 100 * 1 / 40 = 2.5 -> score 2.5 / 5.
    coverage = matcher.coverage(f"router {words} routers", language="en")
    assert coverage.tokens == 40
    assert coverage.distinct_terms == 1
    assert coverage.density == pytest.approx(2.5)
    assert coverage.score == pytest.approx(0.5)
    assert [(t, s) for t, s, _ in coverage.matched_terms] == [("router", 0), ("router", 197)]
    # Two distinct terms in a short text: the token floor keeps the density at 100 * 2 / 20.
    short = matcher.coverage("路由器和交换机", language="zh")
    assert short.tokens == pytest.approx(count_tokens("路由器和交换机"), abs=1e-3)
    assert count_tokens("路由器和交换机") == pytest.approx(7 / 1.5)
    assert short.density == pytest.approx(100 * 2 / MIN_TOKENS)
    assert short.score == 1.0


def test_term_coverage_function_uses_the_bundled_glossaries() -> None:
    on_topic = term_coverage(
        text="匹配滤波器使输出信噪比最大，常用于数字通信的最佳接收机。",
        discipline="communication_principles",
        language="zh",
    )
    off_topic = term_coverage(
        text="Bring a notebook and a pen; the lab opens at nine on Friday.",
        discipline="communication_principles",
        language="en",
    )
    assert on_topic.score > 0.5
    assert off_topic.score == 0.0
    assert off_topic.matched_terms == []


def test_unknown_discipline_and_language_are_errors(index: TermIndex) -> None:
    with pytest.raises(GlossaryError, match="no glossary for discipline 'astrology'"):
        index.coverage(text="x", discipline="astrology", language="en")
    with pytest.raises(GlossaryError, match="unknown language 'fr'"):
        index.coverage(text="x", discipline="data_science", language="fr")
