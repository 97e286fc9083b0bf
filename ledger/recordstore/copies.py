"""A process's local copy of bodies that travel on a shared log (:mod:`ledger.recordstore.kafka`).

The copy is a :class:`~ledger.recordstore.SqliteRecordStore` file with one more table: for every
partition of the topic, the offset read up to. Bodies, deletions and offsets change in one
transaction, so a process that stops half-way reads the same records again and applying them
twice changes nothing (bodies are inserted unless present, tombstones delete).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from ledger.recordstore import RecordBody, RecordStoreError, SqliteRecordStore

__all__ = ["LocalCopy"]

_CHUNK = 500


class LocalCopy(SqliteRecordStore):
    """Bodies read from a topic, and per ``(topic, partition)`` the next offset to read."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        try:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS kafka_positions ("
                " topic TEXT NOT NULL, partition INTEGER NOT NULL, next_offset INTEGER NOT NULL,"
                " PRIMARY KEY (topic, partition)) WITHOUT ROWID"
            )
        except sqlite3.Error as exc:
            self.close()
            raise RecordStoreError(f"cannot open the record store {self.path}: {exc}") from exc

    def positions(self, topic: str) -> dict[int, int]:
        """Partition -> next offset to read, for the partitions of ``topic`` read so far."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT partition, next_offset FROM kafka_positions WHERE topic = ?", (topic,)
            ).fetchall()
        return {int(p): int(o) for p, o in rows}

    def apply(
        self,
        *,
        topic: str,
        bodies: Sequence[RecordBody],
        erased: Sequence[str],
        positions: dict[int, int],
    ) -> None:
        """In one transaction: add ``bodies`` (a body already here is kept), delete the
        ``erased`` ids and store ``positions``; erased bytes then leave the write-ahead log."""
        deleted = 0
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for start in range(0, len(erased), _CHUNK):
                        chunk = erased[start : start + _CHUNK]
                        marks = ",".join("?" * len(chunk))
                        deleted += self._conn.execute(
                            f"DELETE FROM bodies WHERE record_id IN ({marks})", chunk
                        ).rowcount
                    self._conn.executemany(
                        "INSERT OR IGNORE INTO bodies (record_id, batch_id, body) VALUES (?, ?, ?)",
                        [(b.record_id, b.batch_id, b.to_json()) for b in bodies],
                    )
                    self._conn.executemany(
                        "INSERT INTO kafka_positions (topic, partition, next_offset)"
                        " VALUES (?, ?, ?) ON CONFLICT (topic, partition)"
                        " DO UPDATE SET next_offset = excluded.next_offset",
                        [(topic, p, o) for p, o in positions.items()],
                    )
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise RecordStoreError(
                    f"updating the record store {self.path} failed: {exc}"
                ) from None
            if deleted:
                self.checkpoint()

    def __repr__(self) -> str:
        return f"LocalCopy({str(self.path)!r})"
