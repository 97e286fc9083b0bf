"""13-gram contamination check of benchmark items against training texts.

An item is contaminated when its prompt or its reference answer shares a 13-gram with any
training text (the approach of lm-evaluation-harness). Tokens come from
:func:`trainer.eval.text.ngram_tokens`: English words (and numbers) are tokens, and every
Chinese character is one token, so the check needs no word segmenter and is the same for
mixed text. The n-grams of the benchmark are collected first and the training texts are
streamed once, so memory grows with the benchmark, not with the corpus. A field shorter than
13 tokens has no 13-gram and cannot be flagged by itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from trainer.eval.text import ngram_tokens

DEFAULT_N = 13
TEXT_FIELDS = ("instruction", "input", "output")


class CheckedItem(Protocol):
    """What the check reads of an item (a benchmark or a control item)."""

    @property
    def id(self) -> str: ...

    @property
    def prompt(self) -> str: ...

    @property
    def reference(self) -> str: ...


@dataclass(frozen=True)
class Contamination:
    """An item sharing n-grams with training texts; ``record_ids`` are the overlapping texts'
    ids (first 20), never their content."""

    item_id: str
    fields: tuple[str, ...]
    shared_ngrams: int
    record_ids: tuple[str, ...] = field(default=())


def ngrams(text: str, n: int = DEFAULT_N) -> set[tuple[str, ...]]:
    tokens = ngram_tokens(text)
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def record_text(record: Mapping[str, Any]) -> str:
    """The training text of one record: instruction, input and output joined by newlines, then
    the ``content`` of every turn of a conversation field (a list of mappings), if it has one."""
    parts = [str(record.get(name) or "") for name in TEXT_FIELDS]
    for value in record.values():
        if isinstance(value, list):
            parts.extend(
                turn["content"]
                for turn in value
                if isinstance(turn, Mapping) and isinstance(turn.get("content"), str)
            )
    return "\n".join(parts)


def record_texts(records: Iterable[Mapping[str, Any]]) -> Iterable[tuple[str, str]]:
    """(record id, text) pairs from dataset snapshot records (see :func:`record_text`)."""
    for index, record in enumerate(records):
        yield str(record.get("record_id") or index), record_text(record)


def find_contaminated(
    items: Iterable[CheckedItem],
    texts: Iterable[tuple[str, str]],
    *,
    n: int = DEFAULT_N,
) -> list[Contamination]:
    """Items whose prompt or reference shares an ``n``-gram with one of ``texts`` (pairs of
    record id and text), in benchmark order."""
    if n < 1:
        raise ValueError("n must be positive")
    owners: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    order: list[str] = []
    for item in items:
        order.append(item.id)
        for name, text in (("prompt", item.prompt), ("reference", item.reference)):
            for gram in ngrams(text, n):
                owners.setdefault(gram, []).append((item.id, name))
    hits: dict[str, dict[str, set[object]]] = {}
    for record_id, text in texts:
        tokens = ngram_tokens(text)
        for i in range(len(tokens) - n + 1):
            gram = tuple(tokens[i : i + n])
            for item_id, name in owners.get(gram, ()):
                hit = hits.setdefault(item_id, {"fields": set(), "grams": set(), "records": set()})
                hit["fields"].add(name)
                hit["grams"].add(gram)
                hit["records"].add(record_id)
    found = []
    for item_id in order:
        if item_id not in hits:
            continue
        hit = hits[item_id]
        found.append(
            Contamination(
                item_id=item_id,
                fields=tuple(f for f in ("prompt", "reference") if f in hit["fields"]),
                shared_ngrams=len(hit["grams"]),
                record_ids=tuple(sorted(str(r) for r in hit["records"]))[:20],
            )
        )
    return found
