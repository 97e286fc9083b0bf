"""The embedded event log: one SQLite file in WAL mode.

Durability. Every connection runs with ``synchronous=FULL`` by default: in WAL mode, ``NORMAL``
already keeps every committed transaction when the *process* dies (the WAL frames are in the OS by
the time COMMIT returns), but a power loss or kernel crash may roll back the last commits. Events in
this log drive irreversible chain writes, so the default also survives those; ``synchronous=normal``
in the URL trades that for speed where the log is disposable.

Concurrency. Writers take the database write lock with ``BEGIN IMMEDIATE`` before checking stream
versions, so of two appends (threads or processes) expecting the same version exactly one commits
and the other raises :class:`ConcurrencyConflict`. The unique index on ``(stream_id, sequence)``
backs this up if the ``stream_heads`` table were ever wrong. Hashing happens before the lock is
taken (the stream head it chains to is re-checked under the lock), so the lock is held only for the
inserts.

Positions are ``INTEGER PRIMARY KEY AUTOINCREMENT``: with a single writer at a time they are handed
out in commit order with no gaps, and never reused, so a reader never sees position ``n + 1`` before
``n`` and a missing position means a deleted row.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from ledger.eventlog.base import (
    ChainVerifier,
    ConcurrencyConflict,
    EventLog,
    EventLogError,
    EventLogURLError,
    IntegrityIssue,
    IntegrityProblem,
    IntegrityReport,
    SealedFields,
    StreamAppend,
    StreamHead,
    seal_fields,
    validate_appends,
)
from ledger.events import ZERO_HASH, Envelope
from ledger.files import private_database

Synchronous = Literal["NORMAL", "FULL", "EXTRA"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    stream_id TEXT NOT NULL,
    sequence INTEGER NOT NULL CHECK (sequence >= 1),
    event_type TEXT NOT NULL,
    schema_version INTEGER NOT NULL,
    occurred_at TEXT NOT NULL,
    payload TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_stream_sequence ON events (stream_id, sequence);
CREATE TABLE IF NOT EXISTS stream_heads (
    stream_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    last_hash TEXT NOT NULL
) WITHOUT ROWID;
"""

# Column order matches the Envelope constructor, so a row becomes an envelope without renaming.
_COLUMNS = (
    "event_id, stream_id, sequence, event_type, schema_version, occurred_at, payload, "
    "prev_hash, hash, position"
)
_INSERT_EVENT = (
    "INSERT INTO events (event_id, stream_id, sequence, event_type, schema_version, "
    "occurred_at, payload, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_HEAD = (
    "INSERT INTO stream_heads (stream_id, version, last_hash) VALUES (?, ?, ?) "
    "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, "
    "last_hash = excluded.last_hash"
)
_LAST_ISSUED = "SELECT seq FROM sqlite_sequence WHERE name = 'events'"
_PARAMS_PER_QUERY = 500
_PAGE_SIZE = 2000

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_loads = json.loads


def _envelope(row: tuple[Any, ...]) -> Envelope:
    return Envelope(
        row[0], row[1], row[2], row[3], row[4], row[5], _loads(row[6]), row[7], row[8], row[9]
    )


class SQLiteEventLog(EventLog):
    """:class:`EventLog` over one SQLite database file (created with its folder if missing).

    The file and its folder are owner-only (see :mod:`ledger.files`), tightened on open.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: Synchronous = "FULL",
        busy_timeout_s: float = 60.0,
    ) -> None:
        super().__init__()
        if synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL, FULL or EXTRA, got {synchronous!r}")
        self.path = Path(path)
        self.synchronous = synchronous
        self._busy_timeout_ms = int(busy_timeout_s * 1000)
        self._pool_lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        try:
            private_database(self.path)
            with self._connection() as conn:
                conn.execute("PRAGMA journal_mode = WAL")
                self._create_schema(conn)
        except (sqlite3.Error, OSError) as exc:
            self.close()
            raise EventLogError(f"cannot open event log {self.path}: {exc}") from exc

    def __repr__(self) -> str:
        return f"SQLiteEventLog({str(self.path)!r}, synchronous={self.synchronous!r})"

    # -- connections -----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=0
            )
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        except sqlite3.Error as exc:
            raise EventLogError(f"cannot open event log {self.path}: {exc}") from exc
        return conn

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """Borrow a pooled connection (one per concurrent caller; SQLite serializes writers)."""
        self._check_open()
        with self._pool_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.rollback()
            with self._pool_lock:
                if self._closed:
                    conn.close()
                else:
                    self._idle.append(conn)

    @staticmethod
    def _create_schema(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            (found,) = conn.execute("PRAGMA user_version").fetchone()
            if found not in (0, SCHEMA_VERSION):
                raise EventLogError(
                    f"event log schema version {found} is not supported (expected {SCHEMA_VERSION})"
                )
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    # -- writing ---------------------------------------------------------------------------------

    def append_many(self, appends: Sequence[StreamAppend]) -> list[Envelope]:
        validate_appends(appends)
        if not appends:
            return []
        with self._connection() as conn:
            # Seal (hash) outside the write lock: the head each stream chains to is read from
            # committed state here and re-checked under the lock before anything is inserted.
            heads = self._heads(conn, [a.stream_id for a in appends])
            _check_versions(appends, heads)
            sealed: list[SealedFields] = []
            head_rows: list[tuple[str, int, str]] = []
            for item in appends:
                head = heads.get(item.stream_id)
                fields = seal_fields(
                    item.events,
                    stream_id=item.stream_id,
                    after_sequence=item.expected_version,
                    prev_hash=head.last_hash if head else ZERO_HASH,
                )
                sealed.extend(fields)
                head_rows.append((item.stream_id, fields[-1][2], fields[-1][8]))
            rows = [(*f[:6], _dumps(f[6]), f[7], f[8]) for f in sealed]
            stream_ids = [a.stream_id for a in appends]
            try:
                conn.execute("BEGIN IMMEDIATE")
                current = self._heads(conn, stream_ids)
                if current != heads:
                    _check_versions(appends, current)
                    raise EventLogError("a stream head changed without changing its version")
                first = _last_issued(conn) + 1
                conn.executemany(_INSERT_EVENT, rows)
                conn.executemany(_UPSERT_HEAD, head_rows)
                if _last_issued(conn) != first + len(rows) - 1:
                    raise EventLogError("positions were not assigned contiguously")
                conn.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                conn.rollback()
                raise self._translate_integrity_error(conn, appends, exc) from exc
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.rollback()
                raise EventLogError(f"append to {self.path} failed: {exc}") from exc
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise
        self._notify_appended()
        return [Envelope(*fields, first + i) for i, fields in enumerate(sealed)]

    def _translate_integrity_error(
        self, conn: sqlite3.Connection, appends: Sequence[StreamAppend], exc: sqlite3.IntegrityError
    ) -> EventLogError:
        """Map a constraint violation to the error the caller can act on."""
        if "events.stream_id, events.sequence" in str(exc):
            # The stream_heads table disagreed with the stored events; the stored events win.
            for item in appends:
                (actual,) = conn.execute(
                    "SELECT COALESCE(MAX(sequence), 0) FROM events WHERE stream_id = ?",
                    (item.stream_id,),
                ).fetchone()
                if actual != item.expected_version:
                    return ConcurrencyConflict(item.stream_id, item.expected_version, actual)
        return EventLogError(f"append to {self.path} violates a constraint: {exc}")

    @staticmethod
    def _heads(conn: sqlite3.Connection, stream_ids: Sequence[str]) -> dict[str, StreamHead]:
        heads: dict[str, StreamHead] = {}
        for start in range(0, len(stream_ids), _PARAMS_PER_QUERY):
            chunk = stream_ids[start : start + _PARAMS_PER_QUERY]
            marks = ", ".join("?" * len(chunk))
            for stream_id, version, last_hash in conn.execute(
                f"SELECT stream_id, version, last_hash FROM stream_heads "
                f"WHERE stream_id IN ({marks})",
                chunk,
            ):
                heads[stream_id] = StreamHead(version, last_hash)
        return heads

    def import_sealed(
        self, rows: Sequence[tuple[Any, ...]], heads: Mapping[str, tuple[int, str]]
    ) -> None:
        """Fill an empty log with envelopes sealed elsewhere (``ledger.reseal``): ``rows`` are
        ``(event_id, stream_id, sequence, event_type, schema_version, occurred_at, payload,
        prev_hash, hash)`` in position order, ``heads`` each stream's ``(version, last_hash)``.
        One transaction; raises :class:`EventLogError` when the log is not empty."""
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if conn.execute("SELECT 1 FROM events LIMIT 1").fetchone() is not None:
                    raise EventLogError(f"{self.path} is not empty; refusing to import into it")
                conn.executemany(_INSERT_EVENT, [(*r[:6], _dumps(r[6]), r[7], r[8]) for r in rows])
                conn.executemany(_UPSERT_HEAD, [(stream, v, h) for stream, (v, h) in heads.items()])
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise
        self._notify_appended()

    # -- reading ---------------------------------------------------------------------------------

    def read_stream(self, stream_id: str, *, from_sequence: int = 1) -> Iterator[Envelope]:
        next_sequence = from_sequence
        while True:
            with self._connection() as conn:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM events WHERE stream_id = ? AND sequence >= ? "
                    "ORDER BY sequence LIMIT ?",
                    (stream_id, next_sequence, _PAGE_SIZE),
                ).fetchall()
            for row in rows:
                yield _envelope(row)
            if len(rows) < _PAGE_SIZE:
                return
            next_sequence = rows[-1][2] + 1

    def read_all(self, *, from_position: int = 0, limit: int | None = None) -> Iterator[Envelope]:
        # Page by position so no read transaction stays open while the consumer works (a long
        # reader would stop WAL checkpoints and let the WAL file grow).
        remaining = limit
        next_position = from_position
        while remaining is None or remaining > 0:
            page = _PAGE_SIZE if remaining is None else min(_PAGE_SIZE, remaining)
            with self._connection() as conn:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM events WHERE position >= ? ORDER BY position LIMIT ?",
                    (next_position, page),
                ).fetchall()
            for row in rows:
                yield _envelope(row)
            if len(rows) < page:
                return
            next_position = rows[-1][9] + 1
            if remaining is not None:
                remaining -= len(rows)

    def stream_version(self, stream_id: str) -> int:
        with self._connection() as conn:
            row = conn.execute(
                "SELECT version FROM stream_heads WHERE stream_id = ?", (stream_id,)
            ).fetchone()
        return int(row[0]) if row else 0

    def head_position(self) -> int:
        with self._connection() as conn:
            (position,) = conn.execute("SELECT COALESCE(MAX(position), 0) FROM events").fetchone()
        return int(position)

    # -- checking and lifecycle ------------------------------------------------------------------

    def verify_integrity(self) -> IntegrityReport:
        verifier = ChainVerifier(dense_positions=True)
        with self._connection() as conn:
            # One read transaction: the events, heads and issued position form one snapshot.
            conn.execute("BEGIN")
            try:
                for row in conn.execute(f"SELECT {_COLUMNS} FROM events ORDER BY position"):
                    try:
                        envelope = _envelope(row)
                    except (ValueError, TypeError) as exc:
                        verifier.skip_position(row[9])
                        verifier.add_problem(
                            IntegrityProblem(
                                IntegrityIssue.UNREADABLE,
                                f"stored payload is not JSON: {exc}",
                                stream_id=row[1],
                                sequence=row[2],
                                position=row[9],
                            )
                        )
                        continue
                    verifier.check(envelope)
                heads = {
                    stream_id: StreamHead(version, last_hash)
                    for stream_id, version, last_hash in conn.execute(
                        "SELECT stream_id, version, last_hash FROM stream_heads"
                    )
                }
                issued = _last_issued(conn)
            finally:
                conn.execute("COMMIT")
        return verifier.finish(heads=heads, issued_position=issued)

    def close(self) -> None:
        """Close every idle connection; connections in use close when their caller returns them."""
        with self._pool_lock:
            self._closed = True
            idle, self._idle = self._idle, []
            for conn in idle:
                conn.close()
        super().close()


def _check_versions(appends: Sequence[StreamAppend], heads: dict[str, StreamHead]) -> None:
    for item in appends:
        head = heads.get(item.stream_id)
        actual = head.version if head else 0
        if actual != item.expected_version:
            raise ConcurrencyConflict(item.stream_id, item.expected_version, actual)


def _last_issued(conn: sqlite3.Connection) -> int:
    row = conn.execute(_LAST_ISSUED).fetchone()
    return int(row[0]) if row else 0


def sqlite_url(path: str | Path, *, synchronous: Synchronous | None = None) -> str:
    """The ``sqlite://`` URL of the log at ``path`` (absolute paths give ``sqlite:////abs``)."""
    url = f"sqlite:///{path}"
    return f"{url}?synchronous={synchronous.lower()}" if synchronous else url


def open_url(url: str) -> SQLiteEventLog:
    """Open ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db``.

    The one query option is ``synchronous=normal|full|extra`` (default ``full``).
    """
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise EventLogURLError(f"not a sqlite URL: {url!r}")
    if parts.netloc:
        raise EventLogURLError(
            f"sqlite URLs take no host: write sqlite:///relative/path.db or "
            f"sqlite:////absolute/path.db, got {url!r}"
        )
    path = parts.path[1:]
    if not path or path == ":memory:":
        raise EventLogURLError(f"a sqlite event log needs a file path, got {url!r}")
    options = parse_qs(parts.query, strict_parsing=False)
    unknown = set(options) - {"synchronous"}
    if unknown:
        raise EventLogURLError(f"unknown sqlite URL option(s) {sorted(unknown)} in {url!r}")
    synchronous = options.get("synchronous", ["full"])[-1].upper()
    if synchronous not in ("NORMAL", "FULL", "EXTRA"):
        raise EventLogURLError(f"synchronous must be normal, full or extra in {url!r}")
    level: Synchronous = synchronous  # type: ignore[assignment]
    return SQLiteEventLog(path, synchronous=level)
