"""A text prepared for the structured detectors, and the context rules they share.

Detectors work on a *shadow* of the (normalized) text: the same length, with full-width ASCII
variants (``１３８``, ``：``, ``（``) and odd spaces folded to plain ASCII, so that offsets found in
the shadow are offsets in the original. Cue words are searched in its lower-case form.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ingest.governance.pii.config import PiiConfig
from ingest.governance.pii.model import PiiMatch

# Length-preserving folds: full-width ASCII variants (U+FF01-FF5E) to ASCII, ideographic and
# no-break spaces to a plain space, the full-width yen sign to the ASCII one.
_SHADOW_TABLE: dict[int, int] = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)}
_SHADOW_TABLE.update({0x3000: 0x20, 0x00A0: 0x20, 0x2002: 0x20, 0x2003: 0x20, 0x2009: 0x20})
_SHADOW_TABLE.update({0xFFE5: 0x00A5, 0x2010: 0x2D, 0x2011: 0x2D, 0x2013: 0x2D})
_ASCII_LOWER: dict[int, int] = {cp: cp + 32 for cp in range(ord("A"), ord("Z") + 1)}


@dataclass(frozen=True, slots=True)
class Scan:
    """One text prepared for the detectors: ``shadow`` (see the module notes) and its lower-case
    form, both exactly as long as the text."""

    shadow: str
    lower: str
    config: PiiConfig

    @classmethod
    def of(cls, text: str, config: PiiConfig) -> Scan:
        shadow = text.translate(_SHADOW_TABLE)
        return cls(shadow=shadow, lower=shadow.translate(_ASCII_LOWER), config=config)

    def cue_before(self, start: int, cues: tuple[str, ...], window: int) -> bool:
        """Whether a cue word labels the value starting at ``start``: it ends within ``window``
        characters before it, with no clause break or other value in between."""
        lo = max(0, start - window)
        return any(
            _gap_ok(self.lower[m.end() : start])
            for m in _cue_re(cues).finditer(self.lower, lo, start)
        )

    def cue_after(self, end: int, cues: tuple[str, ...], window: int) -> bool:
        """Whether a cue word follows the value ending at ``end`` within ``window`` characters, with
        no clause break or other value in between ("E12345678（护照）")."""
        hi = min(len(self.lower), end + window)
        return any(
            _gap_ok(self.lower[end : m.start()])
            for m in _cue_re(cues).finditer(self.lower, end, hi)
        )

    def last_cue_end(self, start: int, cues: tuple[str, ...], window: int) -> int:
        """Position just after the last cue word ending within ``window`` before ``start``, or
        -1."""
        lo = max(0, start - window)
        return max((m.end() for m in _cue_re(cues).finditer(self.lower, lo, start)), default=-1)


@functools.lru_cache(maxsize=64)
def _cue_re(cues: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern for a set of lower-case cue words; Latin cues must stand as words ("tel" is not
    in "hotel", "ip" not in "tip")."""
    parts = []
    for cue in sorted(cues, key=len, reverse=True):
        escaped = re.escape(cue)
        if cue[:1].isascii() and cue[:1].isalpha():
            escaped = r"(?<![a-z])" + escaped
        if cue[-1:].isascii() and cue[-1:].isalpha():
            escaped += r"(?![a-z])"
        parts.append(escaped)
    return re.compile("|".join(parts))


# Between a cue and its value: no clause break and no other number (which the cue would label
# instead, as in "学号：2021211001 班级：2021211301").
_GAP_BREAK = re.compile(r"[。；;！!？?\n，,]|[0-9]{4}")


def _gap_ok(gap: str) -> bool:
    return _GAP_BREAK.search(gap) is None


Detector = Callable[[Scan], Iterator[PiiMatch]]

_UNIT_AFTER = re.compile(
    r"\s?(?:[kKMGT]?(?:Hz|bps|bit|bits|b/s|B|iB|W)|bytes?|ms|ns|us|s|sec|seconds?|km|m|kg|dB|dBm"
    r"|元|块|次|个|位|比特|字节|赫兹|秒|米|人|条|分钟|小时|倍)(?![A-Za-z])",
    re.ASCII,
)
# ^ * × ÷ always make a formula; / + - only when set off by spaces ("x = 15012345678 / 1000"), since
# written without spaces they glue "+86 ..." prefixes and "13812345678/13912345678" lists.
_OPERATOR_BEFORE = re.compile(r"(?:[\^*×÷]|\s[/+\-]|[0-9)]\s*[+\-])\s*$")
_OPERATOR_AFTER = re.compile(r"\s*[\^*×÷]|\s+[/+\-]\s*[0-9(]")
_CURRENCY_BEFORE = re.compile(r"(?:[$¥€£]|rmb|usd|cny)\s*$")


def is_quantity(scan: Scan, start: int, end: int) -> bool:
    """Whether the number at ``[start, end)`` reads as a quantity or a term of a formula."""
    if _UNIT_AFTER.match(scan.shadow, end) or _OPERATOR_AFTER.match(scan.shadow, end):
        return True
    before = scan.lower[max(0, start - 6) : start]
    return bool(_OPERATOR_BEFORE.search(before) or _CURRENCY_BEFORE.search(before))


def digits(value: str) -> str:
    """The ASCII digits of ``value``, separators dropped."""
    return "".join(ch for ch in value if ch.isdigit())
