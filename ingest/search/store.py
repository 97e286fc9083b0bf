"""The search index's file: one row per indexed record, keyed by its record id.

A row holds what search needs to answer without reading texts again: the record's filter
columns (batch, institution, discipline, task type, language, quality score), its terms and its
embedding vector. Both are derived from the record's text, so:

- terms are stored as keyed hashes (BLAKE2b-64 under the folder's secret, ``cache.key``, created
  like governance's, see :func:`ingest.governance.storage.load_cache_key`): BM25 only needs to
  tell terms apart, and the file lets nobody confirm a guessed word;
- an erasure deletes the record's row, overwritten with zeros (``secure_delete``) and flushed out
  of the write-ahead log (:func:`ingest.governance.storage.flush_erased`), so no byte derived from
  an erased text stays in the file.

The file also keeps the two positions the index follows the log by (the ``corpus-index`` stream
version and the erasure sequence), written in the same transaction as the rows they account for,
so a restart resumes exactly where the last process stopped. A file made under another key is
emptied on open and refilled from the log.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.governance.storage import flush_erased, key_id, load_cache_key
from ledger.files import private_database

INDEX_FILE = "search.sqlite"
_CHUNK = 900


@dataclass(frozen=True, slots=True)
class SearchDocument:
    """A record as the index holds it (terms already hashed)."""

    record_id: str
    batch_id: str
    institution_id: str
    discipline: str
    task_type: str
    language: str
    quality: float | None
    model: str
    """The embedding model of ``vector`` (the model of the record's language)."""
    terms: tuple[str, ...]
    vector: np.ndarray


class SearchStore:
    """The rows of :class:`SearchDocument` and the index's two log positions, in SQLite."""

    SCHEME = "blake2b-64/1"

    def __init__(self, directory: Path) -> None:
        self._key = load_cache_key(directory)
        path = directory / INDEX_FILE
        private_database(path)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30.0)
        self._conn.execute("PRAGMA secure_delete=ON")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._memo: dict[str, str] = {}
        self._create_schema()

    def term_hash(self, term: str) -> str:
        """The keyed hash a term is stored and looked up as."""
        hashed = self._memo.get(term)
        if hashed is None:
            data = term.encode("utf-8", "surrogatepass")
            hashed = hashlib.blake2b(data, key=self._key, digest_size=8).hexdigest()
            if len(self._memo) < 1_000_000:
                self._memo[term] = hashed
        return hashed

    def positions(self) -> tuple[int, int]:
        """``(corpus-index version, erasure sequence)`` the stored rows reflect."""
        rows = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        return int(rows.get("corpus_index", 0)), int(rows.get("erasures", 0))

    def put(self, documents: Sequence[SearchDocument], *, position: int) -> None:
        """Store ``documents`` (replacing rows of the same records) and the ``corpus-index``
        version they bring the index to, in one transaction."""
        with self._conn:
            self._conn.executemany(
                "INSERT OR REPLACE INTO docs (record_id, batch_id, institution_id, discipline,"
                " task_type, language, quality, model, terms, vector)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        d.record_id,
                        d.batch_id,
                        d.institution_id,
                        d.discipline,
                        d.task_type,
                        d.language,
                        d.quality,
                        d.model,
                        " ".join(d.terms),
                        np.asarray(d.vector, dtype=np.float32).tobytes(),
                    )
                    for d in documents
                ],
            )
            self._set("corpus_index", position)

    def delete(self, record_ids: Sequence[str], *, erasures: int) -> int:
        """Delete the rows of ``record_ids`` (zeroed on disk) and record the erasure sequence
        applied; how many rows there were."""
        deleted = 0
        with self._conn:
            for start in range(0, len(record_ids), _CHUNK):
                chunk = list(record_ids[start : start + _CHUNK])
                marks = ",".join("?" * len(chunk))
                cursor = self._conn.execute(f"DELETE FROM docs WHERE record_id IN ({marks})", chunk)
                deleted += max(cursor.rowcount, 0)
            self._set("erasures", erasures)
        if deleted:
            flush_erased(self._conn)
        return deleted

    def load(self) -> Iterable[SearchDocument]:
        """Every stored row."""
        for row in self._conn.execute(
            "SELECT record_id, batch_id, institution_id, discipline, task_type, language,"
            " quality, model, terms, vector FROM docs ORDER BY rowid"
        ):
            yield SearchDocument(
                record_id=row[0],
                batch_id=row[1],
                institution_id=row[2],
                discipline=row[3],
                task_type=row[4],
                language=row[5],
                quality=row[6],
                model=row[7],
                terms=tuple(row[8].split()),
                vector=np.frombuffer(row[9], dtype=np.float32),
            )

    def close(self) -> None:
        self._conn.close()

    def _set(self, key: str, value: int) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )

    def _create_schema(self) -> None:
        scheme = f"{self.SCHEME}/{key_id(self._key)}"
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            stored = self._conn.execute("SELECT value FROM meta WHERE key = 'scheme'").fetchone()
            dropped = stored is None or stored[0] != scheme
            if dropped:
                # Hashed under another key: the terms cannot be matched any more. Start over.
                self._conn.execute("DROP TABLE IF EXISTS docs")
                self._conn.execute("DELETE FROM meta")
                self._conn.execute("INSERT INTO meta (key, value) VALUES ('scheme', ?)", (scheme,))
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS docs ("
                " record_id TEXT PRIMARY KEY, batch_id TEXT NOT NULL,"
                " institution_id TEXT NOT NULL, discipline TEXT NOT NULL,"
                " task_type TEXT NOT NULL, language TEXT NOT NULL, quality REAL,"
                " model TEXT NOT NULL, terms TEXT NOT NULL, vector BLOB NOT NULL)"
            )
            self._conn.commit()
        except BaseException:
            self._conn.rollback()
            raise
        if dropped:
            flush_erased(self._conn)
