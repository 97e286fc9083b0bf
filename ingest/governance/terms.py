"""Discipline glossaries and term coverage: how much of a text is the vocabulary of its discipline.

Glossaries live in ``ingest/governance/glossaries/<discipline>.yaml``; each entry has an English
term, a Chinese term and optional aliases (abbreviations, synonyms, spellings, in either language).
Every *form* (term or alias) of an entry counts as that entry; a form belongs to one entry only.

Matching
--------
Chinese forms (any form containing a CJK character, e.g. ``信噪比`` or ``TCP协议``) are matched by
leftmost-longest search over a character trie of the glossary forms, not by jieba segmentation with
the forms added as user words. ``jieba.add_word`` mutates the process-wide default dictionary that
the spaCy Chinese tokenizer also uses, so loading a glossary would silently change segmentation
elsewhere and make results depend on load order; and jieba may split an unseen compound
(``信道容量`` -> ``信道/容量``) depending on its context. Longest match is deterministic and
linear in the text; its cost is that a short form can match inside a longer word that is not in
the glossary (``分组`` inside ``分组密码`` when only ``分组`` is listed), which moves a density
only slightly.

English forms are matched as token sequences. Text and forms are tokenized the same way (runs of
letters and digits; hyphens, slashes and spaces all separate tokens, so ``error-correcting`` equals
``error correcting``), and each token is normalized:

- acronyms (two or more capitals, capitals with digits, or camel case: ``SNR``, ``IPv6``, ``dB``,
  ``WebSocket``) are case-sensitive, with a plural ``s`` dropped (``CRCs`` -> ``CRC``);
- other words are lowercased, lose a possessive ``'s``, a plural (``-ies`` -> ``y``, ``-ses``,
  ``-xes``, ``-ches``, ``-shes`` -> drop ``es``, ``-s`` unless ``-ss``/``-us``/``-is``) and a verb
  ending (``-ing``, ``-ed`` when three letters remain, then a doubled final consonant and a final
  ``e``), so ``routers``/``router``, ``encoded``/``encoding``/``encodes`` compare equal.

A match never spans sentence punctuation, brackets or Chinese text. Where Chinese and English
matches overlap, the longer one is kept.

Score
-----
``tokens = latin_words + cjk_characters / 1.5`` (a Chinese word averages about 1.5 characters),
with a floor of :data:`MIN_TOKENS` so that a one-line answer is not over-rewarded;
``density = 100 * distinct_entries / tokens`` (distinct glossary entries per 100 tokens);
``score = min(1, density / target_density)`` with :data:`DEFAULT_TARGET_DENSITY` = 5: a text that
uses five distinct terms of its discipline per hundred tokens has full coverage.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ingest.governance.errors import GlossaryError

GLOSSARY_DIR = Path(__file__).resolve().parent / "glossaries"
DEFAULT_TARGET_DENSITY = 5.0
"""Distinct glossary entries per 100 tokens that give a coverage score of 1."""
MIN_TOKENS = 20.0
CJK_CHARS_PER_TOKEN = 1.5
LANGUAGES = frozenset({"zh", "en", "mixed"})

_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_TOKEN = re.compile("[A-Za-z0-9\u00c0-\u024f\u0370-\u03ff]+(?:['’]s\\b)?")
_GAP_OK = re.compile("['’]?[ \t\n\u00a0\\-/\u2010-\u2013_]*|\\.")
_ACRONYM = re.compile("[A-Z\u0391-\u03a9].*[A-Z\u0391-\u03a9]|[A-Z].*\\d|\\d.*[A-Z]|[a-z][A-Z]")


# ---------------------------------------------------------------------------------------------
# Glossaries
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GlossaryEntry:
    """One glossary term: ``en`` and ``zh`` name it; ``aliases`` are other forms of the term."""

    en: str
    zh: str
    aliases: tuple[str, ...] = ()

    @property
    def forms(self) -> tuple[str, ...]:
        return (self.en, self.zh, *self.aliases)


@dataclass(frozen=True, slots=True)
class Glossary:
    """The glossary of one discipline, in file order."""

    discipline: str
    entries: tuple[GlossaryEntry, ...]

    def __len__(self) -> int:
        return len(self.entries)


def load_glossary(path: Path) -> Glossary:
    """Read and validate one glossary file; raises :class:`GlossaryError` naming the file and the
    entry when the file is unreadable, an entry is malformed, or a form belongs to two entries."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise GlossaryError(f"{path}: cannot read glossary: {exc}") from exc
    if not isinstance(data, dict) or set(data) != {"discipline", "terms"}:
        raise GlossaryError(f"{path}: expected exactly the keys 'discipline' and 'terms'")
    if not isinstance(data["terms"], list):
        raise GlossaryError(f"{path}: 'terms' must be a list")
    entries = tuple(_entry(path, i, raw) for i, raw in enumerate(data["terms"]))
    owners: dict[Any, int] = {}
    for i, entry in enumerate(entries):
        for form in entry.forms:
            key = _form_key(form)
            j = owners.setdefault(key, i)
            if j != i:
                raise GlossaryError(
                    f"{path}: terms[{i}] ({entry.en!r}): form {form!r} duplicates "
                    f"terms[{j}] ({entries[j].en!r})"
                )
    return Glossary(discipline=str(data["discipline"]), entries=entries)


def _entry(path: Path, index: int, raw: object) -> GlossaryEntry:
    where = f"{path}: terms[{index}]"
    if not isinstance(raw, dict) or not {"en", "zh"} <= set(raw) <= {"en", "zh", "aliases"}:
        raise GlossaryError(f"{where}: expected keys 'en', 'zh' and optionally 'aliases'")
    en, zh, aliases = raw["en"], raw["zh"], raw.get("aliases", [])
    if not isinstance(en, str) or not _TOKEN.search(en) or _CJK.search(en):
        raise GlossaryError(f"{where}: 'en' must be an English term, got {en!r}")
    if not isinstance(zh, str) or not _CJK.search(zh):
        raise GlossaryError(f"{where} ({en!r}): 'zh' must contain Chinese characters, got {zh!r}")
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
        raise GlossaryError(f"{where} ({en!r}): 'aliases' must be a list of non-empty strings")
    return GlossaryEntry(en=en.strip(), zh=zh.strip(), aliases=tuple(a.strip() for a in aliases))


def _form_key(form: str) -> str | tuple[str, ...]:
    """What makes two forms the same: the exact string for Chinese forms, the normalized token
    sequence for English ones."""
    if _CJK.search(form):
        return form
    return tuple(token_key(m.group()) for m in _TOKEN.finditer(form))


# ---------------------------------------------------------------------------------------------
# English normalization
# ---------------------------------------------------------------------------------------------


def token_key(token: str) -> str:
    """The normalized key of one English token (see the module docstring)."""
    if token[-2:] in ("'s", "’s"):
        token = token[:-2]
    if _ACRONYM.search(token):
        if len(token) >= 3 and token.endswith("s") and token[:-1].isupper():
            return token[:-1]
        return token
    return _stem(token.lower())


def _stem(word: str) -> str:
    if len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "xes", "ches", "shes", "zes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    if word.endswith("ing") and len(word) >= 6:
        word = word[:-3]
    elif word.endswith("ed") and len(word) >= 5:
        word = word[:-2]
    else:
        return word[:-1] if word.endswith("e") and len(word) > 3 else word
    if len(word) >= 4 and word[-1] == word[-2] and word[-1] not in "lsz":
        word = word[:-1]
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


# ---------------------------------------------------------------------------------------------
# Matching and coverage
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TermMatch:
    """``text[start:end]`` is a form of the glossary entry named ``term`` (its English term)."""

    term: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class TermCoverage:
    """Term coverage of one text; ``matched_terms`` lists every occurrence as (term, start, end)."""

    score: float
    matched_terms: list[tuple[str, int, int]]
    distinct_terms: int
    tokens: float
    density: float
    distinct: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "distinct_terms": self.distinct_terms,
            "tokens": self.tokens,
            "density": self.density,
            "matched_terms": [list(t) for t in self.matched_terms],
        }


_END = ""


class TermMatcher:
    """Finds the terms of one glossary in texts and scores coverage. Immutable after construction;
    safe to share."""

    def __init__(self, glossary: Glossary, *, target_density: float = DEFAULT_TARGET_DENSITY):
        if target_density <= 0:
            raise GlossaryError(f"target_density must be positive, got {target_density}")
        self.glossary = glossary
        self.target_density = target_density
        self._trie: dict[str, Any] = {}
        by_first: dict[str, set[tuple[tuple[str, ...], int]]] = {}
        for i, entry in enumerate(glossary.entries):
            for form in entry.forms:
                key = _form_key(form)
                if isinstance(key, str):
                    node = self._trie
                    for ch in key:
                        node = node.setdefault(ch, {})
                    node[_END] = i
                elif key:
                    by_first.setdefault(key[0], set()).add((key, i))
        self._en = {k: sorted(v, key=lambda c: -len(c[0])) for k, v in by_first.items()}

    def find(self, text: str) -> list[TermMatch]:
        """Every glossary term in ``text``, left to right, non-overlapping (longest wins)."""
        found = sorted(self._find_zh(text) + self._find_en(text), key=lambda m: (m[0], m[0] - m[1]))
        matches: list[TermMatch] = []
        last_end = 0
        for start, end, idx in found:
            if start >= last_end:
                matches.append(TermMatch(self.glossary.entries[idx].en, start, end))
                last_end = end
        return matches

    def _find_zh(self, text: str) -> list[tuple[int, int, int]]:
        found: list[tuple[int, int, int]] = []
        i, n = 0, len(text)
        while i < n:
            node = self._trie.get(text[i])
            best: tuple[int, int] | None = None
            j = i
            while node is not None:
                j += 1
                if _END in node:
                    best = (j, node[_END])
                node = node.get(text[j]) if j < n else None
            if best is not None and not (text[i].isascii() and i and text[i - 1].isalnum()):
                found.append((i, best[0], best[1]))
                i = best[0]
            else:
                i += 1
        return found

    def _find_en(self, text: str) -> list[tuple[int, int, int]]:
        tokens = [(token_key(m.group()), m.start(), m.end()) for m in _TOKEN.finditer(text)]
        joins = [
            _GAP_OK.fullmatch(text, tokens[k - 1][2], tokens[k][1]) is not None
            for k in range(1, len(tokens))
        ]
        found: list[tuple[int, int, int]] = []
        k = 0
        while k < len(tokens):
            hit = None
            for keys, idx in self._en.get(tokens[k][0], ()):
                end = k + len(keys)
                if (
                    end <= len(tokens)
                    and all(joins[k : end - 1])
                    and all(tokens[k + m][0] == keys[m] for m in range(1, len(keys)))
                ):
                    hit = (tokens[k][1], tokens[end - 1][2], idx, end)
                    break
            if hit is None:
                k += 1
            else:
                found.append(hit[:3])
                k = hit[3]
        return found

    def coverage(self, text: str, *, language: str) -> TermCoverage:
        """Term coverage of ``text`` (see the module docstring for the score)."""
        if language not in LANGUAGES:
            raise GlossaryError(f"unknown language {language!r}; expected zh, en or mixed")
        matches = self.find(text)
        distinct = list(dict.fromkeys(m.term for m in matches))
        tokens = count_tokens(text)
        density = 100.0 * len(distinct) / max(tokens, MIN_TOKENS)
        return TermCoverage(
            score=round(min(1.0, density / self.target_density), 6),
            matched_terms=[(m.term, m.start, m.end) for m in matches],
            distinct_terms=len(distinct),
            tokens=round(tokens, 3),
            density=round(density, 6),
            distinct=distinct,
        )


def count_tokens(text: str) -> float:
    """Latin words and numbers, plus CJK characters divided by :data:`CJK_CHARS_PER_TOKEN`."""
    return len(_TOKEN.findall(text)) + len(_CJK.findall(text)) / CJK_CHARS_PER_TOKEN


class TermIndex:
    """One :class:`TermMatcher` per discipline."""

    def __init__(
        self, glossaries: Mapping[str, Glossary], *, target_density: float = DEFAULT_TARGET_DENSITY
    ):
        self._matchers = {
            name: TermMatcher(glossary, target_density=target_density)
            for name, glossary in glossaries.items()
        }

    @classmethod
    def load(
        cls, directory: Path | None = None, *, target_density: float = DEFAULT_TARGET_DENSITY
    ) -> TermIndex:
        """Load every ``*.yaml`` glossary in ``directory`` (default: the bundled glossaries)."""
        return cls(load_glossaries(directory), target_density=target_density)

    @property
    def disciplines(self) -> Sequence[str]:
        return sorted(self._matchers)

    def matcher(self, discipline: str) -> TermMatcher:
        try:
            return self._matchers[discipline]
        except KeyError:
            raise GlossaryError(f"no glossary for discipline {discipline!r}") from None

    def coverage(self, *, text: str, discipline: str, language: str) -> TermCoverage:
        return self.matcher(discipline).coverage(text, language=language)


def load_glossaries(directory: Path | None = None) -> dict[str, Glossary]:
    """Every glossary in ``directory`` keyed by discipline; the file name must match the
    ``discipline`` key inside it."""
    directory = directory or GLOSSARY_DIR
    glossaries: dict[str, Glossary] = {}
    for path in sorted(directory.glob("*.yaml")):
        glossary = load_glossary(path)
        if glossary.discipline != path.stem:
            raise GlossaryError(
                f"{path}: discipline {glossary.discipline!r} does not match file name"
            )
        glossaries[glossary.discipline] = glossary
    if not glossaries:
        raise GlossaryError(f"{directory}: no glossary files")
    return glossaries


@functools.cache
def default_index() -> TermIndex:
    """The index of the bundled glossaries, built once per process (they are read-only data)."""
    return TermIndex.load()


def term_coverage(*, text: str, discipline: str, language: str) -> TermCoverage:
    """Term coverage of ``text`` against the bundled glossary of ``discipline``."""
    return default_index().coverage(text=text, discipline=discipline, language=language)
