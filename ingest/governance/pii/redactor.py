"""The PII redactor: detection through the spaCy pipelines, replacement by typed placeholders.

The pipelines read the normalized view of each text (:mod:`~ingest.governance.pii.normalize`), so
that zero-width characters, digits of other scripts or spelled-out e-mail addresses do not hide a
value; what they find is mapped back, and the redaction replaces exactly the original characters.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ingest.governance.pii.config import PiiConfig
from ingest.governance.pii.errors import PiiError, UnsupportedLanguage
from ingest.governance.pii.model import PiiMatch, PiiRedaction, RedactionSpan, resolve_overlaps
from ingest.governance.pii.normalize import map_back, normalize
from ingest.governance.pii.patterns import find_reordered

if TYPE_CHECKING:
    from spacy.language import Language

LANGUAGES: tuple[str, ...] = ("zh", "en", "mixed")
MAX_TEXT_CHARS = 1_000_000
DEFAULT_BATCH_SIZE = 64


class TextTooLong(PiiError):
    """A text is longer than :data:`MAX_TEXT_CHARS`."""


def apply_redaction(text: str, matches: Sequence[PiiMatch]) -> PiiRedaction:
    """``text`` with every match replaced by its type's placeholder; ``matches`` must not
    overlap."""
    ordered = sorted(matches)
    pieces: list[str] = []
    spans: list[RedactionSpan] = []
    counts: Counter[str] = Counter()
    cursor = 0
    length = 0
    for match in ordered:
        if match.start < cursor:
            raise PiiError("overlapping matches cannot be redacted")
        kept = text[cursor : match.start]
        pieces.append(kept)
        length += len(kept)
        placeholder = match.type.placeholder
        spans.append(RedactionSpan(match.type, length, length + len(placeholder)))
        pieces.append(placeholder)
        length += len(placeholder)
        counts[match.type.value] += 1
        cursor = match.end
    pieces.append(text[cursor:])
    return PiiRedaction(text="".join(pieces), counts=dict(counts), spans=tuple(spans))


class PiiRedactor:
    """Finds and replaces personal data in Chinese, English and mixed texts.

    Implements :class:`ingest.records.Desensitizer`. Each language's spaCy pipeline is built on
    first use (under a lock) and cached on the instance; an English NER model named explicitly in
    the config but not installed raises :class:`NerModelUnavailable` then. Nothing here logs or
    raises with a piece of the text.
    """

    def __init__(self, config: PiiConfig | None = None) -> None:
        self.config = config or PiiConfig()
        self._pipelines: dict[str, Language] = {}
        self._ner_model: str | None = None
        self._ner_resolved = False
        self._lock = threading.Lock()

    @property
    def ner_model(self) -> str | None:
        """The English NER package in use, or ``None`` when names rely on cue rules only."""
        with self._lock:
            return self._resolve_ner()

    def _resolve_ner(self) -> str | None:
        if not self._ner_resolved:
            from ingest.governance.pii.components import resolve_ner_model

            self._ner_model = resolve_ner_model(self.config)
            self._ner_resolved = True
        return self._ner_model

    def pipeline(self, language: str) -> Language:
        """The (cached) spaCy pipeline used for ``language``."""
        lang = _check_language(language)
        with self._lock:
            nlp = self._pipelines.get(lang)
            if nlp is None:
                from ingest.governance.pii.components import build_pipeline

                nlp = build_pipeline(lang, self.config, ner_model=self._resolve_ner())
                self._pipelines[lang] = nlp
            return nlp

    def detect(self, text: str, *, language: str) -> list[PiiMatch]:
        """Non-overlapping PII matches in ``text``, sorted, with offsets into ``text`` (found in its
        normalized view, and for structured types also in display order).

        For evaluation and tests: a match locates a value, so keep the result in memory only.
        """
        return self.detect_many([text], language=language)[0]

    def detect_many(
        self, texts: Sequence[str], *, language: str, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> list[list[PiiMatch]]:
        """:meth:`detect` for several texts of one language, streamed through ``nlp.pipe``."""
        from ingest.governance.pii.components import doc_matches

        for text in texts:
            if len(text) > MAX_TEXT_CHARS:
                raise TextTooLong(f"text of {len(text)} characters exceeds {MAX_TEXT_CHARS}")
        _check_language(language)
        views = [normalize(text) for text in texts]
        results: list[list[PiiMatch]] = [[] for _ in texts]
        # A text's declared language says what it mostly is, not what it holds: an English answer
        # may name 学生王芳 and a Chinese one "Li Na". A text with both scripts goes through the
        # mixed pipeline, which runs the rules of both.
        by_language: dict[str, list[int]] = {}
        for i, view in enumerate(views):
            if view.text.strip():
                by_language.setdefault(effective_language(view.text, language), []).append(i)
        for lang, todo in by_language.items():
            docs = self.pipeline(lang).pipe((views[i].text for i in todo), batch_size=batch_size)
            for i, doc in zip(todo, docs, strict=True):
                found = map_back(views[i], doc_matches(doc))
                found.extend(find_reordered(texts[i], self.config))
                results[i] = resolve_overlaps(found)
        return results

    def redact(self, text: str, *, language: str) -> PiiRedaction:
        """``text`` with each piece of personal data replaced by ``[EMAIL]``, ``[PHONE]``, ... ."""
        return apply_redaction(text, self.detect(text, language=language))

    def redact_many(
        self, texts: Sequence[str], *, language: str, batch_size: int = DEFAULT_BATCH_SIZE
    ) -> list[PiiRedaction]:
        """:meth:`redact` for several texts of one language."""
        found = self.detect_many(texts, language=language, batch_size=batch_size)
        return [apply_redaction(t, m) for t, m in zip(texts, found, strict=True)]


_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


def effective_language(text: str, declared: str) -> str:
    """The pipeline a (normalized) text needs: ``mixed`` when it holds Chinese characters and
    Latin words whatever was declared, else the declared language."""
    if declared != "mixed" and _HAN.search(text) and _LATIN_WORD.search(text):
        return "mixed"
    return declared


def _check_language(language: str) -> str:
    value = str(language)
    if value not in LANGUAGES:
        raise UnsupportedLanguage(f"language must be one of {', '.join(LANGUAGES)}")
    return value
