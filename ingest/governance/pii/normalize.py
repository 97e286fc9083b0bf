"""The normalized view of a text that PII detection reads, and the map from it back to the text.

Personal data is easy to hide from patterns without hiding it from a reader: a zero-width space or
a soft hyphen inside a phone number, Arabic-Indic or mathematical-bold digits, ``name [at] domain
[dot] com``, a Cyrillic ``а`` inside an e-mail address. Detection therefore runs on a *view* of the
text in which these are undone (see :func:`normalize`), and every span found in the view is mapped
back to the original characters it was built from, so that a redaction removes exactly the
original value, the invisible characters inside it included, and leaves everything around it as it
was.

The view is built character by character: for each character of the view, ``starts[i]`` and
``ends[i]`` delimit the original characters it stands for. A character removed from the view
(a format character, say) has no entry; it is covered by any span that covers characters on both
sides of it.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ingest.governance.pii.model import PiiMatch
from ingest.governance.pii.obfuscation import REWRITES

# Default-ignorable code points that are not of category Cf (which is removed as a whole): the
# combining grapheme joiner, Hangul fillers, Khmer inherent vowels, Mongolian free variation
# selectors, variation selectors. None of them is visible; all of them break a pattern.
_IGNORABLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x034F, 0x034F),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)

# Explicit bidi formatting characters (all of category Cf). Between an RLO and its PDF, characters
# are displayed right to left, so a value can be stored reversed and still read correctly.
RLO = "\u202e"
_BIDI_PUSH = frozenset("\u202a\u202b\u202d\u202e\u2066\u2067\u2068")
_BIDI_POP = frozenset("\u202c\u2069")
_PARAGRAPH_END = frozenset("\n\r\u2029\x1c\x1d\x1e\x85")


def _is_ignorable(ch: str) -> bool:
    cp = ord(ch)
    return any(lo <= cp <= hi for lo, hi in _IGNORABLE_RANGES)


@functools.lru_cache(maxsize=8192)
def fold_char(ch: str) -> str:
    """What one character becomes in the view: ``""`` for format characters (zero-width spaces and
    joiners, the word joiner, the soft hyphen, bidi controls, BOM...) and other default-ignorable
    ones; the ASCII digit for any Unicode decimal digit (``٣``, ``۳``, ``३``, ``𝟑``, ``３``); the
    NFKC form otherwise (``＠`` -> ``@``, ``ｅ`` -> ``e``, no-break space -> space).

    Characters whose NFKC form holds a digit but that are not decimal digits (``²``, ``①``,
    ``⑴``) stay: folded alone they would glue list markers and exponents to the numbers next to
    them. :mod:`~ingest.governance.pii.obfuscation` maps them inside digit runs instead.
    """
    if ch.isascii():
        return ch
    if unicodedata.category(ch) == "Cf" or _is_ignorable(ch):
        return ""
    value = unicodedata.decimal(ch, None)
    if value is not None:
        return str(value)
    folded = unicodedata.normalize("NFKC", ch)
    if folded != ch and any(c.isdigit() for c in folded):
        return ch
    return folded


def _is_mark(ch: str) -> bool:
    return unicodedata.category(ch) in ("Mn", "Me")


@dataclass(frozen=True, slots=True)
class NormalizedText:
    """A view of a text: ``text``, and for each of its characters the original span
    ``[starts[i], ends[i])`` it stands for. ``monotone`` is false when the view reorders
    characters (see :func:`visual_order`)."""

    text: str
    starts: Sequence[int]
    ends: Sequence[int]
    monotone: bool = True

    @classmethod
    def identity(cls, text: str) -> NormalizedText:
        """The view of ``text`` that is ``text`` itself."""
        return cls(text, range(len(text)), range(1, len(text) + 1))

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """The smallest original span covering every character that ``text[start:end]`` (a
        non-empty range) was built from."""
        if not 0 <= start < end <= len(self.text):
            raise ValueError("a span of the view needs 0 <= start < end <= len(view)")
        if self.monotone:
            return self.starts[start], self.ends[end - 1]
        return min(self.starts[start:end]), max(self.ends[start:end])

    def to_original(self, match: PiiMatch) -> PiiMatch:
        """``match`` (offsets into the view) with offsets into the original text."""
        start, end = self.original_span(match.start, match.end)
        return PiiMatch(start, end, match.type)

    def rewrite(self, edits: Iterable[tuple[int, int, str]]) -> NormalizedText:
        """This view with each ``text[start:end]`` replaced; the spans of ``edits`` are non-empty,
        sorted and do not overlap. Every character of a replacement stands for all the original
        characters of the span it replaces; an empty replacement removes the span from the view."""
        chars: list[str] = []
        starts: list[int] = []
        ends: list[int] = []
        cursor = 0
        changed = False
        for start, end, replacement in edits:
            if start < cursor or end <= start:
                raise ValueError("edits must replace non-empty, sorted, non-overlapping spans")
            if self.text[start:end] == replacement:
                continue
            changed = True
            chars.append(self.text[cursor:start])
            starts.extend(self.starts[cursor:start])
            ends.extend(self.ends[cursor:start])
            if replacement:
                lo, hi = self.original_span(start, end)
                chars.append(replacement)
                starts.extend([lo] * len(replacement))
                ends.extend([hi] * len(replacement))
            cursor = end
        if not changed:
            return self
        chars.append(self.text[cursor:])
        starts.extend(self.starts[cursor:])
        ends.extend(self.ends[cursor:])
        return NormalizedText("".join(chars), starts, ends, self.monotone)


# Characters that every fold leaves as they are: ASCII, the CJK Unified Ideographs and the CJK
# punctuation that NFKC keeps. Runs of them are copied whole, which makes folding Chinese cheap.
_STABLE_RUN = re.compile(
    "[\x00-\x7f\u4e00-\u9fff\u3001-\u3003\u3008-\u3011\u3014-\u301f\u2018\u2019\u201c\u201d]+"
)


def fold_text(text: str, *, visual: bool = False) -> NormalizedText:
    """The character-level view of ``text``: :func:`fold_char` applied to each character, and
    combining marks after an ASCII character dropped (they stay part of that character's span).
    With ``visual``, characters between a right-to-left override and its closing mark (or the end
    of the paragraph) appear in the order they are displayed in, that is reversed."""
    if text.isascii():
        return NormalizedText.identity(text)
    if visual:
        return _fold_visual(text)
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    cursor = 0
    last = ""  # the last character of the view so far
    for run in _STABLE_RUN.finditer(text):
        last = _fold_each(text, cursor, run.start(), pieces, starts, ends, last)
        pieces.append(run.group(0))
        starts.extend(range(run.start(), run.end()))
        ends.extend(range(run.start() + 1, run.end() + 1))
        cursor, last = run.end(), run.group(0)[-1]
    _fold_each(text, cursor, len(text), pieces, starts, ends, last)
    return NormalizedText("".join(pieces), starts, ends)


def _fold_each(
    text: str,
    start: int,
    end: int,
    pieces: list[str],
    starts: list[int],
    ends: list[int],
    last: str,
) -> str:
    """Folds ``text[start:end]`` character by character onto the view; returns its new last
    character."""
    for i in range(start, end):
        ch = text[i]
        folded = fold_char(ch)
        if not folded:
            continue
        if last and last.isascii() and folded == ch and _is_mark(ch):
            ends[-1] = i + 1
            continue
        pieces.append(folded)
        starts.extend([i] * len(folded))
        ends.extend([i + 1] * len(folded))
        last = folded[-1]
    return last


def _fold_visual(text: str) -> NormalizedText:
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    override_from = -1  # index in the view where the current RLO run starts, or -1
    depth = 0

    def close_override() -> None:
        nonlocal override_from, depth
        if override_from >= 0:
            chars[override_from:] = chars[override_from:][::-1]
            starts[override_from:] = starts[override_from:][::-1]
            ends[override_from:] = ends[override_from:][::-1]
        override_from, depth = -1, 0

    for i, ch in enumerate(text):
        if override_from >= 0:
            if ch in _BIDI_PUSH:
                depth += 1
            elif ch in _BIDI_POP:
                depth -= 1
                if depth == 0:
                    close_override()
            elif ch in _PARAGRAPH_END:
                close_override()
        elif ch == RLO:
            override_from, depth = len(chars), 1
        folded = fold_char(ch)
        if not folded:
            continue
        if chars and chars[-1].isascii() and folded == ch and _is_mark(ch):
            ends[-1] = i + 1
            continue
        for out in folded:
            chars.append(out)
            starts.append(i)
            ends.append(i + 1)
    close_override()
    return NormalizedText("".join(chars), starts, ends, monotone=False)


def normalize(text: str, *, visual: bool = False) -> NormalizedText:
    """The view of ``text`` that detection reads: :func:`fold_text`, then the rewrites of
    :mod:`~ingest.governance.pii.obfuscation` (digit runs in Chinese numerals or enclosed digits,
    confusable letters, spelled-out e-mail addresses)."""
    view = fold_text(text, visual=visual)
    for rewrite in REWRITES:
        view = view.rewrite(rewrite(view.text))
    return view


def visual_order(text: str) -> NormalizedText | None:
    """The view of ``text`` in display order, or ``None`` when no right-to-left override makes it
    differ from :func:`normalize`."""
    if RLO not in text:
        return None
    return normalize(text, visual=True)


def map_back(view: NormalizedText, matches: Iterable[PiiMatch]) -> list[PiiMatch]:
    """``matches`` found in ``view``, with offsets into the original text."""
    if isinstance(view.starts, range):
        return list(matches)
    return [view.to_original(m) for m in matches]
