"""The record store: the deletable home of every record's text, salt and unsalted hash.

The event log is immutable, so it never holds what erasure must be able to remove. A submission
writes each record's *body* (its canonical fields, its salt and ``record_hash``) here, then appends
``CorpusBatchSubmitted`` carrying only the record id, leaf, index and non-text metadata. Reading a
record joins the projection with this store; erasing a record deletes its body here (and wherever
a backend keeps copies), after which only the salted leaf remains anywhere, and the leaf cannot be
linked back to a text without the salt.

Backends:

- :class:`SqliteRecordStore`: one SQLite file shared by every process of a home
  (``BYR_HOME/records.db``). ``secure_delete`` overwrites erased rows with zeros and every erasure
  ends with a ``TRUNCATE`` checkpoint, so erased bytes leave the write-ahead log as well.
- :class:`MemoryRecordStore`: for tests and the in-memory event log.
- ``ledger.recordstore.kafka``: a compacted Kafka topic keyed by record id, materialized into a
  local :class:`SqliteRecordStore` by each process; erasure writes a tombstone.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.errors import LedgerError
from ledger.files import private_database

__all__ = [
    "MemoryRecordStore",
    "RecordBody",
    "RecordStore",
    "RecordStoreError",
    "SqliteRecordStore",
]

_CHUNK = 900


class RecordStoreError(LedgerError):
    """The record store cannot be opened, read or written."""


@dataclass(frozen=True, slots=True)
class RecordBody:
    """What erasure removes: a record's canonical fields, its salt and its unsalted hash."""

    record_id: str
    batch_id: str
    record: dict[str, Any]
    """The canonical record (:func:`ledger.canonical.canonical_record`): strings, and
    ``history`` as string pairs when present."""
    salt: str
    """0x-prefixed 32-byte hex."""
    record_hash: str
    """0x-prefixed sha256 of the record's RFC 8785 JSON."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "record_id": self.record_id,
                "batch_id": self.batch_id,
                "record": self.record,
                "salt": self.salt,
                "record_hash": self.record_hash,
            },
            ensure_ascii=False,
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> RecordBody:
        data: dict[str, Any] = json.loads(text)
        return cls(
            record_id=str(data["record_id"]),
            batch_id=str(data["batch_id"]),
            record={str(k): _field(v) for k, v in data["record"].items()},
            salt=str(data["salt"]),
            record_hash=str(data["record_hash"]),
        )


def _field(value: Any) -> Any:
    """A stored field as it was written: a string, or ``history``'s list of string pairs."""
    if isinstance(value, list):
        return [[str(text) for text in pair] for pair in value]
    return str(value)


class RecordStore(ABC):
    """Bodies by record id. Writes are idempotent; erasing an absent body is a no-op."""

    @abstractmethod
    def put_many(self, bodies: Sequence[RecordBody]) -> None:
        """Store ``bodies``; a body already stored under its record id is kept as it is."""

    @abstractmethod
    def get_many(self, record_ids: Sequence[str]) -> dict[str, RecordBody]:
        """The stored bodies of those ``record_ids`` that have one."""

    @abstractmethod
    def erase(self, record_ids: Sequence[str]) -> list[str]:
        """Delete the bodies of ``record_ids`` from every copy this store controls; returns the
        ids whose body was present here."""

    def forget_local(self, record_ids: Sequence[str]) -> list[str]:
        """Delete this process's copy of the bodies (after another process erased them);
        a shared store has no separate local copy, so this is :meth:`erase`."""
        return self.erase(record_ids)

    def get(self, record_id: str) -> RecordBody | None:
        return self.get_many([record_id]).get(record_id)

    def refresh(self) -> None:  # noqa: B027 - optional hook, a no-op for shared stores
        """Catch up with bodies other processes wrote (backends that keep local copies)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the store's resources."""


class MemoryRecordStore(RecordStore):
    """Bodies in a dict, for tests and the in-memory log."""

    def __init__(self) -> None:
        self._bodies: dict[str, RecordBody] = {}
        self._lock = threading.Lock()

    def put_many(self, bodies: Sequence[RecordBody]) -> None:
        with self._lock:
            for body in bodies:
                self._bodies.setdefault(body.record_id, body)

    def get_many(self, record_ids: Sequence[str]) -> dict[str, RecordBody]:
        with self._lock:
            return {i: self._bodies[i] for i in record_ids if i in self._bodies}

    def erase(self, record_ids: Sequence[str]) -> list[str]:
        with self._lock:
            return [i for i in dict.fromkeys(record_ids) if self._bodies.pop(i, None) is not None]

    def __len__(self) -> int:
        return len(self._bodies)


class SqliteRecordStore(RecordStore):
    """Bodies in one owner-only SQLite file; safe for several processes and threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            private_database(self.path)
            self._conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=60
            )
            self._conn.execute("PRAGMA journal_mode = WAL")
            # An erased row's bytes are overwritten with zeros, not left in a free page.
            self._conn.execute("PRAGMA secure_delete = ON")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS bodies ("
                " record_id TEXT PRIMARY KEY, batch_id TEXT NOT NULL, body TEXT NOT NULL)"
                " WITHOUT ROWID"
            )
            self._conn.execute("CREATE INDEX IF NOT EXISTS bodies_by_batch ON bodies (batch_id)")
        except (sqlite3.Error, OSError) as exc:
            raise RecordStoreError(f"cannot open the record store {self.path}: {exc}") from exc

    def __repr__(self) -> str:
        return f"SqliteRecordStore({str(self.path)!r})"

    def put_many(self, bodies: Sequence[RecordBody]) -> None:
        if not bodies:
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR IGNORE INTO bodies (record_id, batch_id, body) VALUES (?, ?, ?)",
                    [(b.record_id, b.batch_id, b.to_json()) for b in bodies],
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def get_many(self, record_ids: Sequence[str]) -> dict[str, RecordBody]:
        found: dict[str, RecordBody] = {}
        ids = list(dict.fromkeys(record_ids))
        with self._lock:
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                for _, body in self._conn.execute(
                    f"SELECT record_id, body FROM bodies WHERE record_id IN ({marks})", chunk
                ):
                    parsed = RecordBody.from_json(body)
                    found[parsed.record_id] = parsed
        return found

    def erase(self, record_ids: Sequence[str]) -> list[str]:
        ids = list(dict.fromkeys(record_ids))
        if not ids:
            return []
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                present: list[str] = []
                for chunk in _chunks(ids):
                    marks = ",".join("?" * len(chunk))
                    present += [
                        row[0]
                        for row in self._conn.execute(
                            f"DELETE FROM bodies WHERE record_id IN ({marks}) RETURNING record_id",
                            chunk,
                        )
                    ]
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            if present:
                self.checkpoint()
        return sorted(present, key=ids.index)

    def checkpoint(self) -> None:
        """Move every committed page into the main file and truncate the write-ahead log, so the
        zeroed pages of an erasure replace the old ones and no frame keeps the erased bytes.

        A reader in another process can hold the log open; the checkpoint is retried briefly and
        then left to the next erasure or to SQLite's own checkpoint (which writes the zeroed pages
        over the old ones in place)."""
        for _ in range(50):
            busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy:
                return
            threading.Event().wait(0.02)

    def record_ids(self) -> list[str]:
        with self._lock:
            return [row[0] for row in self._conn.execute("SELECT record_id FROM bodies")]

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._conn.execute("SELECT COUNT(*) FROM bodies").fetchone()
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
