"""The index's SQLite file: records with their exact keys, signatures and texts, and metadata.

One table of records (append order is ``seq``), one of metadata: the signature ``scheme`` the stored
signatures were computed under, a ``generation`` counter bumped by every committed change (so other
instances know to reload) and the ``position`` of the source the records reflect.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ingest.governance.minhash import exact_key, normalize_text
from ledger.files import private_database

_LOOKUP_CHUNK = 900

Signatures = Callable[[list[str]], np.ndarray]
"""Normalized texts -> one MinHash signature per row."""


class IndexStore:
    """The SQLite file of one index (owner-only, see :mod:`ledger.files`). Not thread-safe on its
    own: the index serializes calls."""

    def __init__(self, path: Path, *, scheme: str, signatures: Signatures) -> None:
        private_database(path)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30.0)
        self._scheme = scheme
        self._signatures = signatures
        self._create_schema()

    @property
    def transaction(self) -> sqlite3.Connection:
        """``with store.transaction:`` commits the writes inside, or rolls them back."""
        return self._conn

    def generation(self) -> int:
        (value,) = self._conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(value)

    def bump_generation(self) -> int:
        """Count one more committed change (inside the caller's transaction)."""
        (value,) = self._conn.execute(
            "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
            " RETURNING value"
        ).fetchone()
        return int(value)

    def position(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'position'").fetchone()
        return int(row[0]) if row else 0

    def set_position(self, position: int) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES ('position', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(position),),
        )

    def insert(self, rows: Sequence[tuple[str, str, bytes, bytes, str]]) -> None:
        """``(record_id, language, exact_key, signature, text)`` rows, inside a transaction."""
        self._conn.executemany(
            "INSERT INTO records (record_id, language, exact_key, signature, text)"
            " VALUES (?, ?, ?, ?, ?)",
            rows,
        )

    def rows(self) -> list[tuple[str, str, bytes, bytes]]:
        """Every stored ``(record_id, language, exact_key, signature)``, in append order."""
        return [
            (row[0], row[1], bytes(row[2]), bytes(row[3]))
            for row in self._conn.execute(
                "SELECT record_id, language, exact_key, signature FROM records ORDER BY seq"
            )
        ]

    def texts(self, record_ids: Sequence[str]) -> dict[str, str]:
        texts: dict[str, str] = {}
        for start in range(0, len(record_ids), _LOOKUP_CHUNK):
            chunk = record_ids[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            texts.update(
                self._conn.execute(
                    f"SELECT record_id, text FROM records WHERE record_id IN ({marks})", chunk
                )
            )
        return texts

    def delete(self, record_id: str) -> tuple[str, str, int] | None:
        """Delete a record and zero its pages; returns its ``(language, text)`` and the new
        generation if it was stored.

        Commits, and bumps the generation in the same transaction.
        """
        row = self._conn.execute(
            "SELECT language, text FROM records WHERE record_id = ?", (record_id,)
        ).fetchone()
        if row is None:
            return None
        with self._conn:
            self._conn.execute("DELETE FROM records WHERE record_id = ?", (record_id,))
            generation = self.bump_generation()
        # Erasure: move the zeroed pages out of the write-ahead log into the main file too.
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return str(row[0]), str(row[1]), generation

    def close(self) -> None:
        self._conn.close()

    def _create_schema(self) -> None:
        with self._conn:
            self._conn.execute("PRAGMA journal_mode=WAL")
            # Deleted rows (erased texts) are overwritten with zeros, not left in free pages.
            self._conn.execute("PRAGMA secure_delete=ON")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS records ("
                " seq INTEGER PRIMARY KEY,"
                " record_id TEXT NOT NULL UNIQUE,"
                " language TEXT NOT NULL,"
                " exact_key BLOB NOT NULL,"
                " signature BLOB NOT NULL,"
                " text TEXT NOT NULL)"
            )
            self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
            stored = self._conn.execute("SELECT value FROM meta WHERE key = 'scheme'").fetchone()
            if stored is None:
                self._conn.execute("INSERT INTO meta VALUES ('scheme', ?)", (self._scheme,))
            elif stored[0] != self._scheme:
                self._rebuild_signatures()

    def _rebuild_signatures(self) -> None:
        """Recompute every stored exact key and signature under the configured scheme.

        Runs inside the caller's transaction.
        """
        rows = self._conn.execute("SELECT seq, text FROM records").fetchall()
        normalized = [normalize_text(text) for _, text in rows]
        sigs = self._signatures(normalized)
        self._conn.executemany(
            "UPDATE records SET exact_key = ?, signature = ? WHERE seq = ?",
            [
                (exact_key(norm), sig.tobytes(), seq)
                for (seq, _), norm, sig in zip(rows, normalized, sigs, strict=True)
            ],
        )
        self._conn.execute("UPDATE meta SET value = ? WHERE key = 'scheme'", (self._scheme,))
        self.bump_generation()

    def _set_position(self, position: int) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES ('position', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(position),),
        )
