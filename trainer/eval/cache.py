"""The evaluation cache and the content hashes that key it.

Everything a model computes for an evaluation (a generated answer, a reference log-likelihood, a
glossary probe) is stored under a key that names exactly what determines it: the model (the base
model hash, plus the adapter hash for an adapter), the item's id and content hash, and the
decoding settings. An evaluation looks every result up before computing it, so a rerun computes
only what is missing: an interrupted evaluation resumes where it stopped, and a changed item,
adapter or setting is recomputed because its key changes. Entries are never updated in place.

The cache is one SQLite file (``BYR_HOME/eval/cache/cache.db``); each entry is committed on its
own, so an interruption loses at most the entry being computed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any

from ledger.files import private_database, private_dir

CACHE_FILE = "cache.db"
KEY_VERSION = 1
"""Bumped when what a key covers changes, so old entries are no longer found."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, frozenset | set):
        return sorted(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot hash a {type(value).__name__}")


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, UTF-8 text: the same value always gives the same string."""
    return json.dumps(
        value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_jsonable
    )


def item_content_hash(item: Any) -> str:
    """sha256 (hex) of every field of a benchmark or control item (a dataclass)."""
    return hashlib.sha256(canonical_json(dataclasses.asdict(item)).encode("utf-8")).hexdigest()


def benchmark_hash(*, name: str, version: str, items: Iterable[Any]) -> str:
    """sha256 (hex) of a benchmark: its name and version, then each item's content hash, in
    order."""
    digest = hashlib.sha256(f"{name}\0{version}\0".encode())
    for item in items:
        digest.update(item_content_hash(item).encode("ascii") + b"\n")
    return digest.hexdigest()


def cache_key(kind: str, **parts: Any) -> str:
    """The key of one cached result: sha256 over the kind and the parts that determine it."""
    document = {"kind": kind, "key_version": KEY_VERSION, **parts}
    return hashlib.sha256(canonical_json(document).encode("utf-8")).hexdigest()


class EvalCache:
    """A key -> JSON value store in one SQLite file (owner-only)."""

    def __init__(self, directory: Path) -> None:
        private_dir(directory)
        self.path = private_database(directory / CACHE_FILE)
        self._conn = sqlite3.connect(self.path, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            " WITHOUT ROWID"
        )

    def __enter__(self) -> EvalCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._conn.close()

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._conn.execute("SELECT value FROM results WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row is not None else None

    def put(self, key: str, value: Mapping[str, Any]) -> None:
        """Store ``value`` under ``key`` (committed at once; a key already present keeps its
        first value, which is the same result)."""
        self._conn.execute(
            "INSERT OR IGNORE INTO results (key, value) VALUES (?, ?)",
            (key, canonical_json(dict(value))),
        )

    def __len__(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])
