"""Read model of batches and their records: status, Merkle data, governance decisions, anchors."""

from __future__ import annotations

import json
import sqlite3

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


class BatchStatus:
    SUBMITTED = "submitted"
    GOVERNED = "governed"
    ANCHORED = "anchored"
    REWARDED = "rewarded"
    ANCHOR_FAILED = "anchor_failed"


class RecordStatus:
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
        record TEXT,
        salt TEXT,
        record_hash TEXT NOT NULL,
        leaf TEXT NOT NULL,
        redactions TEXT NOT NULL,
        status TEXT NOT NULL,
        reasons TEXT,
        decision TEXT,
        UNIQUE (batch_id, idx)
    );
    CREATE INDEX IF NOT EXISTS records_by_status ON records (status, batch_id, idx);
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
            "INSERT INTO records (record_id, batch_id, idx, source_line, record, salt,"
            " record_hash, leaf, redactions, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.record_id,
                    event.batch_id,
                    r.index,
                    r.source_line,
                    _dumps(r.record),
                    r.salt,
                    r.record_hash,
                    r.leaf,
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
            "UPDATE records SET status = ?, reasons = ? WHERE record_id = ? AND status != 'erased'",
            rows,
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
        conn.execute(
            "UPDATE records SET status = ?, record = NULL, salt = NULL WHERE record_id = ?",
            (RecordStatus.ERASED, event.record_id),
        )
