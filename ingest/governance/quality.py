"""Paragraph-level quality flags for a record, each with a character span a reviewer can highlight.

Every check is a pure function of the record's text and a :class:`QualityLimits`, and reports
:class:`~ingest.governance.flags.QualityFlag` objects (offsets, codes and severities are defined in
:mod:`ingest.governance.flags`); whether a flag rejects the record is the decision policy's
business (:mod:`ingest.governance.policy`), which also sets the flag's severity.

Checks (field in brackets):

- ``too_short`` / ``too_long`` (output): length in units: non-space characters (zh), words (en),
  CJK characters plus Latin words (mixed).
- ``repetitive`` (output): share of n-grams (characters for zh, words for en) that repeat an
  earlier one; the span is the longest run of repeated text.
- ``garbled`` (every field): mojibake (``Ã©``, ``锟斤拷``, ``ï¿½``), U+FFFD, control characters,
  or a high share of unusual symbols (private use, unassigned, emoji).
- ``unbalanced_markup`` (every field): brackets ``() [] {} （） 【】``, formula delimiters
  ``$ $$ \\( \\) \\[ \\]`` and code fences, each at the offending offset. Interval notation
  (``[0, 1)``), list markers (``1)``) and currency (``$5``) are not markup.
- ``truncated`` (output): ends with an ellipsis, a comma-like mark, a dangling connective, or
  prose without terminal punctuation; the span is the last sentence.
- ``logic_break`` (output): the output opens with a consequence connective (因此, 所以, 综上,
  therefore, thus, hence ...) with no premise before it; the span is the connective.

A multi-turn record's system prompt and earlier turns are fields too (``system``,
``history[i][0]`` for the user, ``history[i][1]`` for the assistant): ``garbled`` and
``unbalanced_markup`` read every one of them, and each earlier assistant answer is also checked for
``repetitive`` and ``truncated``, because the trainer learns every assistant turn. Length and
``logic_break`` stay with the final output: an earlier answer may be a short reply ("Yes, exactly:
…") and may open with "so", its premise being the turn before it.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ingest.governance.flags import FlagCode, QualityFlag, field_rank

if TYPE_CHECKING:
    from spacy.language import Language as SpacyLanguage

MAX_FLAGS_PER_CODE = 5
"""At most this many flags of one code per field: enough to show a reviewer the pattern."""


@dataclass(frozen=True, slots=True)
class QualityLimits:
    """Thresholds the checks need, resolved for one discipline and language by the policy."""

    min_length: int
    max_length: int
    max_repeat_ratio: float
    repeat_ngram: int
    max_unusual_symbol_ratio: float
    min_repeat_tokens: int = 8
    """Below this many tokens the repeat ratio is not meaningful and is reported as 0."""


@dataclass(frozen=True, slots=True)
class QualityAssessment:
    """What :meth:`QualityChecker.assess` found: the flags, and the output's length (in the units
    of its language) and repeated n-gram ratio."""

    flags: list[QualityFlag]
    length: int
    repeat_ratio: float


# ---------------------------------------------------------------------------------------------
# Units and tokens
# ---------------------------------------------------------------------------------------------

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_CHAR = re.compile(f"[{_CJK}]")
_WORD = re.compile(r"[A-Za-z0-9\u00c0-\u024f]+(?:['’][A-Za-z]+)?")
_PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]*\]")


def length_units(text: str, language: str) -> int:
    """Length of ``text`` in the unit of ``language``: non-space characters for ``zh``, words (runs
    of letters or digits) for ``en``, CJK characters plus Latin words for ``mixed``."""
    if language == "zh":
        return sum(1 for ch in text if not ch.isspace())
    words = len(_WORD.findall(text))
    if language == "en":
        return words
    return len(_CJK_CHAR.findall(text)) + words


def _tokens(text: str, language: str) -> list[tuple[str, int, int]]:
    """Tokens for repetition analysis, with offsets: CJK characters one by one plus lowercased
    Latin words (for ``en`` only the words)."""
    pattern = _WORD if language == "en" else re.compile(f"[{_CJK}]|{_WORD.pattern}")
    return [(m.group().lower(), m.start(), m.end()) for m in pattern.finditer(text)]


# ---------------------------------------------------------------------------------------------
# Repetition
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Repetition:
    """``ratio`` = repeated n-grams / all n-grams; ``span`` = the longest run of repeated text."""

    ratio: float
    span: tuple[int, int] | None


def repetition(text: str, *, language: str, n: int, min_tokens: int = 8) -> Repetition:
    """Share of the n-grams of ``text`` that repeat an earlier n-gram, and the character span of the
    longest contiguous run of tokens covered by such repeats."""
    tokens = _tokens(text, language)
    if len(tokens) < max(min_tokens, n + 1):
        return Repetition(0.0, None)
    grams = [tuple(t[0] for t in tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    seen: set[tuple[str, ...]] = set()
    repeated = [False] * len(tokens)
    repeats = 0
    for i, gram in enumerate(grams):
        if gram in seen:
            repeats += 1
            for j in range(i, i + n):
                repeated[j] = True
        else:
            seen.add(gram)
    best: tuple[int, int] | None = None
    run_start: int | None = None
    for i, flag in enumerate([*repeated, False]):
        if flag and run_start is None:
            run_start = i
        elif not flag and run_start is not None:
            if best is None or i - run_start > best[1] - best[0]:
                best = (run_start, i)
            run_start = None
    span = (tokens[best[0]][1], tokens[best[1] - 1][2]) if best else None
    return Repetition(repeats / len(grams), span)


# ---------------------------------------------------------------------------------------------
# Garbled text
# ---------------------------------------------------------------------------------------------

# UTF-8 read as Latin-1/cp1252: a lead byte shown as Â-ô followed by continuation bytes shown as
# U+0080-U+00BF or the cp1252 punctuation they map to.
_CONT = (
    "\u0080-\u00bf\u20ac\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152"
    "\u017d\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u017e\u0178"
)
_MOJIBAKE = re.compile(
    "锟斤拷|烫烫烫|屯屯屯|ï¿½|�"  # double-decoded U+FFFD
    f"|(?:[\u00c2-\u00df][{_CONT}]|[\u00e0-\u00ef][{_CONT}]{{2}}){{2,}}"
    f"|[ÃÂ][{_CONT}]"
)
_CONTROL_OK = frozenset("\t\n\r")
_USUAL_SYMBOLS = re.compile(
    "[\u2190-\u21ff\u2460-\u24ff\u2500-\u257f\u00a9\u00ae\u2122\u00b0\u2713\u2714]"
)


def _is_unusual(ch: str) -> bool:
    """A character that rarely appears in course material: private use, unassigned, surrogates,
    emoji and other pictographic symbols (arrows, circled numbers, box drawing, ©®™° are usual)."""
    cat = unicodedata.category(ch)
    if cat in ("Co", "Cn", "Cs"):
        return True
    return cat == "So" and not _USUAL_SYMBOLS.match(ch)


def _garbled_spans(text: str, max_unusual_ratio: float) -> list[tuple[int, int, str]]:
    spans = [
        (m.start(), m.end(), "mojibake (text decoded with the wrong encoding)")
        for m in _MOJIBAKE.finditer(text)
    ]
    for i, ch in enumerate(text):
        if unicodedata.category(ch) == "Cc" and ch not in _CONTROL_OK:
            spans.append((i, i + 1, f"control character U+{ord(ch):04X}"))
    spans.extend(_gibberish_spans(text))
    visible = [i for i, ch in enumerate(text) if not ch.isspace()]
    unusual = [i for i in visible if _is_unusual(text[i])]
    if len(unusual) >= 3 and len(unusual) / max(len(visible), 1) > max_unusual_ratio:
        share = len(unusual) / len(visible)
        spans.append((unusual[0], unusual[-1] + 1, f"{share:.0%} unusual symbols"))
    return _merge(spans)


_WS_TOKEN = re.compile(r"\S+")


def _gibberish_spans(text: str) -> list[tuple[int, int, str]]:
    """Random character strings (``qZ8#vL0!mN2@``): at least half of the whitespace-separated
    tokens (five or more) mix lowercase, uppercase and digits and switch between them at least
    three times (a lowercase letter followed by a capital, or a letter next to a digit). Formulas
    and identifiers (``log2(1+S/N)``, ``IPv6``, ``e^{j2πf}``) switch far less often."""
    tokens = [m for m in _WS_TOKEN.finditer(text) if len(m.group()) >= 4]
    if len(tokens) < 5:
        return []
    noisy = [m for m in tokens if _switches(m.group()) >= 3]
    if len(noisy) * 2 < len(tokens):
        return []
    return [(noisy[0].start(), noisy[-1].end(), f"random characters in {len(noisy)} tokens")]


def _switches(token: str) -> int:
    """Case flips (lower then upper) and letter/digit switches, for tokens that hold all three
    kinds of character; 0 otherwise."""
    if not (
        any(c.islower() for c in token)
        and any(c.isupper() for c in token)
        and any(c.isdigit() for c in token)
    ):
        return 0
    count = 0
    for a, b in itertools.pairwise(token):
        case_flip = a.islower() and b.isupper()
        if case_flip or (a.isalpha() and b.isdigit()) or (a.isdigit() and b.isalpha()):
            count += 1
    return count


def _merge(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Sort spans and merge overlapping or touching ones (keeping the first message)."""
    merged: list[tuple[int, int, str]] = []
    for start, end, message in sorted(spans):
        if merged and start <= merged[-1][1]:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], end), last[2])
        else:
            merged.append((start, end, message))
    return merged


# ---------------------------------------------------------------------------------------------
# Markup balance
# ---------------------------------------------------------------------------------------------

_FENCE = re.compile(r"^[ \t]*```", re.MULTILINE)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_CURRENCY = re.compile(r"\$\d[\d,]*(?:\.\d+)?(?=\s|$|[.,;:!?)])")
_MATH_TOKEN = re.compile(r"\\\$|\$\$|\$|\\\(|\\\)|\\\[|\\\]")
# Interval notation such as [0, 1) or (0, T] and list markers such as "1)" or "a)" at the start of
# a line or after Chinese punctuation are not brackets.
_INTERVAL = re.compile(r"[\[(（]\s*[-+−]?[\w.∞π\\]+\s*[,，]\s*[-+−]?[\w.∞π\\]+\s*[\])）]")
_LIST_MARKER = re.compile(
    r"(?:^[ \t]*|(?<=[：；，。])[ \t]*)(?:[0-9]{1,2}|[a-zA-Z]|[ivx]{1,4})[)）]", re.MULTILINE
)
_OPEN = {"(": "(", "（": "(", "[": "[", "{": "{", "【": "【"}
_CLOSE = {")": "(", "）": "(", "]": "[", "}": "{", "】": "【"}


def _markup_spans(text: str) -> list[tuple[int, int, str]]:
    """Unbalanced code fences, formula delimiters and brackets, each at its offending offset."""
    problems: list[tuple[int, int, str]] = []
    masked = bytearray(len(text))

    def mask(start: int, end: int) -> None:
        masked[start:end] = b"\x01" * (end - start)

    fences = [m.start() + m.group().index("`") for m in _FENCE.finditer(text)]
    for open_at, close_at in zip(fences[::2], fences[1::2], strict=False):
        mask(open_at, close_at + 3)
    if len(fences) % 2:
        problems.append((fences[-1], fences[-1] + 3, "code fence ``` is never closed"))
        mask(fences[-1], len(text))
    for m in _INLINE_CODE.finditer(text):
        if not masked[m.start()]:
            mask(m.start(), m.end())
    problems.extend(_math_problems(text, masked, mask))
    for m in _INTERVAL.finditer(text):
        mask(m.start(), m.end())
    for m in _LIST_MARKER.finditer(text):
        mask(m.start(), m.end())
    stack: list[tuple[str, int]] = []
    for i, ch in enumerate(text):
        if masked[i]:
            continue
        if ch in _OPEN:
            stack.append((ch, i))
        elif ch in _CLOSE:
            if stack and _OPEN[stack[-1][0]] == _CLOSE[ch]:
                stack.pop()
            elif stack:
                opener, at = stack.pop()
                problems.append((i, i + 1, f"{ch!r} closes {opener!r} opened at offset {at}"))
            else:
                problems.append((i, i + 1, f"{ch!r} has no matching opening bracket"))
    problems.extend((at, at + 1, f"{opener!r} is never closed") for opener, at in stack)
    return sorted(problems)


def _math_problems(text: str, masked: bytearray, mask: Any) -> list[tuple[int, int, str]]:
    """Pair ``$$``, ``$``, ``\\(\\)`` and ``\\[\\]`` outside code; mask paired formulas. An
    unopened ``$`` before an amount followed by a space or punctuation (``$5 per unit``) is a
    currency sign, not math."""
    problems: list[tuple[int, int, str]] = []
    open_at: dict[str, int] = {}
    closers = {"\\)": "\\(", "\\]": "\\["}
    for m in _MATH_TOKEN.finditer(text):
        tok, at = m.group(), m.start()
        if masked[at] or tok == "\\$":
            continue
        if tok[0] == "\\":
            # The bracket inside \( \) \[ \] is a delimiter, never a bracket of its own.
            mask(at, m.end())
        if tok in ("$", "$$"):
            if tok in open_at:
                mask(open_at.pop(tok), m.end())
                continue
            if tok == "$" and _CURRENCY.match(text, at):
                continue
            open_at[tok] = at
        elif tok in closers:
            opener = closers[tok]
            if opener in open_at:
                mask(open_at.pop(opener), m.end())
            else:
                problems.append((at, m.end(), f"{tok} has no matching {opener}"))
        else:
            open_at.setdefault(tok, at)
    problems.extend(
        (at, at + len(tok), f"formula delimiter {tok} is never closed")
        for tok, at in open_at.items()
    )
    return problems


# ---------------------------------------------------------------------------------------------
# Endings and openings
# ---------------------------------------------------------------------------------------------

_TERMINAL = frozenset("。！？!?.;；\"'”’」』）)】]}>`$|")
_COMMA_LIKE = frozenset(",，、：:-—/（([{【")
_ELLIPSIS = re.compile(r"(?:\.{3,}|…+|。。。)\s*$")
_EN_DANGLING = re.compile(
    r"\b(?:and|or|but|because|so|the|a|an|of|to|with|which|that|for|in|on|at|by|as|if|then|than"
    r"|while|is|are|was|were|be|from|into|such|when|where|whose|its|their|this|these)\s*$",
    re.IGNORECASE,
)
_ZH_DANGLING = re.compile(
    "(?:因为|所以|但是|但|而且|并且|以及|和|与|及|的|是|在|如果|由于|例如|比如|包括|即|或|或者|而|则|并|"
    "那么|然后|其中|通过|对于|关于|使得|导致|从而|以便|为了)\\s*$"
)
_NUMERIC_ENDING = re.compile(r"\d[\d.,]*\s*[A-Za-z/%°·²³μΩ]{0,10}\s*$")
_STRUCTURED_LINE = re.compile(r"^\s*(?:[-*+•|>#]|\d{1,3}[.)、]|```|\$\$|\\\])")
# Headings and blank lines before the first paragraph, then list or quote markers.
_LEADING_MARKERS = re.compile(
    r"^(?:\s*#{1,6}[ \t][^\n]*\n|\s*\n)*(?:\s*(?:>\s*|[-*+•]\s+|\d{1,3}[.)、]\s*))*"
)
_EN_CONNECTIVE = re.compile(
    r"(?:therefore|thus|hence|consequently|accordingly|as a result|in conclusion|in summary"
    r"|to sum up|to conclude|for this reason|so,)(?=\W|$)",
    re.IGNORECASE,
)
_ZH_CONNECTIVE = re.compile(
    "(?:综上所述|总而言之|由此可见|综上|因此|所以|因而|故而|从而|于是|总之|可见(?=[，,：:])|故(?=[，,]))"
)


def _ending_problem(text: str) -> str | None:
    """Why ``text`` (an output) looks cut off, or ``None``."""
    stripped = text.rstrip()
    if not stripped:
        return None
    if _ELLIPSIS.search(stripped):
        return "ends with an ellipsis"
    last = stripped[-1]
    if last in _COMMA_LIKE:
        return f"ends with {last!r}"
    if last in _TERMINAL:
        return None
    if _EN_DANGLING.search(stripped) or _ZH_DANGLING.search(stripped):
        return "ends with a dangling connective"
    last_line = stripped.rsplit("\n", 1)[-1]
    if _STRUCTURED_LINE.match(last_line) or _NUMERIC_ENDING.search(last_line):
        return None
    return "ends without terminal punctuation"


# ---------------------------------------------------------------------------------------------
# The checker
# ---------------------------------------------------------------------------------------------


class QualityChecker:
    """Runs every text check on records. Sentence segmenters (spaCy blank pipelines with a
    sentencizer; jieba segmentation for Chinese) are built on first use and reused."""

    def __init__(self) -> None:
        self._nlp: dict[str, SpacyLanguage] = {}

    def _pipeline(self, language: str) -> SpacyLanguage:
        key = "en" if language == "en" else "zh"
        if key not in self._nlp:
            import spacy

            if key == "zh":
                nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})
            else:
                nlp = spacy.blank("en")
            nlp.add_pipe("sentencizer")
            self._nlp[key] = nlp
        return self._nlp[key]

    def sentences(self, text: str, *, language: str) -> list[tuple[int, int]]:
        """Character spans of the sentences of ``text``; paragraph breaks always end a sentence."""
        spans: list[tuple[int, int]] = []
        nlp = self._pipeline(language)
        for para in re.finditer(r"[^\n]+(?:\n(?!\s*\n)[^\n]*)*", text):
            base = para.start()
            for sent in nlp(para.group()).sents:
                chunk = sent.text
                if chunk.strip():
                    lead = len(chunk) - len(chunk.lstrip())
                    spans.append((base + sent.start_char + lead, base + sent.end_char))
        return [(s, s + len(text[s:e].rstrip())) for s, e in spans]

    def check(
        self,
        *,
        instruction: str,
        input: str,
        output: str,
        language: str,
        limits: QualityLimits,
        system: str = "",
        history: Sequence[tuple[str, str]] = (),
    ) -> list[QualityFlag]:
        """All flags for one record, ordered by field (dialogue order), then offset."""
        return self.assess(
            instruction=instruction,
            input=input,
            output=output,
            language=language,
            limits=limits,
            system=system,
            history=history,
        ).flags

    def assess(
        self,
        *,
        instruction: str,
        input: str,
        output: str,
        language: str,
        limits: QualityLimits,
        system: str = "",
        history: Sequence[tuple[str, str]] = (),
    ) -> QualityAssessment:
        """Flags for one record (ordered by field in dialogue order, then offset) and the final
        output's measurements. ``system`` and ``history`` are a multi-turn record's system
        prompt and earlier ``(user, assistant)`` turns."""
        fields: list[tuple[str, str]] = [("system", system)] if system else []
        for turn, (user, assistant) in enumerate(history):
            fields += [(f"history[{turn}][0]", user), (f"history[{turn}][1]", assistant)]
        fields += [("instruction", instruction), ("input", input), ("output", output)]
        flags: list[QualityFlag] = []
        for name, text in fields:
            garbled = _garbled_spans(text, limits.max_unusual_symbol_ratio)
            flags.extend(_capped(name, FlagCode.GARBLED, garbled))
            flags.extend(_capped(name, FlagCode.UNBALANCED_MARKUP, _markup_spans(text)))
        for turn, (_, answer) in enumerate(history):
            flags.extend(self._answer_flags(answer, f"history[{turn}][1]", language, limits))
        size = length_units(output, language)
        rep = repetition(
            output, language=language, n=limits.repeat_ngram, min_tokens=limits.min_repeat_tokens
        )
        flags.extend(self._output_flags(output, language, limits, size, rep))
        flags.sort(key=lambda f: (field_rank(f.field), f.start, f.code.value))
        return QualityAssessment(flags=flags, length=size, repeat_ratio=rep.ratio)

    def _answer_flags(
        self, text: str, field: str, language: str, limits: QualityLimits
    ) -> Iterator[QualityFlag]:
        """``repetitive`` and ``truncated`` for an earlier assistant turn."""
        rep = repetition(
            text, language=language, n=limits.repeat_ngram, min_tokens=limits.min_repeat_tokens
        )
        yield from self._repeat_and_ending(text, field, language, limits, rep)

    def _repeat_and_ending(
        self, text: str, field: str, language: str, limits: QualityLimits, rep: Repetition
    ) -> Iterator[QualityFlag]:
        if rep.ratio > limits.max_repeat_ratio and rep.span is not None:
            message = (
                f"{rep.ratio:.0%} of {limits.repeat_ngram}-grams repeat, "
                f"maximum {limits.max_repeat_ratio:.0%}"
            )
            yield _flag(FlagCode.REPETITIVE, *rep.span, message, field=field)
        problem = _ending_problem(text)
        if problem is not None:
            sents = self.sentences(text, language=language)
            start = sents[-1][0] if sents else 0
            yield _flag(FlagCode.TRUNCATED, start, len(text.rstrip()), problem, field=field)

    def _output_flags(
        self, text: str, language: str, limits: QualityLimits, size: int, rep: Repetition
    ) -> Iterator[QualityFlag]:
        unit = {"zh": "characters", "en": "words"}.get(language, "units")
        if size < limits.min_length:
            yield _flag(
                FlagCode.TOO_SHORT, 0, len(text), f"{size} {unit}, minimum {limits.min_length}"
            )
        elif size > limits.max_length:
            yield _flag(
                FlagCode.TOO_LONG, 0, len(text), f"{size} {unit}, maximum {limits.max_length}"
            )
        yield from self._repeat_and_ending(text, "output", language, limits, rep)
        opening = _LEADING_MARKERS.match(text)
        at = opening.end() if opening else 0
        pattern = _EN_CONNECTIVE if re.match(r"[A-Za-z]", text[at : at + 1]) else _ZH_CONNECTIVE
        connective = pattern.match(text, at)
        if connective is not None:
            yield _flag(
                FlagCode.LOGIC_BREAK,
                connective.start(),
                connective.end(),
                f"the output opens with {connective.group()!r} with no premise before it",
            )


def _flag(
    code: FlagCode, start: int, end: int, message: str, *, field: str = "output"
) -> QualityFlag:
    return QualityFlag(code=code, field=field, start=start, end=end, message=message)


def _capped(field: str, code: FlagCode, spans: list[tuple[int, int, str]]) -> list[QualityFlag]:
    flags = [QualityFlag(code=code, field=field, start=s, end=e, message=m) for s, e, m in spans]
    if len(flags) > MAX_FLAGS_PER_CODE:
        extra = len(flags) - MAX_FLAGS_PER_CODE
        last = flags[MAX_FLAGS_PER_CODE - 1]
        flags = flags[: MAX_FLAGS_PER_CODE - 1]
        flags.append(
            QualityFlag(
                code=code,
                field=field,
                start=last.start,
                end=last.end,
                message=f"{last.message} (and {extra} more)",
            )
        )
    return flags
