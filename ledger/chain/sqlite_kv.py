"""py-evm's key-value store kept in a SQLite file, shared safely by several processes.

Reads go through an in-process cache to the file; writes stay in a buffer until
:meth:`SqliteKV.commit` writes them under SQLite's write lock together with a generation counter,
which other processes compare with the one they last saw to know when to reload.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from eth.db.backends.base import BaseDB

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""


class SqliteKV(BaseDB):
    """py-evm key-value store backed by SQLite.

    Reads go through an in-process cache to the file; writes stay in a buffer until :meth:`commit`,
    which writes them, bumps the generation and commits in one SQLite transaction.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are opened explicitly (BEGIN IMMEDIATE) around writes.
        self._conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=30.0
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._cache: dict[bytes, bytes] = {}
        self._pending: dict[bytes, bytes | None] = {}
        self.seen_generation = self.stored_generation()

    # -- BaseDB
    def __getitem__(self, key: bytes) -> bytes:
        if key in self._pending:
            value = self._pending[key]
            if value is None:
                raise KeyError(key)
            return value
        try:
            return self._cache[key]
        except KeyError:
            pass
        row = self._conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        self._cache[key] = row[0]
        return bytes(row[0])

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._pending[key] = value

    def __delitem__(self, key: bytes) -> None:
        if not self._exists(key):
            raise KeyError(key)
        self._pending[key] = None

    def _exists(self, key: bytes) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    # -- metadata
    def meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def stored_generation(self) -> int:
        return int(self.meta("generation") or 0)

    def is_empty(self) -> bool:
        return self.meta("format") is None

    # -- transactions
    def begin(self) -> None:
        """Take the file's write lock (waits for another writer up to the connection timeout)."""
        self._conn.execute("BEGIN IMMEDIATE")

    def commit(self, **meta: str) -> None:
        """Write the buffered keys and ``meta``, bump the generation and release the lock."""
        upserts = [(k, v) for k, v in self._pending.items() if v is not None]
        deletes = [(k,) for k, v in self._pending.items() if v is None]
        self._conn.executemany("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", upserts)
        self._conn.executemany("DELETE FROM kv WHERE k = ?", deletes)
        generation = self.stored_generation() + 1
        meta["generation"] = str(generation)
        self._conn.executemany(
            "INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", list(meta.items())
        )
        self._conn.execute("COMMIT")
        for k, v in self._pending.items():
            if v is None:
                self._cache.pop(k, None)
            else:
                self._cache[k] = v
        self._pending.clear()
        self.seen_generation = generation

    def rollback(self) -> None:
        """Drop the buffered keys and release the lock."""
        self._pending.clear()
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def forget(self) -> None:
        """Drop cached reads (another process changed the file)."""
        self._cache.clear()
        self.seen_generation = self.stored_generation()

    def close(self) -> None:
        self._conn.close()
