"""Projection machinery: read models in a SQLite state database, fed from an event log.

A :class:`Projection` turns events into rows of its own tables. A :class:`ProjectionRunner` reads
the log in position order and, for each chunk of envelopes, opens ONE transaction on the state
database in which it applies every handler and advances every projection's position, so state and
position can never disagree after a crash: the chunk is either fully applied or not at all.

Idempotency has two layers. Each projection's position skips everything at or before it, which is
enough for a log that never repeats an envelope (SQLite). ``applied_events`` records, per
projection, the id of every event it handled, so an event delivered again at a *new* position (a
backend that may redeliver, or a position rewound by hand) is still applied only once.

Because every state change is derived from the log, the state database can be rebuilt at any
time (:meth:`ProjectionRunner.rebuild_into`) and compared with the live one (:func:`dump_state`).
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

from ledger.errors import LedgerError
from ledger.eventlog.base import EventLog
from ledger.events import DomainEvent, Envelope, decode, event_class
from ledger.files import private_database

BOOKKEEPING_TABLES = frozenset({"projection_positions", "applied_events"})

_BOOKKEEPING_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS projection_positions ("
    " name TEXT PRIMARY KEY, position INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS applied_events ("
    " projection TEXT NOT NULL, event_id TEXT NOT NULL,"
    " PRIMARY KEY (projection, event_id)) WITHOUT ROWID",
)

H = TypeVar("H", bound=Callable[..., None])


class ProjectionError(LedgerError):
    """Base class of errors raised by the projection machinery."""


class ProjectionFailed(ProjectionError):
    """A handler raised; nothing of its chunk was stored, positions stay where they were."""

    def __init__(self, projection: str, envelope: Envelope, cause: BaseException) -> None:
        super().__init__(
            f"projection {projection!r} failed on {envelope.event_type} "
            f"(position {envelope.position}, event {envelope.event_id}): {cause!r}"
        )
        self.projection = projection
        self.position = envelope.position
        self.event_id = envelope.event_id


def on(*event_types: type[DomainEvent]) -> Callable[[H], H]:
    """Mark a projection method as the handler of ``event_types``.

    The method is called as ``handler(self, event, envelope, conn)`` inside the runner's
    transaction; it must only write through ``conn`` and never commit.
    """
    if not event_types:
        raise ValueError("on() needs at least one event type")

    def mark(fn: H) -> H:
        # Stacked decorators accumulate: @on(A) @on(B) handles both.
        fn._projection_handles = (*getattr(fn, "_projection_handles", ()), *event_types)  # type: ignore[attr-defined]
        return fn

    return mark


class Projection(ABC):
    """A read model: its tables (``schema``), the events it ``handles`` and how it ``apply``-s them.

    Subclasses set ``name`` (unique, stable: it keys the stored position) and ``schema`` (SQL
    statements separated by ``;``, idempotent: ``CREATE TABLE IF NOT EXISTS``), and either decorate
    handler methods with :func:`on` (``handles`` and ``apply`` are then derived) or set ``handles``
    and override :meth:`apply`. Projections hold no state of their own: everything lives in the
    state database, so a projection object can serve any number of stores.
    """

    name: ClassVar[str]
    handles: ClassVar[tuple[type[DomainEvent], ...]] = ()
    schema: ClassVar[str] = ""
    _handlers: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers: dict[str, str] = {}
        handled: dict[str, type[DomainEvent]] = {}
        # Base classes first, so a subclass's handler for an event type replaces its parent's.
        for klass in reversed(cls.__mro__):
            declared: set[str] = set()
            for attr, value in vars(klass).items():
                for event_type in getattr(value, "_projection_handles", ()):
                    name = event_type.event_type
                    if name in declared:
                        raise TypeError(f"{klass.__name__} handles {name} in two methods")
                    declared.add(name)
                    handlers[name] = attr
                    handled[name] = event_type
        cls._handlers = handlers
        if handlers and "handles" not in vars(cls):
            cls.handles = tuple(handled[name] for name in sorted(handled))

    def create_schema(self, conn: sqlite3.Connection) -> None:
        """Create this projection's tables (idempotent); runs inside a transaction."""
        for statement in _statements(self.schema):
            conn.execute(statement)

    def apply(self, event: DomainEvent, envelope: Envelope, conn: sqlite3.Connection) -> None:
        """Apply one event through ``conn`` (inside the runner's transaction; never commit)."""
        attr = self._handlers.get(envelope.event_type)
        if attr is None:
            raise ProjectionError(
                f"projection {self.name!r} has no handler for {envelope.event_type}"
            )
        getattr(self, attr)(event, envelope, conn)


class ProjectionStore:
    """The state database: projection tables plus positions and applied event ids.

    Runs in WAL mode with ``synchronous=NORMAL``: a power loss may drop the last commits, but state
    and positions drop together and the runner re-applies them from the log, which is durable.
    The connection is meant for one runner thread; readers elsewhere use :meth:`reader`. The file
    and its folder are owner-only (see :mod:`ledger.files`), tightened on open.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            private_database(self.path)
            self.conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=60
            )
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = NORMAL")
        except (sqlite3.Error, OSError) as exc:
            raise ProjectionError(f"cannot open state database {self.path}: {exc}") from exc
        with self.transaction() as conn:
            for statement in _BOOKKEEPING_SCHEMA:
                conn.execute(statement)

    def __repr__(self) -> str:
        return f"ProjectionStore({str(self.path)!r})"

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``), committed on success, else rolled back."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def install(self, projections: Sequence[Projection]) -> None:
        """Create the projections' tables and register them at position 0 if new."""
        with self.transaction() as conn:
            for projection in projections:
                projection.create_schema(conn)
                conn.execute(
                    "INSERT OR IGNORE INTO projection_positions (name, position) VALUES (?, 0)",
                    (projection.name,),
                )

    def positions(self) -> dict[str, int]:
        """Every registered projection's position (the last log position it has processed)."""
        with self._lock:
            rows = self.conn.execute("SELECT name, position FROM projection_positions").fetchall()
        return {name: int(position) for name, position in rows}

    def position(self, name: str) -> int:
        """One projection's position; 0 for a projection not registered yet."""
        return self.positions().get(name, 0)

    def reader(self) -> sqlite3.Connection:
        """A new read-only connection, for queries from other threads or processes."""
        return sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=60)

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@dataclass(slots=True)
class CatchUpReport:
    """What one :meth:`ProjectionRunner.catch_up` did."""

    events_read: int = 0
    """Envelopes read from the log (handled or not)."""
    applied: dict[str, int] = field(default_factory=dict)
    """Projection name -> events it applied (duplicates skipped are not counted)."""
    position: int = 0
    """The lowest position reached by the runner's projections afterwards."""


class ProjectionRunner:
    """Feeds envelopes from ``log`` to ``projections`` whose state lives in ``store``.

    ``chunk_size`` envelopes share one state transaction: larger chunks are faster, smaller ones
    redo less work after a failure. The runner is single-threaded; use one per store.
    """

    def __init__(
        self,
        *,
        log: EventLog,
        store: ProjectionStore,
        projections: Sequence[Projection],
        chunk_size: int = 500,
    ) -> None:
        names = [p.name for p in projections]
        if len(set(names)) != len(names):
            raise ValueError(f"projection names must be unique, got {names}")
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        self.log = log
        self.store = store
        self.projections = tuple(projections)
        self.chunk_size = chunk_size
        self._by_type: dict[str, list[Projection]] = {}
        for projection in self.projections:
            for event_type in projection.handles:
                self._by_type.setdefault(event_type.event_type, []).append(projection)
        store.install(self.projections)

    def positions(self) -> dict[str, int]:
        """The stored position of each of this runner's projections."""
        stored = self.store.positions()
        return {p.name: stored.get(p.name, 0) for p in self.projections}

    def catch_up(self, *, until_position: int | None = None) -> CatchUpReport:
        """Apply every available envelope (up to ``until_position`` inclusive, when given).

        Raises :class:`ProjectionFailed` when a handler fails (its chunk is rolled back) and
        :class:`~ledger.events.UnknownEventType` for an envelope this code cannot decode.
        """
        positions = self.positions()
        report = CatchUpReport(applied={name: 0 for name in positions})
        if not self.projections:
            return report
        start = min(positions.values()) + 1
        chunk: list[Envelope] = []
        for envelope in self.log.read_all(from_position=start):
            assert envelope.position is not None
            if until_position is not None and envelope.position > until_position:
                break
            chunk.append(envelope)
            if len(chunk) >= self.chunk_size:
                self._apply_chunk(chunk, positions, report)
                chunk = []
        if chunk:
            self._apply_chunk(chunk, positions, report)
        report.position = min(positions.values())
        return report

    def _apply_chunk(
        self, chunk: list[Envelope], positions: dict[str, int], report: CatchUpReport
    ) -> None:
        applied = dict.fromkeys(positions, 0)
        last = chunk[-1].position
        assert last is not None
        with self.store.transaction() as conn:
            for envelope in chunk:
                position = envelope.position
                assert position is not None
                # Every envelope must name a known type, handled or not: an unknown type means
                # this code is older than the log, and skipping it would silently diverge.
                event_class(envelope.event_type)
                targets = [
                    p
                    for p in self._by_type.get(envelope.event_type, ())
                    if positions[p.name] < position
                ]
                if not targets:
                    continue
                event = decode(envelope)
                for projection in targets:
                    fresh = conn.execute(
                        "INSERT OR IGNORE INTO applied_events (projection, event_id) VALUES (?, ?)",
                        (projection.name, envelope.event_id),
                    ).rowcount
                    if not fresh:
                        continue
                    try:
                        projection.apply(event, envelope, conn)
                    except Exception as exc:
                        raise ProjectionFailed(projection.name, envelope, exc) from exc
                    applied[projection.name] += 1
            advanced = [(last, name) for name, pos in positions.items() if pos < last]
            conn.executemany(
                "UPDATE projection_positions SET position = ? WHERE name = ?", advanced
            )
        for _, name in advanced:
            positions[name] = last
        for name, count in applied.items():
            report.applied[name] += count
        report.events_read += len(chunk)

    def follow(
        self,
        *,
        stop: threading.Event,
        poll_interval: float = 0.1,
        on_progress: Callable[[CatchUpReport], None] | None = None,
    ) -> None:
        """Catch up, then keep applying new envelopes until ``stop`` is set.

        ``on_progress`` is called after every catch-up that read at least one envelope.
        """
        while not stop.is_set():
            report = self.catch_up()
            if report.events_read and on_progress is not None:
                on_progress(report)
            self.log.wait_for(report.position + 1, timeout=poll_interval)

    def rebuild_into(
        self, path: str | Path, *, until_position: int | None = None
    ) -> ProjectionStore:
        """Replay the log from position 0 into a NEW state database at ``path`` and return it.

        The caller owns (and closes) the returned store. Refuses an existing file, so a live
        database is never overwritten.
        """
        target = Path(path)
        if target.exists():
            raise ProjectionError(f"refusing to rebuild into existing file {target}")
        store = ProjectionStore(target)
        try:
            runner = ProjectionRunner(
                log=self.log, store=store, projections=self.projections, chunk_size=self.chunk_size
            )
            runner.catch_up(until_position=until_position)
        except BaseException:
            store.close()
            raise
        return store


def dump_state(
    conn: sqlite3.Connection, *, exclude: Sequence[str] = ()
) -> dict[str, list[tuple[Any, ...]]]:
    """Every projection table's rows, sorted by all columns, keyed by table name.

    Bookkeeping tables (positions, applied event ids) and ``exclude``-d tables are left out, so a
    live database and a replayed one compare equal exactly when their read models agree.
    """
    skipped = BOOKKEEPING_TABLES | set(exclude)
    state: dict[str, list[tuple[Any, ...]]] = {}
    for table in _tables(conn):
        if table in skipped:
            continue
        columns = [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]
        order = ", ".join(str(i) for i in range(1, len(columns) + 1))
        state[table] = [
            tuple(row) for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY {order}')
        ]
    return state


def diff_states(
    left: Mapping[str, list[tuple[Any, ...]]], right: Mapping[str, list[tuple[Any, ...]]]
) -> dict[str, tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """Per table, the rows only in ``left`` and the rows only in ``right`` (empty when equal)."""
    out: dict[str, tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]] = {}
    for table in sorted(set(left) | set(right)):
        a = left.get(table, [])
        b = right.get(table, [])
        if a != b:
            only_a = Counter(a) - Counter(b)
            only_b = Counter(b) - Counter(a)
            out[table] = (sorted(only_a.elements(), key=repr), sorted(only_b.elements(), key=repr))
    return out


def _statements(script: str) -> Iterator[str]:
    """The SQL statements of ``script`` (a ``;`` inside a trigger body does not split it)."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\n;"):
                yield pending
            pending = ""
    if pending.strip(" \t\n;"):
        yield pending


def _tables(conn: sqlite3.Connection) -> list[str]:
    return [
        name
        for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name"
        )
    ]
