"""The ledger at a glance, one document for ``byr status --json`` and ``GET /v1/status``."""

from __future__ import annotations

from typing import Any

from ledger.application import CorpusLedger


def status_document(ledger: CorpusLedger, *, institution_id: str | None = None) -> dict[str, Any]:
    """Counts by status, outbox jobs, rewards, how far the slowest projection lags behind the log
    head, and a line per batch (``institution_id``: that institution's batches only, as a
    contributor lists them). Reads the projections as they are (the caller catches up first when
    it wants the log's head)."""
    status = ledger.status()
    positions = status.projection_positions
    lag = status.head_position - min(positions.values()) if positions else status.head_position
    return status.to_dict() | {
        "projection_lag": lag,
        "batches": [
            {
                "batch_id": b.batch_id,
                "institution_id": b.institution_id,
                "source": b.source_name,
                "records": b.record_count,
                "accepted": b.accepted_count,
                "status": b.status,
                "tx_hash": b.tx_hash,
            }
            for b in ledger.batches()
            if institution_id is None or b.institution_id == institution_id
        ],
    }
