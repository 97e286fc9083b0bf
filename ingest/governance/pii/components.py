"""spaCy pipeline components that detect PII, and the pipelines built from them.

Importing this module imports spaCy and registers three factories:

* ``pii_structured`` runs the validated patterns of :mod:`~ingest.governance.pii.patterns` over
  ``doc.text``;
* ``pii_zh_person`` reports cue-introduced Chinese names, using the jieba token boundaries of the
  doc;
* ``pii_en_person`` keeps plausible English names: names after cues such as ``Name:``, and PERSON
  entities of an optional English NER model run on the Latin-script stretches that may hold one;
  both read the text with lower- or upper-case names capitalised
  (:func:`~ingest.governance.pii.truecase.truecase_names`).

The pipelines expect the normalized view of a text (:func:`~ingest.governance.pii.normalize.
normalize`) as their input: :class:`~ingest.governance.pii.redactor.PiiRedactor` builds it and maps
what they find back to the original text.

Each component appends exact character offsets to ``doc._.pii_matches`` (the source of truth for
redaction) and token-aligned spans to ``doc.spans["pii"]`` (``doc.char_span(..., alignment_mode=
"expand")``) for anything else that wants to look at the doc.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import spacy
from spacy.language import Language
from spacy.tokens import Doc, SpanGroup

from ingest.governance.pii.config import DEFAULT_NER_MODELS, PiiConfig
from ingest.governance.pii.errors import NerModelUnavailable
from ingest.governance.pii.model import PiiMatch, PiiType
from ingest.governance.pii.names import (
    Lexicon,
    en_cued_names,
    name_segments,
    plausible_en_name,
    zh_cued_names,
)
from ingest.governance.pii.patterns import detect_structured
from ingest.governance.pii.truecase import truecase_names

SPAN_KEY = "pii"
MATCHES_ATTR = "pii_matches"
NER_CONTEXT_CHARS = 16

if not Doc.has_extension(MATCHES_ATTR):
    Doc.set_extension(MATCHES_ATTR, default=None)


def doc_matches(doc: Doc) -> list[PiiMatch]:
    """The matches the PII components recorded on ``doc`` (possibly overlapping, unsorted)."""
    found: list[PiiMatch] | None = getattr(doc._, MATCHES_ATTR)
    return list(found or [])


def _record(doc: Doc, matches: list[PiiMatch]) -> None:
    setattr(doc._, MATCHES_ATTR, doc_matches(doc) + matches)
    group = doc.spans[SPAN_KEY] if SPAN_KEY in doc.spans else SpanGroup(doc, name=SPAN_KEY)
    for match in matches:
        span = doc.char_span(
            match.start, match.end, label=match.type.value, alignment_mode="expand"
        )
        if span is not None:
            group.append(span)
    doc.spans[SPAN_KEY] = group


class StructuredPiiComponent:
    """Finds every structured PII type (all but PERSON) in the doc's (normalized) text."""

    def __init__(self, config: PiiConfig) -> None:
        self.config = config

    def __call__(self, doc: Doc) -> Doc:
        _record(doc, detect_structured(doc.text, self.config))
        return doc


class ChinesePersonComponent:
    """Finds Chinese names next to cue words; expects a jieba-segmented doc."""

    def __init__(self) -> None:
        import jieba
        import jieba.posseg

        jieba.initialize()
        self._lexicon = Lexicon(tags=jieba.posseg.dt.word_tag_tab, freq=jieba.dt.FREQ)

    def __call__(self, doc: Doc) -> Doc:
        starts = frozenset(t.idx for t in doc)
        ends = frozenset(t.idx + len(t.text) for t in doc)
        found = [
            PiiMatch(start, end, PiiType.PERSON)
            for start, end in zh_cued_names(
                doc.text, token_starts=starts, token_ends=ends, lexicon=self._lexicon
            )
        ]
        _record(doc, found)
        return doc


class EnglishPersonComponent:
    """Keeps plausible English person names (see :mod:`~ingest.governance.pii.names`): names after
    cues such as ``Name:`` or ``Dr.``, and PERSON entities of ``ner`` (a loaded English pipeline,
    optional) found in the Latin-script stretches that may hold a name. Working on stretches lets a
    Chinese or mixed pipeline use an English model too.
    """

    def __init__(self, ner: Language | None, *, batch_size: int = 64) -> None:
        self._ner = ner
        self._batch_size = batch_size

    def __call__(self, doc: Doc) -> Doc:
        return next(iter(self.pipe([doc])))

    def pipe(self, stream: Iterable[Doc], *, batch_size: int | None = None) -> Iterator[Doc]:
        """Processes docs in batches so that the NER model sees many stretches at once."""
        size = batch_size or self._batch_size
        for batch in spacy.util.minibatch(stream, size=size):
            yield from self._process(batch)

    def _process(self, docs: list[Doc]) -> list[Doc]:
        # Names in lower or upper case get their capitals back first; same length, same offsets.
        views = [truecase_names(doc.text) for doc in docs]
        entities: list[list[tuple[int, int]]] = [[] for _ in docs]
        if self._ner is not None:
            jobs = [(i, a, b) for i, view in enumerate(views) for a, b in name_segments(view)]
            texts = (views[i][a:b] for i, a, b in jobs)
            for (i, offset, _), sub in zip(jobs, self._ner.pipe(texts), strict=True):
                entities[i].extend(
                    (offset + e.start_char, offset + e.end_char)
                    for e in sub.ents
                    if e.label_ == "PERSON"
                )
        for doc, view, found in zip(docs, views, entities, strict=True):
            _record(doc, _keep_names(view, found))
        return docs


def _keep_names(text: str, entities: list[tuple[int, int]]) -> list[PiiMatch]:
    spans: set[tuple[int, int]] = set(en_cued_names(text))
    for start, end in entities:
        if plausible_en_name(
            text[start:end],
            before=text[max(0, start - NER_CONTEXT_CHARS) : start],
            after=text[end : end + NER_CONTEXT_CHARS],
        ):
            spans.add((start, end))
    return [PiiMatch(s, e, PiiType.PERSON) for s, e in sorted(spans)]


@Language.factory("pii_structured", default_config={"settings": None})
def make_structured(
    nlp: Language, name: str, settings: dict[str, Any] | None
) -> StructuredPiiComponent:
    return StructuredPiiComponent(PiiConfig.from_dict(settings) if settings else PiiConfig())


@Language.factory("pii_zh_person")
def make_zh_person(nlp: Language, name: str) -> ChinesePersonComponent:
    return ChinesePersonComponent()


@Language.factory("pii_en_person", default_config={"ner_model": None})
def make_en_person(nlp: Language, name: str, ner_model: str | None) -> EnglishPersonComponent:
    return EnglishPersonComponent(load_ner(ner_model) if ner_model else None)


# ---------------------------------------------------------------------------------------------
# Pipelines
# ---------------------------------------------------------------------------------------------

_NON_NER_PIPES = (
    "tok2vec",
    "tagger",
    "morphologizer",
    "parser",
    "senter",
    "attribute_ruler",
    "lemmatizer",
)


def resolve_ner_model(config: PiiConfig) -> str | None:
    """The installed spaCy package to use for English PERSON entities, or ``None``.

    ``"auto"`` picks the first installed of :data:`DEFAULT_NER_MODELS` and quietly goes without NER
    when none is; an explicit name that is not installed raises :class:`NerModelUnavailable`.
    """
    if not config.person_names or config.ner_model is None:
        return None
    if config.ner_model == "auto":
        return next((m for m in DEFAULT_NER_MODELS if spacy.util.is_package(m)), None)
    if spacy.util.is_package(config.ner_model) or Path(config.ner_model).is_dir():
        return config.ner_model
    raise NerModelUnavailable(f"spaCy model {config.ner_model!r} is not installed")


@lru_cache(maxsize=4)
def load_ner(model: str) -> Language:
    """``model`` loaded with only its (self-contained) NER component; loaded once per process, since
    inference leaves it unchanged and loading takes seconds."""
    return spacy.load(model, exclude=list(_NON_NER_PIPES))


def build_pipeline(language: str, config: PiiConfig, *, ner_model: str | None) -> Language:
    """The detection pipeline for ``language`` (``zh``, ``en`` or ``mixed``).

    ``en`` is a blank English pipeline; ``zh`` and ``mixed`` are the jieba-segmented Chinese one,
    which handles Latin text too. ``en`` and ``mixed`` look for English names, with ``ner_model``
    when given.
    """
    settings = {"settings": config.to_dict()}
    if language == "en":
        nlp = spacy.blank("en")
        nlp.add_pipe("pii_structured", config=settings)
        if config.person_names:
            nlp.add_pipe("pii_en_person", config={"ner_model": ner_model})
        return nlp
    # jieba announces building its prefix dictionary on the root logger's handlers; it is not news.
    import jieba

    jieba.setLogLevel(logging.WARNING)
    nlp = spacy.blank("zh", config={"nlp": {"tokenizer": {"segmenter": "jieba"}}})
    nlp.add_pipe("pii_structured", config=settings)
    if config.person_names:
        nlp.add_pipe("pii_zh_person")
        if language == "mixed":
            nlp.add_pipe("pii_en_person", config={"ner_model": ner_model})
    return nlp
