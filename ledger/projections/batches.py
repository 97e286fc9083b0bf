"""Read model of batches and their records (status, Merkle data, governance decisions, anchors),
the corpus index, and their queries."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from ledger.events import (
    BatchAnchored,
    BatchAnchorFailed,
    BatchGoverned,
    ContributionRewarded,
    CorpusBatchSubmitted,
    CorpusIndexExtended,
    Envelope,
    RecordErased,
)
from ledger.projections.base import Projection, on
from ledger.views import BatchView, RecordView


class BatchStatus(StrEnum):
    SUBMITTED = "submitted"
    GOVERNED = "governed"
    ANCHORED = "anchored"
    REWARDED = "rewarded"
    ANCHOR_FAILED = "anchor_failed"


class RecordStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    ERASED = "erased"


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


class BatchesProjection(Projection):
    name = "batches"
    schema = """
    CREATE TABLE IF NOT EXISTS batches (
        batch_id TEXT PRIMARY KEY,
        institution_id TEXT NOT NULL,
        source_name TEXT NOT NULL,
        merkle_root TEXT NOT NULL,
        metadata_hash TEXT NOT NULL,
        manifest TEXT NOT NULL,
        record_count INTEGER NOT NULL,
        rejected_at_intake TEXT NOT NULL,
        status TEXT NOT NULL,
        submitted_at TEXT NOT NULL,
        policy_version TEXT,
        accepted_count INTEGER,
        contribution_score REAL,
        reward_wei TEXT,
        chain_id INTEGER,
        contract_address TEXT,
        tx_hash TEXT,
        block_number INTEGER,
        anchor_error TEXT,
        reward_tx_hash TEXT,
        reward_chain_id INTEGER,
        reward_contract TEXT
    );
    CREATE INDEX IF NOT EXISTS batches_by_institution ON batches (institution_id);
    CREATE TABLE IF NOT EXISTS records (
        record_id TEXT PRIMARY KEY,
        batch_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        source_line INTEGER,
        leaf TEXT NOT NULL,
        discipline TEXT NOT NULL,
        language TEXT NOT NULL,
        task_type TEXT NOT NULL,
        redactions TEXT NOT NULL,
        status TEXT NOT NULL,
        reasons TEXT,
        decision TEXT,
        UNIQUE (batch_id, idx)
    );
    CREATE INDEX IF NOT EXISTS records_by_status ON records (status, batch_id, idx);
    CREATE TABLE IF NOT EXISTS erasures (
        record_id TEXT PRIMARY KEY,
        batch_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        erased_at TEXT NOT NULL,
        requested_by TEXT NOT NULL,
        key_id TEXT,
        reason TEXT NOT NULL,
        prior_status TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS erasures_by_position ON erasures (position);
    CREATE TABLE IF NOT EXISTS corpus_index (
        version INTEGER PRIMARY KEY,
        batch_id TEXT NOT NULL,
        record_ids TEXT NOT NULL
    );
    """

    @on(CorpusBatchSubmitted)
    def submitted(
        self, event: CorpusBatchSubmitted, envelope: Envelope, conn: sqlite3.Connection
    ) -> None:
        conn.execute(
            "INSERT INTO batches (batch_id, institution_id, source_name, merkle_root,"
            " metadata_hash, manifest, record_count, rejected_at_intake, status, submitted_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.batch_id,
                event.institution_id,
                event.source_name,
                event.merkle_root,
                event.metadata_hash,
                _dumps(event.manifest),
                len(event.records),
                _dumps(event.rejected_at_intake),
                BatchStatus.SUBMITTED,
                envelope.occurred_at,
            ),
        )
        conn.executemany(
            "INSERT INTO records (record_id, batch_id, idx, source_line, leaf, discipline,"
            " language, task_type, redactions, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.record_id,
                    event.batch_id,
                    r.index,
                    r.source_line,
                    r.leaf,
                    r.discipline,
                    r.language,
                    r.task_type,
                    _dumps(r.redactions),
                    RecordStatus.PENDING,
                )
                for r in event.records
            ],
        )

    @on(BatchGoverned)
    def governed(self, event: BatchGoverned, envelope: Envelope, conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE batches SET status = ?, policy_version = ?, accepted_count = ?,"
            " contribution_score = ?, reward_wei = ? WHERE batch_id = ?",
            (
                BatchStatus.GOVERNED,
                event.policy_version,
                len(event.accepted_record_ids),
                event.contribution_score,
                event.reward_wei,
                event.batch_id,
            ),
        )
        decisions = {d["record_id"]: d for d in event.decisions}
        rows = [
            (RecordStatus.ACCEPTED, "[]", record_id) for record_id in event.accepted_record_ids
        ] + [
            (RecordStatus.REJECTED, _dumps(reasons), record_id)
            for record_id, reasons in event.rejected.items()
        ]
        conn.executemany(
            "UPDATE records SET status = ?, reasons = ? WHERE record_id = ? AND status != ?",
            [(*row, RecordStatus.ERASED) for row in rows],
        )
        conn.executemany(
            "UPDATE records SET decision = ? WHERE record_id = ?",
            [(_dumps(d), record_id) for record_id, d in decisions.items()],
        )

    @on(CorpusIndexExtended)
    def indexed(
        self, event: CorpusIndexExtended, envelope: Envelope, conn: sqlite3.Connection
    ) -> None:
        conn.execute(
            "INSERT INTO corpus_index (version, batch_id, record_ids) VALUES (?, ?, ?)",
            (envelope.sequence, event.batch_id, _dumps(event.record_ids)),
        )

    @on(BatchAnchored)
    def anchored(self, event: BatchAnchored, envelope: Envelope, conn: sqlite3.Connection) -> None:
        conn.execute(
            "UPDATE batches SET status = ?, chain_id = ?, contract_address = ?, tx_hash = ?,"
            " block_number = ?, anchor_error = NULL WHERE batch_id = ?",
            (
                BatchStatus.ANCHORED,
                event.chain_id,
                event.contract_address,
                event.tx_hash,
                event.block_number,
                event.batch_id,
            ),
        )

    @on(BatchAnchorFailed)
    def anchor_failed(
        self, event: BatchAnchorFailed, envelope: Envelope, conn: sqlite3.Connection
    ) -> None:
        conn.execute(
            "UPDATE batches SET status = ?, anchor_error = ? WHERE batch_id = ?",
            (BatchStatus.ANCHOR_FAILED, f"{event.error}: {event.detail}", event.batch_id),
        )

    @on(ContributionRewarded)
    def rewarded(
        self, event: ContributionRewarded, envelope: Envelope, conn: sqlite3.Connection
    ) -> None:
        conn.execute(
            "UPDATE batches SET status = ?, reward_tx_hash = ?, reward_chain_id = ?,"
            " reward_contract = ? WHERE batch_id = ?",
            (
                BatchStatus.REWARDED,
                event.tx_hash,
                event.chain_id,
                event.contract_address,
                event.batch_id,
            ),
        )

    @on(RecordErased)
    def erased(self, event: RecordErased, envelope: Envelope, conn: sqlite3.Connection) -> None:
        row = conn.execute(
            "SELECT status FROM records WHERE record_id = ?", (event.record_id,)
        ).fetchone()
        if row is None or row[0] == RecordStatus.ERASED:
            return  # an erasure of an unknown or already erased record changes nothing
        conn.execute(
            "INSERT INTO erasures (record_id, batch_id, position, erased_at, requested_by,"
            " key_id, reason, prior_status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.record_id,
                event.batch_id,
                envelope.sequence if envelope.position is None else envelope.position,
                envelope.occurred_at,
                event.requested_by,
                event.key_id,
                event.reason,
                row[0],
            ),
        )
        conn.execute(
            "UPDATE records SET status = ? WHERE record_id = ?",
            (RecordStatus.ERASED, event.record_id),
        )

    def create_schema(self, conn: sqlite3.Connection) -> None:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(records)")}
        if "salt" in columns:
            # A state database from before the record store: its rows held text. The state is
            # derived, so drop this read model and let the runner rebuild it from the log.
            conn.execute("DROP TABLE records")
            conn.execute("DROP TABLE IF EXISTS batches")
            conn.execute("DROP TABLE IF EXISTS corpus_index")
            conn.execute("DELETE FROM projection_positions WHERE name = ?", (self.name,))
            conn.execute("DELETE FROM applied_events WHERE projection = ?", (self.name,))
        super().create_schema(conn)


# -- queries -------------------------------------------------------------------------------------

_BATCH_COLUMNS = (
    "batch_id, institution_id, source_name, merkle_root, metadata_hash, manifest,"
    " record_count, status, submitted_at, rejected_at_intake, policy_version, accepted_count,"
    " contribution_score, reward_wei, chain_id, contract_address, tx_hash, block_number,"
    " anchor_error, reward_tx_hash"
)
_RECORD_COLUMNS = (
    "record_id",
    "batch_id",
    "idx",
    "source_line",
    "leaf",
    "discipline",
    "language",
    "task_type",
    "redactions",
    "status",
    "reasons",
    "decision",
)
_RECORD_SELECT = (
    f"SELECT {', '.join('r.' + c for c in _RECORD_COLUMNS)}, e.erased_at"
    " FROM records r LEFT JOIN erasures e ON e.record_id = r.record_id"
)


def _batch_view(row: Sequence[Any]) -> BatchView:
    values = list(row)
    values[5] = json.loads(values[5])
    values[9] = json.loads(values[9])
    return BatchView(*values)


def _record_view(row: Sequence[Any]) -> RecordView:
    """The projected part of a record; its body (text, salt, hash) is joined by the ledger from
    the record store."""
    return RecordView(
        record_id=row[0],
        batch_id=row[1],
        index=row[2],
        source_line=row[3],
        record=None,
        salt=None,
        record_hash=None,
        leaf=row[4],
        discipline=row[5],
        language=row[6],
        task_type=row[7],
        redactions=json.loads(row[8]),
        status=row[9],
        reasons=json.loads(row[10]) if row[10] else [],
        decision=json.loads(row[11]) if row[11] else None,
        erased_at=row[12],
    )


def get_batch(conn: sqlite3.Connection, batch_id: str) -> BatchView | None:
    """The batch ``batch_id``; ``None`` when it was never submitted."""
    row = conn.execute(
        f"SELECT {_BATCH_COLUMNS} FROM batches WHERE batch_id = ?", (batch_id,)
    ).fetchone()
    return _batch_view(row) if row is not None else None


def list_batches(conn: sqlite3.Connection, *, institution_id: str | None = None) -> list[BatchView]:
    """Batches (of one institution, when given) in submission order."""
    query = f"SELECT {_BATCH_COLUMNS} FROM batches"
    params: tuple[Any, ...] = ()
    if institution_id is not None:
        query += " WHERE institution_id = ?"
        params = (institution_id,)
    rows = conn.execute(query + " ORDER BY submitted_at, batch_id", params).fetchall()
    return [_batch_view(r) for r in rows]


def get_record(conn: sqlite3.Connection, record_id: str) -> RecordView | None:
    """The record ``record_id`` (text and salt ``None`` once erased); ``None`` when unknown."""
    row = conn.execute(_RECORD_SELECT + " WHERE r.record_id = ?", (record_id,)).fetchone()
    return _record_view(row) if row is not None else None


def list_records(
    conn: sqlite3.Connection, batch_id: str, *, status: str | None = None
) -> list[RecordView]:
    """The records of ``batch_id`` (only those in ``status``, when given), in batch order."""
    query = _RECORD_SELECT + " WHERE r.batch_id = ?"
    params: tuple[Any, ...] = (batch_id,)
    if status is not None:
        query += " AND r.status = ?"
        params += (status,)
    rows = conn.execute(query + " ORDER BY r.idx", params).fetchall()
    return [_record_view(r) for r in rows]


def list_accepted_feed(
    conn: sqlite3.Connection,
    *,
    disciplines: Sequence[str] | None = None,
    languages: Sequence[str] | None = None,
    institutions: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[tuple[RecordView, BatchView]]:
    """Accepted, not erased records of anchored (or rewarded) batches, in the order their batches
    were submitted, each with its batch; empty filters select everything."""
    query = (
        _RECORD_SELECT + " JOIN batches b ON b.batch_id = r.batch_id"
        " WHERE r.status = ? AND b.status IN (?, ?)"
    )
    params: list[Any] = [RecordStatus.ACCEPTED, BatchStatus.ANCHORED, BatchStatus.REWARDED]
    for column, values in (
        ("r.discipline", disciplines),
        ("r.language", languages),
        ("b.institution_id", institutions),
    ):
        if values:
            query += f" AND {column} IN ({', '.join('?' for _ in values)})"
            params += list(values)
    query += " ORDER BY b.submitted_at, b.batch_id, r.idx"
    if limit is not None:
        query += " LIMIT ?"
        params.append(limit)
    batches: dict[str, BatchView] = {}
    out = []
    for row in conn.execute(query, params).fetchall():
        record = _record_view(row)
        if record.batch_id not in batches:
            batch = get_batch(conn, record.batch_id)
            assert batch is not None  # the join found it
            batches[record.batch_id] = batch
        out.append((record, batches[record.batch_id]))
    return out


def list_corpus_index_since(
    conn: sqlite3.Connection, version: int, *, limit: int = 1000
) -> list[tuple[int, list[str]]]:
    """Entries of the corpus index after ``version``, oldest first, at most ``limit``:
    ``(version, [record_id, ...])``, erased records left out."""
    rows = conn.execute(
        "SELECT version, record_ids FROM corpus_index WHERE version > ? ORDER BY version LIMIT ?",
        (version, limit),
    ).fetchall()
    out: list[tuple[int, list[str]]] = []
    for entry_version, record_ids in rows:
        ids = json.loads(record_ids)
        marks = ",".join("?" * len(ids))
        erased = {
            row[0]
            for row in (
                conn.execute(
                    f"SELECT record_id FROM erasures WHERE record_id IN ({marks})", ids
                ).fetchall()
                if ids
                else []
            )
        }
        out.append((entry_version, [i for i in ids if i not in erased]))
    return out


def list_erasures_since(
    conn: sqlite3.Connection, seq: int, *, limit: int = 1000
) -> list[tuple[int, str]]:
    """Erasures applied to this state database after ``seq`` (its own order of application),
    oldest first: ``(seq, record_id)``. Each process's purge of local copies follows this."""
    rows = conn.execute(
        "SELECT rowid, record_id FROM erasures WHERE rowid > ? ORDER BY rowid LIMIT ?",
        (seq, limit),
    ).fetchall()
    return [(int(r[0]), str(r[1])) for r in rows]


def get_erasure(conn: sqlite3.Connection, record_id: str) -> dict[str, Any] | None:
    """The erasure of ``record_id`` (when, by whom, why, and the status it had); ``None`` when
    the record was not erased."""
    row = conn.execute(
        "SELECT record_id, batch_id, erased_at, requested_by, key_id, reason, prior_status"
        " FROM erasures WHERE record_id = ?",
        (record_id,),
    ).fetchone()
    if row is None:
        return None
    keys = (
        "record_id",
        "batch_id",
        "erased_at",
        "requested_by",
        "key_id",
        "reason",
        "prior_status",
    )
    return dict(zip(keys, row, strict=True))


def count_batches_by_status(conn: sqlite3.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT status, COUNT(*) FROM batches GROUP BY status").fetchall()
    return {str(k): int(v) for k, v in rows}


def count_records_by_status(conn: sqlite3.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT status, COUNT(*) FROM records GROUP BY status").fetchall()
    return {str(k): int(v) for k, v in rows}
