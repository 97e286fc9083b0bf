"""Cheap, deterministic language identification for the canonical ``language`` field.

The rule compares CJK characters with Latin *words*, because one Chinese character carries roughly
as much as half an English word: a Chinese answer that names ``TCP`` or ``FFT`` stays ``zh``, an
English answer that quotes ``信息熵`` stays ``en``.

    cjk    = number of CJK characters (Han ideographs, kana, Hangul)
    words  = number of runs of two or more Latin letters (``[A-Za-z]`` plus Latin-1/Extended-A
             letters); a single letter is a symbol in a formula (``x``, ``H(z)``), not a word
    share  = cjk / (cjk + 2 * words)

    share >= ZH_MIN_SHARE (0.6)  -> zh
    share <= EN_MAX_SHARE (0.2)  -> en
    otherwise                    -> mixed

A text without any CJK character is ``en`` (also one made only of digits and symbols). Typed
placeholders left by desensitization (``[PHONE]``, ``[STUDENT_ID]``) are ignored, so the language of
a redacted record is the language of its own text and can be recomputed from the stored record.
"""

from __future__ import annotations

import re

from ingest.records import Language

ZH_MIN_SHARE = 0.6
EN_MAX_SHARE = 0.2
LATIN_WORD_WEIGHT = 2

_PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]*\]")
_CJK = re.compile(
    "["
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uac00-\ud7af"  # Hangul syllables
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\U00020000-\U0003134f"  # CJK extensions B-G
    "]"
)
_LATIN_LETTER = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u017f"
_LATIN_WORD = re.compile(f"[{_LATIN_LETTER}]{{2,}}")


def language_shares(text: str) -> tuple[int, int]:
    """``(cjk_characters, latin_words)`` counted in ``text``, placeholders excluded."""
    text = _PLACEHOLDER.sub(" ", text)
    return len(_CJK.findall(text)), len(_LATIN_WORD.findall(text))


def detect_language(*texts: str) -> Language:
    """The language of the given texts taken together (see the module docstring for the rule)."""
    cjk = 0
    words = 0
    for text in texts:
        c, w = language_shares(text)
        cjk += c
        words += w
    if cjk == 0:
        return Language.EN
    share = cjk / (cjk + LATIN_WORD_WEIGHT * words)
    if share >= ZH_MIN_SHARE:
        return Language.ZH
    if share <= EN_MAX_SHARE:
        return Language.EN
    return Language.MIXED
