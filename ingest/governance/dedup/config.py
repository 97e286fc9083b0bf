"""The near-duplicate index's parameters and value types: configuration, items and matches."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from ingest.governance.errors import GovernanceError
from ingest.governance.minhash import SCHEME_VERSION
from ledger.canonical import record_history


class DedupError(GovernanceError):
    """Base class of errors raised by the near-duplicate index."""


class InvalidDedupConfig(DedupError, ValueError):
    """A :class:`DedupConfig` combination that cannot work."""


@dataclass(frozen=True)
class DedupConfig:
    """Parameters of the near-duplicate index.

    The signature scheme (``shingle_size``, ``num_perm``, ``lsh_bands``, ``lsh_rows``, ``seed``) is
    stored with the index; opening an index with a different scheme recomputes the stored
    signatures from the stored texts. Thresholds can change freely between runs.
    """

    shingle_size: int = field(
        default=2,
        metadata={
            "help": "Tokens per shingle. Bigrams keep reworded text similar enough to be an LSH "
            "candidate while unrelated records share almost none."
        },
    )
    num_perm: int = field(default=192, metadata={"help": "MinHash permutations per signature."})
    lsh_bands: int = field(default=64, metadata={"help": "LSH bands."})
    lsh_rows: int = field(
        default=3,
        metadata={
            "help": "Signature positions per band. 64 bands x 3 rows make a pair a candidate "
            "with probability 0.83 at Jaccard 0.3, 0.985 at 0.4, but only 0.008 at 0.05."
        },
    )
    seed: int = field(default=20240611, metadata={"help": "Seed of the MinHash permutations."})
    minhash_threshold: float = field(
        default=0.7,
        metadata={
            "help": "Estimated Jaccard similarity at or above which a candidate is a "
            "duplicate without looking at embeddings."
        },
    )
    embedding_min_jaccard: float = field(
        default=0.2,
        metadata={
            "help": "Candidates below this estimated Jaccard similarity are dropped without "
            "being embedded (bounds model time)."
        },
    )
    embedding_threshold: float = field(
        default=0.85,
        metadata={
            "help": "Calibrated embedding similarity at or above which a candidate is a "
            "reworded duplicate. Measured: rewordings 0.92-0.96, same-topic records <= 0.7."
        },
    )

    def __post_init__(self) -> None:
        if self.shingle_size < 1:
            raise InvalidDedupConfig("shingle_size must be at least 1")
        if self.lsh_bands < 1 or self.lsh_rows < 1:
            raise InvalidDedupConfig("lsh_bands and lsh_rows must be at least 1")
        if self.lsh_bands * self.lsh_rows > self.num_perm:
            raise InvalidDedupConfig(
                f"lsh_bands * lsh_rows ({self.lsh_bands * self.lsh_rows}) exceeds num_perm "
                f"({self.num_perm})"
            )
        for name in ("minhash_threshold", "embedding_min_jaccard", "embedding_threshold"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise InvalidDedupConfig(f"{name} must be in (0, 1], got {value}")
        if self.embedding_min_jaccard > self.minhash_threshold:
            raise InvalidDedupConfig("embedding_min_jaccard must not exceed minhash_threshold")

    def scheme(self) -> str:
        """The signature scheme as canonical JSON (what stored signatures depend on)."""
        params = asdict(self)
        keys = ("shingle_size", "num_perm", "lsh_bands", "lsh_rows", "seed")
        return json.dumps(
            {"version": SCHEME_VERSION, **{k: params[k] for k in keys}}, sort_keys=True
        )


@dataclass(frozen=True)
class DedupItem:
    """A record as the index sees it: its id, the text compared, and its language."""

    record_id: str
    text: str
    language: str

    @classmethod
    def from_record(cls, record_id: str, record: Mapping[str, Any]) -> DedupItem:
        """The item of a canonical record: instruction, input (if any) and output, one per line;
        a multi-turn record's earlier turns come first, oldest first (its system prompt is left
        out: two dialogues that differ only in it teach the same thing)."""
        earlier = [text for pair in record_history(record) for text in pair]
        parts = [*earlier, record["instruction"], record.get("input", ""), record["output"]]
        return cls(
            record_id=record_id,
            text="\n".join(part for part in parts if part),
            language=record["language"],
        )


class DuplicateMethod(StrEnum):
    EXACT = "exact"
    MINHASH = "minhash"
    EMBEDDING = "embedding"


@dataclass(frozen=True)
class DuplicateMatch:
    """The earlier record an item duplicates, and how that was found.

    ``similarity`` is 1.0 for ``exact``, the estimated Jaccard similarity of the shingle sets for
    ``minhash``, and the calibrated embedding similarity for ``embedding``.
    """

    record_id: str
    method: DuplicateMethod
    similarity: float
