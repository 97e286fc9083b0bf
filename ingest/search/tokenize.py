"""The terms of a text, with where they are.

One rule for every record and query, whatever its language, so that lexical search works across
both: runs of CJK characters are cut into words by jieba in its search mode (which also yields
the shorter words inside a long one: ``信息论`` gives ``信息``, ``信息论``), runs of Latin letters
and digits are words, lowercased. Function words of either language are dropped: they match
everything and would only add spans nobody asked for.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

_WORD_OR_CJK = re.compile(
    "(?P<cjk>["
    "\u3040-\u30ff"
    "\u3400-\u4dbf"
    "\u4e00-\u9fff"
    "\uf900-\ufaff"
    "\U00020000-\U0003134f"
    "]+)|(?P<word>[A-Za-z0-9\u00c0-\u024f]+)"
)

STOPWORDS = frozenset(
    (
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "how",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "this",
        "to",
        "was",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "的",
        "了",
        "是",
        "在",
        "和",
        "与",
        "及",
        "或",
        "也",
        "都",
        "就",
        "而",
        "并",
        "其",
        "之",
        "为",
        "对",
        "把",
        "被",
        "从",
        "到",
        "以",
        "于",
        "中",
        "上",
        "下",
        "个",
        "一",
        "这",
        "那",
        "有",
        "吗",
        "呢",
        "什么",
        "怎么",
        "如何",
        "为什么",
        "哪些",
        "一个",
        "我们",
        "你",
        "我",
        "他",
        "她",
        "它",
        "请",
        "说明",
        "简述",
        "解释",
    )
)
"""Words dropped from documents and queries (task verbs such as 解释 and 简述 start most
instructions of a discipline and tell nothing about the topic)."""

_JIEBA_LOCK = threading.Lock()
_jieba_ready = False


@dataclass(frozen=True, slots=True)
class Term:
    """A term of a text and its character offsets ``[start, end)`` in that text."""

    text: str
    start: int
    end: int


def _jieba() -> object:
    """jieba, with its dictionary loaded once per process (and its start-up notices quiet)."""
    global _jieba_ready
    import jieba

    if not _jieba_ready:
        with _JIEBA_LOCK:
            if not _jieba_ready:
                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _jieba_ready = True
    return jieba


def terms(text: str) -> Iterator[Term]:
    """Every term of ``text``, in order (jieba's search mode may yield overlapping terms)."""
    jieba = _jieba()
    for match in _WORD_OR_CJK.finditer(text):
        if match.lastgroup == "word":
            word = match.group().lower()
            if word not in STOPWORDS:
                yield Term(word, match.start(), match.end())
            continue
        base = match.start()
        for word, start, end in jieba.tokenize(match.group(), mode="search"):  # type: ignore[attr-defined]
            if word not in STOPWORDS:
                yield Term(word, base + start, base + end)


def term_list(text: str) -> list[str]:
    """The terms of ``text`` as strings, in order (what BM25 counts)."""
    return [term.text for term in terms(text)]


def matching_spans(text: str, wanted: frozenset[str]) -> list[tuple[int, int]]:
    """The ``[start, end)`` offsets in ``text`` of the terms in ``wanted``, merged where they
    overlap, in order."""
    spans: list[tuple[int, int]] = []
    for term in terms(text):
        if term.text not in wanted:
            continue
        if spans and term.start < spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], term.end))
        else:
            spans.append((term.start, term.end))
    return spans
