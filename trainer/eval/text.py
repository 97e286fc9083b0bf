"""Text normalisation and tokenisation shared by the metrics and the contamination check."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_SPACES = re.compile(r"\s+")
_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# One token per CJK character, one per run of letters/digits (any script but CJK).
_NGRAM_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}_]+")


def normalize(text: str) -> str:
    """NFKC (full-width letters, digits and punctuation become their ASCII forms), case-folded,
    whitespace collapsed to single spaces."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


@lru_cache(maxsize=1)
def _jieba() -> object:
    import logging
    import warnings

    with warnings.catch_warnings():  # its regexes have invalid escapes (harmless)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", SyntaxWarning)
        import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def jieba_tokens(text: str) -> list[str]:
    """Chinese words (jieba, accurate mode) of the normalised text, without whitespace or
    punctuation-only tokens."""
    jieba = _jieba()
    words = jieba.cut(normalize(text))  # type: ignore[attr-defined]
    return [w for w in words if w.strip() and not _punctuation_only(w)]


def _punctuation_only(token: str) -> bool:
    return all(unicodedata.category(c)[0] in "PSZ" for c in token)


def ngram_tokens(text: str) -> list[str]:
    """Tokens for n-gram overlap: each CJK character is one token, each run of other letters or
    digits (an English word, a number) is one token; punctuation and spaces are dropped."""
    return _NGRAM_TOKEN.findall(normalize(text))
