"""The index's SQLite file: records with their exact keys, signatures and texts, and metadata.

One table of records (append order is ``seq``), one of metadata: the signature ``scheme`` the stored
signatures were computed under, the ``exact_scheme`` of the stored exact keys (keyed hashes, with
the id of the key, see :mod:`ingest.governance.storage`), a ``generation`` counter bumped by every
committed change (so other instances know to reload) and the ``position`` of the source the
records reflect. A file whose exact keys were made otherwise (the plain sha256 of earlier
versions, another key) has them recomputed from the stored texts on open.

Deleted rows are overwritten with zeros and flushed out of the write-ahead log
(:func:`~ingest.governance.storage.flush_erased`): an erased record's text, keys and signature
leave the file. :func:`erase_records` does that on a file without opening it as an index.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ingest.governance.minhash import exact_key, normalize_text
from ingest.governance.storage import flush_erased, key_id, load_cache_key
from ledger.files import private_database

_LOOKUP_CHUNK = 900

EXACT_SCHEME = "hmac-sha256/1"
"""How exact keys are made (:func:`~ingest.governance.minhash.exact_key`); stored with the key's
id."""

Signatures = Callable[[list[str]], np.ndarray]
"""Normalized texts -> one MinHash signature per row."""


class IndexStore:
    """The SQLite file of one index (owner-only, see :mod:`ledger.files`). Not thread-safe on its
    own: the index serializes calls.

    ``key`` keys the exact-duplicate hashes; by default the secret of the file's folder.
    """

    def __init__(
        self, path: Path, *, scheme: str, signatures: Signatures, key: bytes | None = None
    ) -> None:
        self._key = load_cache_key(path.parent) if key is None else key
        private_database(path)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30.0)
        self._scheme = scheme
        self._exact_scheme = f"{EXACT_SCHEME}/{key_id(self._key)}"
        self._signatures = signatures
        self._create_schema()

    @property
    def transaction(self) -> sqlite3.Connection:
        """``with store.transaction:`` commits the writes inside, or rolls them back."""
        return self._conn

    def exact_key(self, normalized: str) -> bytes:
        """The exact-duplicate key of a normalized text, under this file's key."""
        return exact_key(normalized, key=self._key)

    def generation(self) -> int:
        (value,) = self._conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return int(value)

    def bump_generation(self) -> int:
        """Count one more committed change (inside the caller's transaction)."""
        return _bump_generation(self._conn)

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
        flush_erased(self._conn)
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
            stored_exact = self._conn.execute(
                "SELECT value FROM meta WHERE key = 'exact_scheme'"
            ).fetchone()
            rebuilt = False
            if stored is None:
                self._conn.execute("INSERT INTO meta VALUES ('scheme', ?)", (self._scheme,))
            elif stored[0] != self._scheme:
                rebuilt = self._rebuild(signatures=True)
            elif stored_exact is None or stored_exact[0] != self._exact_scheme:
                # Plain sha256 keys of earlier versions, or keys made under another secret.
                rebuilt = self._rebuild(signatures=False)
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES ('exact_scheme', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (self._exact_scheme,),
            )
        if rebuilt:
            # The replaced keys must not stay in the log or in the database file's old pages.
            flush_erased(self._conn)

    def _rebuild(self, *, signatures: bool) -> bool:
        """Recompute every stored exact key, and the signatures too when ``signatures``, under
        the configured scheme and key; whether any record was stored.

        Runs inside the caller's transaction.
        """
        rows = self._conn.execute("SELECT seq, text FROM records").fetchall()
        normalized = [normalize_text(text) for _, text in rows]
        if signatures:
            sigs = self._signatures(normalized)
            self._conn.executemany(
                "UPDATE records SET exact_key = ?, signature = ? WHERE seq = ?",
                [
                    (self.exact_key(norm), sig.tobytes(), seq)
                    for (seq, _), norm, sig in zip(rows, normalized, sigs, strict=True)
                ],
            )
            self._conn.execute("UPDATE meta SET value = ? WHERE key = 'scheme'", (self._scheme,))
        else:
            self._conn.executemany(
                "UPDATE records SET exact_key = ? WHERE seq = ?",
                [
                    (self.exact_key(norm), seq)
                    for (seq, _), norm in zip(rows, normalized, strict=True)
                ],
            )
        if rows:
            self.bump_generation()
        return bool(rows)


def erase_records(path: Path, record_ids: Sequence[str]) -> list[tuple[str, str]]:
    """Delete records from the index file at ``path`` without opening it as an index (no
    signature scheme, no key, no model); returns the ``(language, text)`` of those it held.

    The rows are zeroed, the log flushed, and the generation bumped when anything was deleted,
    so every open :class:`~ingest.governance.dedup.DedupIndex` on the file reloads on its next
    call. A missing file, or one without records, erases nothing. The log is flushed even then,
    so that repeating an erasure that raised :class:`~ingest.governance.storage.ErasureIncomplete`
    finishes it.
    """
    if not path.exists():
        return []
    private_database(path)
    conn = sqlite3.connect(str(path), timeout=30.0)
    try:
        conn.execute("PRAGMA secure_delete=ON")
        has_records = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'records'"
        ).fetchone()
        if has_records is None:
            return []
        erased: list[tuple[str, str]] = []
        with conn:
            for start in range(0, len(record_ids), _LOOKUP_CHUNK):
                chunk = list(record_ids[start : start + _LOOKUP_CHUNK])
                marks = ",".join("?" * len(chunk))
                erased.extend(
                    (str(language), str(text))
                    for language, text in conn.execute(
                        f"DELETE FROM records WHERE record_id IN ({marks})"
                        " RETURNING language, text",
                        chunk,
                    )
                )
            if erased:
                _bump_generation(conn)
        flush_erased(conn)
        return erased
    finally:
        conn.close()


def _bump_generation(conn: sqlite3.Connection) -> int:
    (value,) = conn.execute(
        "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'"
        " RETURNING value"
    ).fetchone()
    return int(value)
