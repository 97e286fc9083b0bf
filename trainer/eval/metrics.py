"""Text metrics of one answer against one benchmark item.

Every metric returns a float in [0, 1] (BLEU is divided by 100). Library choices: ROUGE-L is
``rouge-chinese`` over jieba words for Chinese (``rouge-score`` keeps only ``[a-z0-9]`` and would
score Chinese 0) and ``rouge-score`` for English; BLEU is ``sacrebleu`` (``zh`` tokenizer for
Chinese, ``13a`` for English).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from trainer.eval.benchmark import CHOICE_LETTERS
from trainer.eval.text import jieba_tokens, normalize
from trainer.eval.vocabulary import EvalLanguage


def rouge_l(prediction: str, reference: str, *, language: EvalLanguage | str) -> float:
    """ROUGE-L F1 of ``prediction`` against ``reference``."""
    if not prediction.strip() or not reference.strip():
        return 0.0
    if EvalLanguage(language) is EvalLanguage.ZH:
        hyp, ref = jieba_tokens(prediction), jieba_tokens(reference)
        if not hyp or not ref:
            return 0.0
        scores = _rouge_chinese().get_scores(" ".join(hyp), " ".join(ref))
        return float(scores[0]["rouge-l"]["f"])
    score = _rouge_score().score(reference, prediction)["rougeL"]
    return float(score.fmeasure)


@lru_cache(maxsize=1)
def _rouge_chinese() -> Any:
    import warnings

    with warnings.catch_warnings():  # its regexes have invalid escapes (harmless)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", SyntaxWarning)
        from rouge_chinese import Rouge

    return Rouge(metrics=["rouge-l"])


@lru_cache(maxsize=1)
def _rouge_score() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def bleu(prediction: str, reference: str, *, language: EvalLanguage | str) -> float:
    """Sentence BLEU (sacrebleu, exponential smoothing) divided by 100."""
    if not prediction.strip() or not reference.strip():
        return 0.0
    import sacrebleu

    tokenize = "zh" if EvalLanguage(language) is EvalLanguage.ZH else "13a"
    result = sacrebleu.sentence_bleu(prediction, [reference], tokenize=tokenize)
    return float(result.score) / 100.0


def key_term_recall(prediction: str, key_terms: Iterable[str]) -> float | None:
    """Fraction of ``key_terms`` found in ``prediction`` after NFKC, case folding and
    whitespace collapsing, with dashes and underscores read as spaces. A term may list
    alternatives separated by ``|`` (``奈奎斯特|Nyquist``): any one counts. ``None`` when there
    are no key terms."""
    terms = [t for t in key_terms if t.strip()]
    if not terms:
        return None
    text = _fold_dashes(normalize(prediction))
    compact = text.replace(" ", "")
    found = 0
    for term in terms:
        options = [_fold_dashes(normalize(o)) for o in term.split("|") if o.strip()]
        if any(o in text or o.replace(" ", "") in compact for o in options):
            found += 1
    return found / len(terms)


_DASHES = re.compile(r"[\-\u2010-\u2015\u2212_]")


def _fold_dashes(text: str) -> str:
    """ "shortest-path", "shortest path" and "shortest_path" compare equal."""
    return _DASHES.sub(" ", text)


_ANCHOR = re.compile(
    r"(?:正确答案|参考答案|答案|应选|选择|选项|选|"
    r"\b(?:the\s+)?(?:correct\s+|final\s+|right\s+)?(?:answer|option|choice)s?"
    r"(?:\s+(?:is|are|would\s+be|:))?)"
    r"\s*(?:是|为|应为|:)?\s*",
    re.IGNORECASE,
)
_SINGLE = re.compile(r"\(?\s*([A-Za-z])\s*\)?")


def extract_choice(prediction: str, *, n_choices: int) -> frozenset[str] | None:
    """The choice letter(s) an answer commits to, or ``None`` when it names none.

    Accepts "答案：B", "答案是 B、D", "The answer is (b)", "Answer: A and C", a bare "C." and
    full-width forms ("答案：Ｂ"). Lowercase letters count only in parentheses or standing
    alone, so "the answer is a firewall" names nothing. When an answer names letters several
    times, the last anchored statement wins.
    """
    allowed = set(CHOICE_LETTERS[:n_choices])
    text = unicodedata.normalize("NFKC", prediction).strip()
    found: frozenset[str] | None = None
    for anchor in _ANCHOR.finditer(text):
        letters = _letters_at(text, anchor.end(), allowed)
        if letters:
            found = letters
    if found is not None:
        return found
    bare = re.fullmatch(r"[\s(\[]*([A-Za-z](?:\s*[,、/&]?\s*[A-Za-z])*)[\s)\].。]*", text)
    if bare:
        letters = frozenset(c.upper() for c in bare.group(1) if c.isalpha())
        if letters <= allowed and (len(text) <= 3 or bare.group(1).isupper()):
            return letters
    return None


def _letters_at(text: str, start: int, allowed: set[str]) -> frozenset[str]:
    """Letters of the choice list starting at ``start`` (possibly empty)."""
    letters: list[str] = []
    pos = start
    separator = re.compile(r"\s*(?:,|、|/|&|\band\b|和|与|及|以及|or\b|或)?\s*", re.IGNORECASE)
    while True:
        m = _SINGLE.match(text, pos)
        if not m:
            break
        letter = m.group(1)
        token = m.group(0)
        end = m.end()
        next_char = text[m.end(1) : m.end(1) + 1]
        parenthesised = token.lstrip().startswith("(") and token.rstrip().endswith(")")
        if next_char.isalpha() and not parenthesised:
            break  # part of a word
        if letter.islower() and not parenthesised:
            rest = text[end:].lstrip()
            if rest[:1].isalpha() and not _is_separator_word(rest):
                break  # "the answer is a firewall"
        if letter.upper() not in allowed:
            break
        letters.append(letter.upper())
        sep = separator.match(text, end)
        pos = sep.end() if sep else end
        if pos == end:
            break
    return frozenset(letters)


def _is_separator_word(rest: str) -> bool:
    return bool(re.match(r"(?:and|or)\s+\(?[A-Za-z]\b", rest, re.IGNORECASE))


def exact_match(prediction: str, answer_key: frozenset[str], *, n_choices: int) -> float:
    """1.0 when the extracted letters equal ``answer_key`` exactly, else 0.0."""
    chosen = extract_choice(prediction, n_choices=n_choices)
    return 1.0 if chosen is not None and chosen == answer_key else 0.0
