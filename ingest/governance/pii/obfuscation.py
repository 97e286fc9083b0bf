"""Rewrites that undo common obfuscations of personal data in the normalized view.

Each rewrite reads the view built so far and returns edits ``(start, end, replacement)``, sorted and
non-overlapping, that :meth:`~ingest.governance.pii.normalize.NormalizedText.rewrite` applies. They
run in the order of :data:`REWRITES`, after the character folds of
:func:`~ingest.governance.pii.normalize.fold_text`:

1. :func:`digit_runs`: Chinese numerals (一三八..., 〇, 幺, 壹贰叁...) and enclosed or superscript
   digits (①, ¹) become ASCII digits, but only inside a run of at least
   :data:`MIN_DIGIT_RUN` digits, the length of a phone or ID number, so "一一对应" or "x²" stay.
2. :func:`mixed_script_words`: in a word that mixes ASCII letters with Greek or Cyrillic ones
   (``jоhn`` with a Cyrillic ``о``), those letters become their Latin look-alike (or ``x``).
3. :func:`spelled_emails`: ``name [at] domain [dot] com``, ``name(at)domain(dot)com``, ``name AT
   domain DOT com``, ``name 艾特 domain 点 com``... become ``name@domain.com`` when the result has a
   known top-level domain. A bare " at " counts only with a spelled-out dot after it, so "look at
   example.com" stays as it is.
4. :func:`email_runs`: in the characters around an ``@``, any other non-ASCII letter becomes its
   look-alike, its base letter or ``x``, so that the detector sees the whole address.

Only detection reads the view; the rewrites never change what is stored, only what is found.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from ingest.governance.pii.validators import known_tld

Edit = tuple[int, int, str]
Rewrite = Callable[[str], list[Edit]]

# ---------------------------------------------------------------------------------------------
# Digit runs
# ---------------------------------------------------------------------------------------------

MIN_DIGIT_RUN = 7
"""Digits a run needs before its Chinese numerals or enclosed digits are read as digits: a local
landline number has 7 or 8, a mobile 11, a resident ID 18."""

_ZH_DIGITS: dict[str, str] = {
    **dict.fromkeys("〇零", "0"),
    **dict.fromkeys("一幺壹", "1"),
    **dict.fromkeys("二贰貳", "2"),
    **dict.fromkeys("三叁參", "3"),
    **dict.fromkeys("四肆", "4"),
    **dict.fromkeys("五伍", "5"),
    **dict.fromkeys("六陆陸", "6"),
    **dict.fromkeys("七柒", "7"),
    **dict.fromkeys("八捌", "8"),
    **dict.fromkeys("九玖", "9"),
}
# Single-digit characters that are not decimal digits: superscripts and subscripts, circled,
# parenthesized and dotted digits (their digit value comes from unicodedata.digit).
_OTHER_DIGITS = (
    "\u00b2\u00b3\u00b9\u2070\u2074-\u2079\u2080-\u2089\u2460-\u2468\u2474-\u247c\u2488-\u2490"
    "\u24ea\u24f5-\u24fd\u24ff\u2776-\u277e\u2780-\u2788\u278a-\u2792\U0001f100-\U0001f10a"
)
_DIGIT_LIKE = "0-9" + "".join(_ZH_DIGITS) + _OTHER_DIGITS
_DIGIT_RUN = re.compile(f"[{_DIGIT_LIKE}](?:[ \\-]?[{_DIGIT_LIKE}])*")
_DIGIT_CHAR = re.compile(f"[{_DIGIT_LIKE}]")
_NON_ASCII_DIGIT = re.compile(f"[{''.join(_ZH_DIGITS)}{_OTHER_DIGITS}]")


def _digit_of(ch: str) -> str:
    if ch.isascii():
        return ch
    return _ZH_DIGITS.get(ch) or str(unicodedata.digit(ch))


def _is_marked_ascii_number(run: str) -> bool:
    """Whether ``run`` is an ASCII number with at most one such character against each end: a list
    marker, an exponent or a word ("①13812345678 ②", "2023616369三位同学"), not its digits."""
    start = 1 if not run[0].isascii() and run[1:2].isascii() else 0
    end = len(run) - 1 if not run[-1].isascii() and run[-2:-1].isascii() else len(run)
    return run[start:end].isascii()


def digit_runs(text: str) -> list[Edit]:
    """Chinese numerals and enclosed digits inside runs of at least :data:`MIN_DIGIT_RUN` digits
    (spaces or hyphens may separate groups), each mapped to its ASCII digit."""
    if _NON_ASCII_DIGIT.search(text) is None:
        return []
    edits: list[Edit] = []
    for m in _DIGIT_RUN.finditer(text):
        base, run = m.start(), m.group(0)
        if len(_DIGIT_CHAR.findall(run)) < MIN_DIGIT_RUN or _is_marked_ascii_number(run):
            continue
        edits.extend(
            (base + i, base + i + 1, _digit_of(ch))
            for i, ch in enumerate(run)
            if not ch.isascii() and _DIGIT_CHAR.match(ch)
        )
    return edits


# ---------------------------------------------------------------------------------------------
# Confusable letters
# ---------------------------------------------------------------------------------------------

CONFUSABLES: dict[str, str] = {
    **dict(  # Cyrillic
        zip(
            "аеёіїјкорсухѕһԁԛԝӏьпАВЕІЈКМНОРСТУХЅԀԚԜӀ",
            "aeeiijkopcyxshdqwlbnABEIJKMHOPCTYXSDQWI",
            strict=True,
        )
    ),
    **dict(zip("αβγεικνορτυχωϲϳΑΒΕΖΗΙΚΜΝΟΡΤΥΧϹ", "abyeikvoptuxwcjABEZHIKMNOPTYXC", strict=True)),
    **dict(zip("ıȷɑɡɩʏ", "ijagiy", strict=True)),  # Latin letters outside ASCII
}
"""Letters of other scripts that look like an ASCII letter, and that letter."""

_GREEK_CYRILLIC = "\u0370-\u03ff\u0400-\u052f"
_WORD = re.compile(f"[A-Za-z0-9\u00c0-\u024f{_GREEK_CYRILLIC}]+")
_FOREIGN_LETTER = re.compile(f"[{_GREEK_CYRILLIC}{''.join(CONFUSABLES)}]")
_ASCII_LETTER = re.compile("[A-Za-z]")


def _ascii_letter(ch: str) -> str:
    """A look-alike, the base letter (``é`` -> ``e``) or ``x``."""
    if ch in CONFUSABLES:
        return CONFUSABLES[ch]
    base = unicodedata.normalize("NFKD", ch)[:1]
    return base if base.isascii() and base.isalpha() else "x"


def mixed_script_words(text: str) -> list[Edit]:
    """The Greek and Cyrillic letters (and other look-alikes) of words that also hold ASCII
    letters, each mapped to its ASCII look-alike or ``x``. Words wholly in one script stay."""
    if _FOREIGN_LETTER.search(text) is None:
        return []
    edits: list[Edit] = []
    for word in _WORD.finditer(text):
        value = word.group(0)
        if value.isascii() or not _ASCII_LETTER.search(value):
            continue
        edits.extend(
            (word.start() + m.start(), word.start() + m.end(), _ascii_letter(m.group(0)))
            for m in _FOREIGN_LETTER.finditer(value)
        )
    return edits


_LOCAL_CHARS = f"A-Za-z0-9._%+\\-\u00c0-\u024f{_GREEK_CYRILLIC}"
_EMAIL_RUN = re.compile(
    f"(?<![{_LOCAL_CHARS}])[{_LOCAL_CHARS}]++@[A-Za-z0-9.\\-\u00c0-\u024f{_GREEK_CYRILLIC}]+"
)
_NON_ASCII_LETTER = re.compile(f"[\u00c0-\u024f{_GREEK_CYRILLIC}]")


def email_runs(text: str) -> list[Edit]:
    """The non-ASCII letters around an ``@`` (``почта.ivan@mail.com``, ``josé@mail.com``), each
    mapped to an ASCII letter, so that an address is found whole or not at all."""
    if "@" not in text:
        return []
    edits: list[Edit] = []
    for run in _EMAIL_RUN.finditer(text):
        if run.group(0).isascii():
            continue
        edits.extend(
            (run.start() + m.start(), run.start() + m.end(), _ascii_letter(m.group(0)))
            for m in _NON_ASCII_LETTER.finditer(run.group(0))
            if m.group(0).isalpha()
        )
    return edits


# ---------------------------------------------------------------------------------------------
# Spelled-out e-mail addresses
# ---------------------------------------------------------------------------------------------

_H = "[ \\t]"
_OPEN = "[\\[({<【〔「『〈《]"
_CLOSE = "[\\])}>】〕」』〉》]"
_AT_BRACKETED = f"{_H}*{_OPEN}{_H}*(?:at|@|艾特|爱特){_H}*{_CLOSE}{_H}*"
_AT_ZH = f"{_H}*(?:艾特|爱特|圈a){_H}*"
_AT_SPACED = f"{_H}*@{_H}*"
_AT_WORD = f"{_H}+at{_H}+"
_DOT_BRACKETED = f"{_H}*{_OPEN}{_H}*(?:dot|\\.|点|。){_H}*{_CLOSE}{_H}*"
_DOT_WORD = f"{_H}+dot{_H}+"
_DOT_ZH = f"{_H}*[点。]{_H}*"
_AT = f"(?:{_AT_BRACKETED}|{_AT_ZH}|{_AT_SPACED}|{_AT_WORD})"
_DOT = f"(?:{_DOT_BRACKETED}|{_DOT_WORD}|{_DOT_ZH}|\\.)"
_LOCAL_ATOM = "[A-Za-z0-9_%+\\-]++"
_LABEL = "[A-Za-z0-9](?:[A-Za-z0-9\\-]{0,61}[A-Za-z0-9])?"
# Repetitions are bounded and atoms possessive, so that no text makes the search quadratic.
_SPELLED_EMAIL = re.compile(
    f"(?<![A-Za-z0-9._%+\\-]){_LOCAL_ATOM}(?:{_DOT}{_LOCAL_ATOM}){{0,8}}{_AT}{_LABEL}"
    f"(?:{_DOT}{_LABEL}){{1,8}}(?![A-Za-z0-9\\-])",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(f"(?P<at>{_AT})|(?P<dot>{_DOT})", re.IGNORECASE)
_BARE_AT = re.compile(_AT_WORD, re.IGNORECASE)


def _spelled_email(text: str, start: int, end: int) -> tuple[list[Edit], int] | None:
    """The edits that turn ``text[start:end]`` (a match of the spelled-out pattern) into a plain
    address and where the address ends, or ``None`` when it is no address (no known top-level
    domain, nothing spelled out, a bare " at " without a spelled-out dot after it)."""
    separators = list(_SEPARATOR.finditer(text, start, end))
    at = next((i for i, s in enumerate(separators) if s.group("at") is not None), None)
    if at is None:
        return None
    # Labels after the "@": keep them up to the last one that is a known top-level domain.
    label_starts = [s.end() for s in separators[at:]]
    label_ends = [s.start() for s in separators[at + 1 :]] + [end]
    last = max(
        (
            i
            for i in range(1, len(label_starts))
            if known_tld(text[label_starts[i] : label_ends[i]])
        ),
        default=None,
    )
    if last is None:
        return None
    kept = separators[: at + 1 + last]
    if all(s.group(0) in ("@", ".") for s in kept):
        return None
    if _BARE_AT.fullmatch(kept[at].group(0)) and all(s.group(0) == "." for s in kept[at + 1 :]):
        return None
    edits = [(s.start(), s.end(), "@" if s.group("at") is not None else ".") for s in kept]
    return edits, label_ends[last]


# Something spelled out that every rewritten address has (a bare " at " needs a spelled-out dot).
_HINT = re.compile(
    f"{_OPEN}{_H}*(?:at|dot|@|\\.|点|。){_H}*{_CLOSE}|艾特|爱特|圈a|{_H}@|@{_H}|{_H}dot{_H}"
    f"|[点。]{_H}*[A-Za-z]",
    re.IGNORECASE,
)


def spelled_emails(text: str) -> list[Edit]:
    """The spelled-out separators of e-mail addresses (``[at]``, ``(dot)``, `` AT ``, ``艾特``,
    ``点``...), each rewritten as ``@`` or ``.``."""
    if _HINT.search(text) is None:
        return []
    edits: list[Edit] = []
    pos = 0
    while (m := _SPELLED_EMAIL.search(text, pos)) is not None:
        found = _spelled_email(text, m.start(), m.end())
        if found is None:
            pos = m.start() + 1
            continue
        edits.extend(found[0])
        pos = found[1]
    return edits


REWRITES: tuple[Rewrite, ...] = (digit_runs, mixed_script_words, spelled_emails, email_runs)
"""The rewrites of the normalized view, in the order they run."""
