"""Read model of the accepted-corpus feed as a mirror consumes it: entries keyed by log position.

A record enters the feed at the position of its batch's ``BatchAnchored`` (once governance
accepted it and it was not erased meanwhile) and leaves it at the position of its
``RecordErased``, which adds a tombstone. Entries are keyed ``(position, ordinal)``: the log
position of the event that made them and, for the records one anchor brings in, their index in the
batch. Nothing is ever inserted before an existing key (positions grow with the log), so a reader
that pages forward from a cursor never skips or repeats an entry while the log grows; a record
erased after a reader passed it reaches that reader as the tombstone further on.

The projection keeps its own copy of each record's non-text metadata (``feed_members``) rather
than reading another projection's tables, so it rebuilds from the log alone.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ledger.errors import InvalidRequest
from ledger.events import (
    BatchAnchored,
    BatchGoverned,
    CorpusBatchSubmitted,
    Envelope,
    RecordErased,
)
from ledger.projections.base import Projection, on

MAX_PAGE = 1000
"""The most entries one page holds."""

_CURSOR_RE = re.compile(r"^(0|[1-9][0-9]{0,17})(?:\.(0|[1-9][0-9]{0,8}))?$")


class EntryKind(StrEnum):
    RECORD = "record"
    ERASED = "erased"


class _MemberState(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    ERASED = "erased"


@dataclass(frozen=True, slots=True)
class FeedCursor:
    """Where a reader stands: after every entry at ``position`` (``ordinal`` ``None``), or after
    the entry ``(position, ordinal)`` only.

    Written ``"<position>"`` or ``"<position>.<ordinal>"``; the plain form is a log position.
    """

    position: int = 0
    ordinal: int | None = None

    @classmethod
    def parse(cls, text: str | None, *, field: str = "cursor") -> FeedCursor:
        """The cursor ``text`` names (``None`` or empty: the start of the feed); raises
        :class:`InvalidRequest` naming ``field`` (never the value) when malformed."""
        if text is None or text == "":
            return cls()
        match = _CURSOR_RE.match(text.strip())
        if match is None:
            raise InvalidRequest(
                f"{field}: expected a log position such as 42, or 42.3 (position.ordinal) as "
                "returned in next_cursor or an event id"
            )
        ordinal = match.group(2)
        return cls(int(match.group(1)), None if ordinal is None else int(ordinal))

    def __str__(self) -> str:
        return str(self.position) if self.ordinal is None else f"{self.position}.{self.ordinal}"


@dataclass(frozen=True, slots=True)
class FeedFilter:
    """Which entries a reader wants; ``None`` selects everything. Tombstones are filtered by the
    metadata of the record they remove, so a filtered mirror gets exactly its own deletions."""

    discipline: str | None = None
    task_type: str | None = None
    language: str | None = None
    institution_id: str | None = None
    accepted_since: str | None = None
    """ISO 8601 UTC timestamp: only records accepted (governed) at or after it."""


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One entry as projected; a record entry's text is joined by the ledger from the store."""

    position: int
    ordinal: int
    kind: EntryKind
    record_id: str
    batch_id: str
    leaf: str
    discipline: str
    task_type: str
    language: str
    institution_id: str
    accepted_at: str
    erased_at: str | None

    @property
    def key(self) -> tuple[int, int]:
        return (self.position, self.ordinal)


class FeedProjection(Projection):
    name = "feed"
    schema = """
    CREATE TABLE IF NOT EXISTS feed_members (
        record_id TEXT PRIMARY KEY,
        batch_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        leaf TEXT NOT NULL,
        discipline TEXT NOT NULL,
        task_type TEXT NOT NULL,
        language TEXT NOT NULL,
        institution_id TEXT NOT NULL,
        state TEXT NOT NULL,
        accepted_at TEXT,
        fed_position INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS feed_members_by_batch ON feed_members (batch_id, state, idx);
    CREATE TABLE IF NOT EXISTS feed_entries (
        position INTEGER NOT NULL,
        ordinal INTEGER NOT NULL,
        kind TEXT NOT NULL,
        visible INTEGER NOT NULL,
        record_id TEXT NOT NULL,
        batch_id TEXT NOT NULL,
        leaf TEXT NOT NULL,
        discipline TEXT NOT NULL,
        task_type TEXT NOT NULL,
        language TEXT NOT NULL,
        institution_id TEXT NOT NULL,
        accepted_at TEXT NOT NULL,
        erased_at TEXT,
        PRIMARY KEY (position, ordinal)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS feed_entries_by_institution
        ON feed_entries (institution_id, visible, position, ordinal);
    CREATE INDEX IF NOT EXISTS feed_entries_by_discipline
        ON feed_entries (discipline, visible, position, ordinal);
    """

    @on(CorpusBatchSubmitted)
    def submitted(
        self, event: CorpusBatchSubmitted, envelope: Envelope, conn: sqlite3.Connection
    ) -> None:
        conn.executemany(
            "INSERT OR IGNORE INTO feed_members (record_id, batch_id, idx, leaf, discipline,"
            " task_type, language, institution_id, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.record_id,
                    event.batch_id,
                    r.index,
                    r.leaf,
                    r.discipline,
                    r.task_type,
                    r.language,
                    event.institution_id,
                    _MemberState.PENDING,
                )
                for r in event.records
            ],
        )

    @on(BatchGoverned)
    def governed(self, event: BatchGoverned, envelope: Envelope, conn: sqlite3.Connection) -> None:
        rows = [
            (_MemberState.ACCEPTED, envelope.occurred_at, i) for i in event.accepted_record_ids
        ] + [(_MemberState.REJECTED, None, i) for i in event.rejected]
        conn.executemany(
            "UPDATE feed_members SET state = ?, accepted_at = ?"
            " WHERE record_id = ? AND state != 'erased' AND fed_position IS NULL",
            rows,
        )

    @on(BatchAnchored)
    def anchored(self, event: BatchAnchored, envelope: Envelope, conn: sqlite3.Connection) -> None:
        position = envelope.position
        assert position is not None  # the runner hands out stored envelopes only
        members = conn.execute(
            "SELECT record_id, idx, leaf, discipline, task_type, language, institution_id,"
            " accepted_at FROM feed_members"
            " WHERE batch_id = ? AND state = 'accepted' AND fed_position IS NULL ORDER BY idx",
            (event.batch_id,),
        ).fetchall()
        conn.executemany(
            "INSERT INTO feed_entries (position, ordinal, kind, visible, record_id, batch_id,"
            " leaf, discipline, task_type, language, institution_id, accepted_at)"
            " VALUES (?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (position, idx, EntryKind.RECORD, record_id, event.batch_id, *rest)
                for record_id, idx, *rest in members
            ],
        )
        conn.execute(
            "UPDATE feed_members SET fed_position = ?"
            " WHERE batch_id = ? AND state = 'accepted' AND fed_position IS NULL",
            (position, event.batch_id),
        )

    @on(RecordErased)
    def erased(self, event: RecordErased, envelope: Envelope, conn: sqlite3.Connection) -> None:
        row = conn.execute(
            "SELECT state, fed_position FROM feed_members WHERE record_id = ?",
            (event.record_id,),
        ).fetchone()
        if row is None or row[0] == _MemberState.ERASED:
            return  # unknown, or erased before: nothing changes
        conn.execute(
            "UPDATE feed_members SET state = ? WHERE record_id = ?",
            (_MemberState.ERASED, event.record_id),
        )
        if row[1] is None:
            return  # never in the feed: no reader has it to delete
        conn.execute(
            "UPDATE feed_entries SET visible = 0 WHERE record_id = ? AND kind = ?",
            (event.record_id, EntryKind.RECORD),
        )
        conn.execute(
            "INSERT INTO feed_entries (position, ordinal, kind, visible, record_id, batch_id,"
            " leaf, discipline, task_type, language, institution_id, accepted_at, erased_at)"
            " SELECT ?, 0, ?, 1, record_id, batch_id, leaf, discipline, task_type, language,"
            " institution_id, accepted_at, ? FROM feed_entries"
            " WHERE record_id = ? AND kind = ? AND position = ?",
            (
                envelope.position,
                EntryKind.ERASED,
                envelope.occurred_at,
                event.record_id,
                EntryKind.RECORD,
                row[1],
            ),
        )


# -- queries -------------------------------------------------------------------------------------

_ENTRY_COLUMNS = (
    "position, ordinal, kind, record_id, batch_id, leaf, discipline, task_type, language,"
    " institution_id, accepted_at, erased_at"
)


def _entry(row: Sequence[Any]) -> FeedEntry:
    return FeedEntry(
        position=int(row[0]),
        ordinal=int(row[1]),
        kind=EntryKind(row[2]),
        record_id=row[3],
        batch_id=row[4],
        leaf=row[5],
        discipline=row[6],
        task_type=row[7],
        language=row[8],
        institution_id=row[9],
        accepted_at=row[10],
        erased_at=row[11],
    )


def list_feed(
    conn: sqlite3.Connection, *, after: FeedCursor, limit: int, where: FeedFilter
) -> list[FeedEntry]:
    """Visible entries after ``after`` in ``(position, ordinal)`` order, at most ``limit``:
    live records and tombstones (a record entry later erased is left out; its tombstone comes
    at the erasure's position)."""
    if after.ordinal is None:
        query = f"SELECT {_ENTRY_COLUMNS} FROM feed_entries WHERE position > ?"
        params: list[Any] = [after.position]
    else:
        query = (
            f"SELECT {_ENTRY_COLUMNS} FROM feed_entries"
            " WHERE (position > ? OR (position = ? AND ordinal > ?))"
        )
        params = [after.position, after.position, after.ordinal]
    query += " AND visible = 1"
    for column, value in (
        ("discipline", where.discipline),
        ("task_type", where.task_type),
        ("language", where.language),
        ("institution_id", where.institution_id),
    ):
        if value is not None:
            query += f" AND {column} = ?"
            params.append(value)
    if where.accepted_since is not None:
        query += " AND accepted_at >= ?"
        params.append(where.accepted_since)
    query += " ORDER BY position, ordinal LIMIT ?"
    params.append(limit)
    return [_entry(r) for r in conn.execute(query, params).fetchall()]


def count_feed_records(conn: sqlite3.Connection) -> int:
    """Records in the feed now (visible record entries)."""
    row = conn.execute(
        "SELECT COUNT(*) FROM feed_entries WHERE kind = ? AND visible = 1", (EntryKind.RECORD,)
    ).fetchone()
    return int(row[0])


def feed_position(conn: sqlite3.Connection) -> int:
    """The last log position this projection has applied: every entry it will add later has a
    greater position."""
    row = conn.execute(
        "SELECT position FROM projection_positions WHERE name = ?", (FeedProjection.name,)
    ).fetchone()
    return int(row[0]) if row is not None else 0


@dataclass(frozen=True, slots=True)
class FeedItem:
    """A feed entry with, for a live record, its canonical fields (``None`` for a tombstone)."""

    entry: FeedEntry
    cursor: FeedCursor
    """Where a reader that has this entry stands (its SSE event id)."""
    record: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        e = self.entry
        if e.kind is EntryKind.ERASED:
            return {
                "type": "erased",
                "position": e.position,
                "record_id": e.record_id,
                "erased_at": e.erased_at,
            }
        return {
            "type": "record",
            "position": e.position,
            "record_id": e.record_id,
            "batch_id": e.batch_id,
            "leaf": e.leaf,
            "record": self.record,
            "discipline": e.discipline,
            "task_type": e.task_type,
            "language": e.language,
            "institution_id": e.institution_id,
            "accepted_at": e.accepted_at,
        }


@dataclass(frozen=True, slots=True)
class FeedPage:
    """One page of the feed: its items, where to continue, and whether the reader is at the
    head (nothing more is projected for this selection)."""

    items: list[FeedItem]
    next_cursor: FeedCursor
    at_head: bool
    feed_position: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "entries": [item.to_dict() for item in self.items],
            "next_cursor": str(self.next_cursor),
            "at_head": self.at_head,
            "feed_position": self.feed_position,
        }


def entry_cursors(entries: Sequence[FeedEntry], *, following: FeedEntry | None) -> list[FeedCursor]:
    """The cursor after each of ``entries`` (in feed order; ``following`` is the entry after the
    last, ``None`` when there is none): the plain log position when the entry is the last of its
    position, ``position.ordinal`` when more of that position follow."""
    cursors = []
    for i, entry in enumerate(entries):
        nxt = entries[i + 1] if i + 1 < len(entries) else following
        split = nxt is not None and nxt.position == entry.position
        cursors.append(FeedCursor(entry.position, entry.ordinal if split else None))
    return cursors
